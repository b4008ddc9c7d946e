"""``python -m vad_jax.detect``, kept for existing scripts: runs ``vad-jax detect``."""

from vad_jax import cli
from vad_jax.commands import detect

if __name__ == "__main__":
  cli.run(detect.COMMAND)
