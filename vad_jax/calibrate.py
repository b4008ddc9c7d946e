"""``python -m vad_jax.calibrate``, kept for existing scripts: runs ``vad-jax calibrate``."""

from vad_jax import cli
from vad_jax.commands import calibrate

if __name__ == "__main__":
  cli.run(calibrate.COMMAND)
