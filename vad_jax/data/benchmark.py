"""``python -m vad_jax.data.benchmark``: runs ``python -m vad_jax.studies.data_throughput``
(kept for existing scripts)."""

from vad_jax import cli
from vad_jax.studies import data_throughput

if __name__ == "__main__":
  cli.run(data_throughput.COMMAND)
