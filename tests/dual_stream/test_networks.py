"""The full dual-stream network: shapes, errors, jit/sharding equivalence, state
handling, and a few-step overfit that fails if learning is broken."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vad_jax import state as state_lib
from vad_jax.configs.default import get_config
from vad_jax.dual_stream import task
from vad_jax.dual_stream.loss import dual_stream_loss
from vad_jax.dual_stream.task import build_model

MUTABLE = ["batch_stats", "memory"]


@pytest.fixture(scope="module")
def setup():
  config = get_config("test")
  model = build_model(config)
  frames = jax.random.uniform(jax.random.key(0), (8, 5, 16, 16, 3), minval=-1, maxval=1)
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(1), frames)
  return config, model, frames, variables


@pytest.mark.parametrize("size", [(16, 16), (8, 24)])
def test_shapes_for_two_input_sizes(setup, size):
  _, model, _, _ = setup
  h, w = size
  frames = jax.ShapeDtypeStruct((2, 5, h, w, 3), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), frames)
  fused, aux = jax.eval_shape(functools.partial(model.apply, train=False), variables, frames)
  assert fused.shape == (2, h, w, 3)
  for stream in ("spatial", "temporal"):
    assert aux[stream]["prediction"].shape == (2, h, w, 3)
    assert aux[stream]["frame"].shape == (2, h, w, 3)
    assert aux[stream]["distance"].shape == (2, 3)  # one memory per level (3 levels)
    assert aux[stream]["discretization"].shape == (2, 3)
    assert aux[stream]["attention_map"].shape == (2, h, w)
    items = variables["memory"][stream]
    assert [items[f"memory{i}"]["items"].shape for i in range(3)] == [(4, 4), (4, 8), (4, 16)]


def test_block_shapes_inside_the_network(setup):
  _, model, frames, variables = setup
  _, state = jax.eval_shape(
    lambda v, x: model.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"]),
    variables,
    frames[:2],
  )
  inter = state["intermediates"]["spatial"]
  levels = inter["encoder"]["__call__"][0]
  assert [tuple(level.shape) for level in levels] == [(2, 4, 16, 16, 4), (2, 4, 8, 8, 8), (2, 4, 4, 4, 16)]
  assert inter["encoder"]["rtsm1"]["__call__"][0].shape == (2, 4, 8, 8, 8)
  assert inter["memory2"]["__call__"][0][0].shape == (2, 4, 4, 32)  # query + read
  assert inter["decoder"]["rcam0"]["__call__"][0][0].shape == (2, 16, 16, 4)
  temporal_levels = state["intermediates"]["temporal"]["encoder"]["__call__"][0]
  assert temporal_levels[0].shape == (2, 3, 16, 16, 4)  # three differences in


@pytest.mark.parametrize(
  "shape, message",
  [
    ((5, 16, 16, 3), "rank 4"),
    ((2, 2, 16, 16, 3), "at least 3 frames"),
    ((2, 5, 18, 16, 3), "divisible"),
  ],
)
def test_bad_input_raises_value_error(setup, shape, message):
  _, model, _, variables = setup
  with pytest.raises(ValueError, match=message):
    model.apply(variables, jnp.zeros(shape), train=False)


def test_jit_equals_eager(setup):
  _, model, frames, variables = setup
  eager, eager_aux = model.apply(variables, frames[:2], train=False)
  jitted, jit_aux = jax.jit(functools.partial(model.apply, train=False))(variables, frames[:2])
  np.testing.assert_allclose(eager, jitted, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(eager_aux["temporal"]["distance"], jit_aux["temporal"]["distance"], rtol=1e-4)


def test_sharded_forward_equals_single_device(setup):
  _, model, frames, variables = setup
  apply = jax.jit(functools.partial(model.apply, train=True, mutable=MUTABLE))
  cpu0 = jax.devices()[0]
  (single, _), single_state = apply(jax.device_put(variables, cpu0), jax.device_put(frames, cpu0))
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharded_frames = jax.device_put(frames, NamedSharding(mesh, P("data")))
  (sharded, _), sharded_state = apply(jax.device_put(variables, NamedSharding(mesh, P())), sharded_frames)
  assert len(sharded.sharding.device_set) == 8
  np.testing.assert_allclose(single, sharded, rtol=1e-4, atol=1e-5)
  # Training-mode memory updates and BatchNorm statistics agree across shardings.
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), single_state["memory"], sharded_state["memory"]
  )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
    single_state["batch_stats"],
    sharded_state["batch_stats"],
  )


def test_memory_absent_from_params_updated_in_training_only(setup):
  _, model, frames, variables = setup
  assert "memory" not in str(jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(variables["params"])[0]))
  _, train_state = model.apply(variables, frames, train=True, mutable=MUTABLE)
  _, eval_state = model.apply(variables, frames, train=False, mutable=["memory"])
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables["memory"], train_state["memory"])
  assert all(jax.tree.leaves(changed))
  jax.tree.map(np.testing.assert_array_equal, variables["memory"], eval_state["memory"])


def test_test_time_update_switch(setup):
  config, _, frames, variables = setup
  config = get_config("test")
  config.model.update_memory_at_test = True
  model = build_model(config)
  _, state = model.apply(variables, frames, train=False, mutable=["memory"])
  assert not np.allclose(
    state["memory"]["spatial"]["memory0"]["items"], variables["memory"]["spatial"]["memory0"]["items"]
  )


def test_bfloat16_compute_keeps_float32_params(setup):
  config, _, frames, _ = setup
  config = get_config("test")
  config.model.dtype = "bfloat16"
  model = build_model(config)
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(1), frames[:2])
  assert {a.dtype for a in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
  fused, aux = jax.jit(functools.partial(model.apply, train=False))(variables, frames[:2])
  assert fused.dtype == jnp.float32 and bool(jnp.isfinite(fused).all())


def moving_square_clips(n, t=5, size=16, seed=0):
  """Bright squares moving at constant velocity over a dark background."""
  rng = np.random.default_rng(seed)
  clips = np.full((n, t, size, size, 3), -1.0, np.float32)
  for i in range(n):
    y, x = rng.integers(0, size - 4, 2)
    dy, dx = rng.choice([-1, 1], 2)
    for j in range(t):
      yy, xx = (y + dy * j) % (size - 4), (x + dx * j) % (size - 4)
      clips[i, j, yy : yy + 4, xx : xx + 4] = 1.0
  return jnp.asarray(clips)


def test_few_steps_reduce_the_training_loss(setup):
  config, model, _, variables = setup
  clips = moving_square_clips(8)
  tx = optax.adam(3e-3)

  @jax.jit
  def step(params, state, opt_state):
    def loss_fn(p):
      (_, aux), new_state = model.apply({"params": p, **state}, clips, train=True, mutable=MUTABLE)
      return dual_stream_loss(aux)[0], new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_state, opt_state, loss

  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  opt_state = tx.init(params)
  losses = []
  for _ in range(40):
    params, state, opt_state, loss = step(params, state, opt_state)
    losses.append(float(loss))
  assert np.isfinite(losses).all()
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses


def test_bfloat16_training_step_is_finite_and_keeps_float32_state(setup):
  config = get_config("test")
  config.model.dtype = "bfloat16"
  model = build_model(config)
  batch = {"frames": moving_square_clips(8)}
  state = jax.jit(
    lambda rng: state_lib.create(
      model, task.init_variables(model, config, rng, batch), state_lib.make_optimizer(config, 10)
    )
  )(jax.random.key(0))
  step = jax.jit(functools.partial(task.train_step, model=model, config=config))
  new_state, terms = step(state, {"frames": moving_square_clips(8)})
  assert np.isfinite(float(terms["loss"]))
  leaves = jax.tree.leaves((new_state.params, new_state.opt_state, new_state.batch_stats, new_state.memory))
  assert {a.dtype for a in leaves if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("train", [False, True])
def test_the_prediction_cannot_see_the_frame_it_predicts(setup, train):
  """Replacing every clip's last frame (the target) by noise changes nothing the network
  predicts: the fused frame, each stream's frame, the memory read-outs and distances
  (evaluation), and in training also the memory updates and BatchNorm statistics. Only
  what compares with the target (the target itself, the losses' error) may differ. A
  leak of the target into the prediction would raise every AUC and pass every other
  test."""
  _, model, frames, variables = setup
  noise = jax.random.uniform(jax.random.key(7), frames.shape[:1] + frames.shape[2:], minval=-1, maxval=1)
  replaced = frames.at[:, -1].set(noise)
  assert not np.allclose(frames[:, -1], replaced[:, -1])
  apply = jax.jit(functools.partial(model.apply, train=train, mutable=MUTABLE if train else False))
  (out, new_vars), (out_r, new_vars_r) = [
    (o, {}) if not train else o for o in (apply(variables, frames), apply(variables, replaced))
  ]
  (fused, aux), (fused_r, aux_r) = out, out_r
  np.testing.assert_array_equal(fused, fused_r)
  for stream in ("spatial", "temporal"):
    np.testing.assert_array_equal(aux[stream]["frame"], aux_r[stream]["frame"])
    np.testing.assert_array_equal(aux[stream]["distance"], aux_r[stream]["distance"])
  assert not np.array_equal(aux["target"], aux_r["target"])
  chex_like = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), new_vars, new_vars_r)
  assert all(jax.tree.leaves(chex_like)), "the memory items or BatchNorm statistics saw the target"
