"""The mesh, the two shardings and global batches on 8 virtual CPU devices."""

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
