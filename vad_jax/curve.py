"""``python -m vad_jax.curve``, kept for existing scripts: runs ``python -m vad_jax.studies.curve``."""

from vad_jax import cli
from vad_jax.studies import curve

if __name__ == "__main__":
  cli.run(curve.COMMAND)
