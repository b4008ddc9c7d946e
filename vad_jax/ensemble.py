"""``python -m vad_jax.ensemble``, kept for existing scripts: runs ``python -m vad_jax.studies.ensemble``."""

from vad_jax import cli
from vad_jax.studies import ensemble

if __name__ == "__main__":
  cli.run(ensemble.COMMAND)
