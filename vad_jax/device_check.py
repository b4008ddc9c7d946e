"""``python -m vad_jax.device_check``, kept for existing scripts: runs ``python -m vad_jax.studies.device_check``."""

from vad_jax import cli
from vad_jax.studies import device_check

if __name__ == "__main__":
  cli.run(device_check.COMMAND)
