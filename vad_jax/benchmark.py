"""``python -m vad_jax.benchmark``, kept for existing scripts: runs ``vad-jax benchmark``."""

from vad_jax import cli
from vad_jax.commands import benchmark

if __name__ == "__main__":
  cli.run(benchmark.COMMAND)
