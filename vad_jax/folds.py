"""``python -m vad_jax.folds``, kept for existing scripts: runs ``python -m vad_jax.studies.folds``."""

from vad_jax import cli
from vad_jax.studies import folds

if __name__ == "__main__":
  cli.run(folds.COMMAND)
