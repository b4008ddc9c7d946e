"""Test-wide JAX set-up: 8 virtual CPU devices and a persistent compilation cache.

Both must be configured before jax is imported anywhere, which is why this lives in the
root conftest and sets only environment variables (which the commands that tests start
in subprocesses inherit).
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ["XLA_FLAGS"] = (
  os.environ["XLA_FLAGS"]
  if "xla_force_host_platform_device_count" in os.environ["XLA_FLAGS"]
  else os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=8"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The compilation cache and the faster random initialisers are set through the
# environment, so that the commands the tests start in subprocesses (training runs,
# detectors, the multi-host run) share them: about 20 s less per started training run.
_CACHE = pathlib.Path(__file__).resolve().parent / ".jax_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Non-partitionable threefry compiles random initialisers several times faster on CPU;
# initial values differ, nothing the tests assert depends on them.
os.environ["JAX_THREEFRY_PARTITIONABLE"] = "0"
# TFDS must never reach for TensorFlow in this project.
os.environ.setdefault("TFDS_DISABLE_TF", "1")

SHARED = pathlib.Path(__file__).resolve().parent.parent / "shared"

# CI fails on a skip that is not allowed (tests/skip_policy.py).
pytest_plugins = ("tests.skip_policy",)
