"""``python -m vad_jax.evaluate``, kept for existing scripts: runs ``vad-jax evaluate``."""

from vad_jax import cli
from vad_jax.commands import evaluate

if __name__ == "__main__":
  cli.run(evaluate.COMMAND)
