"""``python -m vad_jax.train``, kept for existing scripts: runs ``vad-jax train``."""

from vad_jax import cli
from vad_jax.commands import train

if __name__ == "__main__":
  cli.run(train.COMMAND)
