"""``python -m vad_jax.data.prepare_benchmark``: runs ``python -m vad_jax.studies.preparation_throughput``
(kept for existing scripts)."""

from vad_jax import cli
from vad_jax.studies import preparation_throughput

if __name__ == "__main__":
  cli.run(preparation_throughput.COMMAND)
