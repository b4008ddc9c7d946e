"""``python -m vad_jax.ablations``, kept for existing scripts: runs ``python -m vad_jax.studies.ablations``."""

from vad_jax import cli
from vad_jax.studies import ablations

if __name__ == "__main__":
  cli.run(ablations.COMMAND)
