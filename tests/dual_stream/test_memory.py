"""Memory read/update (Eqs. 5-8), discretization loss (Eq. 10) and distance (Eq. 15)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vad_jax.dual_stream.memory import Memory, memory_losses, read_memory, update_memory


def test_read_hand_computed():
  items = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  queries = jnp.array([[1.0, 0.0], [0.6, 0.8]])
  read, similarity = read_memory(queries, items)
  np.testing.assert_allclose(similarity, [[1.0, 0.0], [0.6, 0.8]], atol=1e-6)
  w0 = math.e / (math.e + 1)  # softmax([1, 0])
  w1 = 1 / (1 + math.exp(0.2))  # softmax([0.6, 0.8])[0]
  np.testing.assert_allclose(read, [[w0, 1 - w0], [w1, 1 - w1]], rtol=1e-6)


def test_update_hand_computed():
  items = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  queries = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
  # Nearest items: q0 -> p0, q1 -> p1, q2 -> p0. Softmax over queries divided by the
  # column maximum gives exp(S[k, m] - max_k S[k, m]): q0 -> 1, q2 -> exp(-0.2), q1 -> 1.
  p0 = np.array([1.0, 0.0]) + np.array([1.0, 0.0]) + math.exp(-0.2) * np.array([0.8, 0.6])
  p1 = np.array([0.0, 1.0]) + np.array([0.6, 0.8])
  expected = np.stack([p0 / np.linalg.norm(p0), p1 / np.linalg.norm(p1)])
  np.testing.assert_allclose(update_memory(queries, items), expected, rtol=1e-6)


def test_update_item_without_queries_only_renormalised():
  items = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  queries = jnp.array([[1.0, 0.0], [0.8, 0.6]])  # both nearest to item 0
  new = update_memory(queries, items)
  np.testing.assert_allclose(new[1:], items[1:], atol=1e-7)
  assert not np.allclose(new[0], items[0])


def test_discretization_loss_and_distance_hand_computed():
  items = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  q = jnp.array([[[0.6, 0.8]]])  # [batch=1, K=1, C=2]
  _, similarity = read_memory(q, items)
  # nearest p1 (|q-p|^2 = 0.4), second p0 (0.8), third p2 (3.2); |p2 - p0| = 2
  out = memory_losses(q, items, similarity, margin_a=2.0, margin_b=1.0, hinge=False)
  np.testing.assert_allclose(out["discretization"], [(0.4 - 0.8 + 2.0) + (0.4 - 2.0 + 1.0)], rtol=1e-5)
  np.testing.assert_allclose(out["distance"], [math.sqrt(0.4)], rtol=1e-5)
  hinged = memory_losses(q, items, similarity, margin_a=2.0, margin_b=1.0, hinge=True)
  np.testing.assert_allclose(hinged["discretization"], [1.6], rtol=1e-5)


def _module_and_vars(features):
  module = Memory(num_items=5)
  return module, jax.jit(lambda k, f: module.init(k, f, update=False))(jax.random.key(0), features)


def test_items_are_state_not_params_and_unit_norm():
  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 6))
  module, variables = _module_and_vars(features)
  assert "params" not in variables
  items = variables["memory"]["items"]
  assert items.shape == (5, 6)
  np.testing.assert_allclose(jnp.linalg.norm(items, axis=1), 1.0, rtol=1e-6)
  out, aux = module.apply(variables, features, update=False)
  assert out.shape == (2, 4, 4, 12)
  assert aux["distance"].shape == (2,) and aux["discretization"].shape == (2,)


def test_update_only_when_requested_and_mutable():
  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 6))
  module, variables = _module_and_vars(features)
  _, state = module.apply(variables, features, update=False, mutable=["memory"])
  np.testing.assert_array_equal(state["memory"]["items"], variables["memory"]["items"])
  _, state = module.apply(variables, features, update=True, mutable=["memory"])
  assert not np.allclose(state["memory"]["items"], variables["memory"]["items"])
  with pytest.raises(ValueError, match="not mutable"):
    module.apply(variables, features, update=True)


def test_items_receive_no_gradient():
  features = jax.random.normal(jax.random.key(1), (2, 4, 4, 6))
  module, variables = _module_and_vars(features)

  def loss(memory, f):
    out, aux = module.apply({"memory": memory}, f, update=False)
    return jnp.sum(out**2) + jnp.sum(aux["discretization"])

  g_items, g_features = jax.grad(loss, argnums=(0, 1))(variables["memory"], features)
  np.testing.assert_array_equal(g_items["items"], 0.0)
  assert float(jnp.abs(g_features).sum()) > 0


def test_update_is_identical_on_1_and_8_devices():
  features = jax.random.normal(jax.random.key(2), (8, 4, 4, 6))
  module, variables = _module_and_vars(features)

  def step(v, f):
    return module.apply(v, f, update=True, mutable=["memory"])[1]["memory"]["items"]

  one = jax.device_put(features, jax.devices()[0])
  single = jax.jit(step)(jax.device_put(variables, jax.devices()[0]), one)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharded_features = jax.device_put(features, NamedSharding(mesh, P("data")))
  assert len(sharded_features.sharding.device_set) == 8
  sharded = jax.jit(step)(jax.device_put(variables, NamedSharding(mesh, P())), sharded_features)
  np.testing.assert_allclose(single, sharded, rtol=1e-6, atol=1e-7)
