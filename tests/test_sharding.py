"""The mesh, the two shardings and global batches on 8 virtual CPU devices."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from vad_jax import sharding


def test_mesh_spans_all_devices_with_one_auto_axis():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ("data",)
  assert mesh.devices.size == jax.device_count() == 8
  assert mesh.axis_types == (jax.sharding.AxisType.Auto,)


def test_mesh_over_a_subset_of_devices():
  mesh = sharding.make_mesh(jax.devices()[:2])
  assert mesh.devices.size == 2


def test_shardings():
  mesh = sharding.make_mesh()
  assert sharding.replicated(mesh).spec == P()
  assert sharding.data_sharded(mesh).spec == P("data")


def test_global_batch_is_sharded_over_data():
  mesh = sharding.make_mesh()
  local = {"frames": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "valid": np.ones(16, bool)}
  batch = sharding.global_batch(mesh, local)
  for key, value in batch.items():
    assert isinstance(value, jax.Array)
    assert value.shape == local[key].shape  # one process: global == local
    assert value.sharding.is_equivalent_to(sharding.data_sharded(mesh), value.ndim)
    assert len(value.addressable_shards) == 8
    assert value.addressable_shards[0].data.shape[0] == 2
    np.testing.assert_array_equal(np.asarray(value), local[key])


def test_global_batch_rejects_uneven_local_batch():
  mesh = sharding.make_mesh()
  with pytest.raises(ValueError, match="split evenly"):
    sharding.global_batch(mesh, {"x": np.zeros((6, 2))})


def test_no_distributed_initialisation_without_a_launcher(monkeypatch):
  for key in ("JAX_COORDINATOR_ADDRESS", "VAD_JAX_DISTRIBUTED", "SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri"):
    monkeypatch.delenv(key, raising=False)
  assert sharding.maybe_initialize_distributed() is False


def test_distributed_initialisation_can_be_disabled(monkeypatch):
  monkeypatch.setenv("VAD_JAX_DISTRIBUTED", "0")
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  assert sharding.maybe_initialize_distributed() is False


_MANY_PROGRAMS = """
import sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from vad_jax import sharding
mesh = sharding.make_mesh()
w = jax.device_put(jnp.ones((256, 256)), sharding.replicated(mesh))
xs = [jax.device_put(np.random.rand(64, 256).astype(np.float32), sharding.data_sharded(mesh)) for _ in range(8)]
step = jax.jit(lambda x: jnp.mean(jnp.tanh(x @ w) @ w, axis=0))  # a batch mean: a collective
items = [xs[i % 8] for i in range(1000)]
if sys.argv[1] == "plain":
  outputs = [step(x) for x in items]
else:
  outputs = sharding.dispatch_in_order(step, items)
jax.block_until_ready(outputs)
print("finished", len(outputs))
"""


def _run_many_programs(mode: str, tmp_path) -> subprocess.CompletedProcess:
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_seconds=5",
  }
  return subprocess.run(
    [sys.executable, "-c", _MANY_PROGRAMS, mode], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
  )


def test_independent_collective_programs_finish_through_dispatch_in_order(tmp_path):
  """Issue 14, case 0: the end-of-training evaluation aborted a 2-device CPU run in an
  all-gather rendezvous. 1,000 independent 2-device programs with a collective,
  dispatched without waiting, abort the process in XLA:CPU's rendezvous (every try on a
  quiet machine: docs/RESULTS.md; the abort depends on timing, so the plain dispatch is
  checked below only for the kind of failure). ``sharding.dispatch_in_order``, which both
  evaluations use, must always finish."""
  result = _run_many_programs("dispatch_in_order", tmp_path)
  assert result.returncode == 0 and "finished 1000" in result.stdout, result.stderr[-2000:]


def test_the_plain_dispatch_fails_only_in_the_rendezvous(tmp_path):
  """The reproduction of the abort: when the plain dispatch fails, it is XLA's
  rendezvous termination (the failure ``dispatch_in_order`` avoids), nothing else."""
  result = _run_many_programs("plain", tmp_path)
  if result.returncode != 0:
    assert "Termination timeout" in result.stderr and "rendezvous" in result.stderr, result.stderr[-2000:]
  else:
    assert "finished 1000" in result.stdout
