"""Test-wide JAX set-up: 8 virtual CPU devices and a persistent compilation cache.

Both must be configured before jax is imported anywhere, which is why this lives in the
root conftest and touches only environment variables and ``jax.config`` after import.
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
# TFDS must never reach for TensorFlow in this project.
os.environ.setdefault("TFDS_DISABLE_TF", "1")

import jax  # noqa: E402  (must come after the environment is set)

_CACHE = pathlib.Path(__file__).resolve().parent / ".jax_cache"
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Non-partitionable threefry compiles random initialisers several times faster on CPU;
# initial values differ, nothing the tests assert depends on them.
jax.config.update("jax_threefry_partitionable", False)

SHARED = pathlib.Path(__file__).resolve().parent.parent / "shared"
