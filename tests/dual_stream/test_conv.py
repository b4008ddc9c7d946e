"""The convolution implementations of the dual-stream network (``dual_stream/conv.py``).

``matmul`` and ``mixed`` must compute what XLA's native convolutions compute, values and
gradients, for every layer shape the shipped networks use, and the whole network's loss
and gradients must agree; the layers keep ``flax.linen``'s parameters so checkpoints do
not depend on the implementation.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vad_jax import checkpointing, config_flags, loop
from vad_jax.dual_stream import conv, loss, task

IMPLS = ("matmul", "mixed")
# The shipped dual-stream sizes: paper scale, the MNAD widths, CPU size, test size, and
# the one-channel 3-level networks of the real-data configs.
CONFIGS = ("default", "default:mnad", "default:cpu", "default:test", "ucsd_ped2:cpu", "synthetic")
SPATIAL = 4  # layers are checked at up to 4x4: interior and every border case of 3x3 SAME


def layer_shapes(config_name: str) -> set[tuple]:
  """``(kind, input shape, features)`` of every convolution and pooling the network of
  ``config_name`` applies, recorded while tracing it (batch 2, spatial size capped)."""
  config = config_flags.load(config_name)
  model = task.build_model(config)
  found = set()

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and isinstance(module, (conv.Conv, conv.Upsample, conv.TimeFusion)):
      shape = list(args[0].shape)
      shape[0] = 2
      spatial = slice(-3, -1)
      shape[spatial] = [min(d, SPATIAL) for d in shape[spatial]]
      kind = type(module).__name__
      if kind == "Conv":
        kind += "x".join(map(str, module.kernel_size)) + ("" if module.use_bias else "-nobias")
      found.add((kind, tuple(shape), module.features))
    return next_fun(*args, **kwargs)

  pool = conv.max_pool2x2

  def recording_pool(x, impl):
    found.add(("MaxPool", (2, *(min(d, SPATIAL) for d in x.shape[1:3]), x.shape[3]), 0))
    return pool(x, impl)

  h, w = config.data.image_size
  frames = jax.ShapeDtypeStruct((1, config.model.sequence_length, h, w, config.data.channels), jnp.float32)
  with nn.intercept_methods(record), pytest.MonkeyPatch.context() as patch:
    patch.setattr(conv, "max_pool2x2", recording_pool)
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), frames)
    jax.eval_shape(functools.partial(model.apply, train=False), variables, frames)
  return found


@functools.cache
def all_layer_shapes() -> tuple:
  return tuple(sorted(set().union(*(layer_shapes(name) for name in CONFIGS))))


def layer_function(kind: str, features: int, impl: str):
  """``f(x, params) -> y`` of one layer, and its ``init``."""
  if kind == "MaxPool":
    return (lambda x, params: conv.max_pool2x2(x, impl)), None
  if kind == "Upsample":
    module = conv.Upsample(features, impl=impl)
  elif kind == "TimeFusion":
    module = conv.TimeFusion(features, impl=impl)
  else:
    size = tuple(int(d) for d in kind[4:].split("-")[0].split("x"))
    module = conv.Conv(features, size, use_bias=not kind.endswith("-nobias"), impl=impl)
  return (lambda x, params: module.apply({"params": params}, x)), module.init


@functools.cache
def layer_inputs(layers: tuple) -> tuple:
  """For each layer: a random input, random parameters (scaled by the fan-in, like the
  initialisers) and a random output cotangent, drawn on the host. Drawn inside the
  compiled program they made up 86 % of its compile time."""
  rng = np.random.default_rng(0)

  def normal(shape):
    return rng.standard_normal(shape, dtype=np.float32)

  inputs = []
  for kind, shape, features in layers:
    fn, init = layer_function(kind, features, "native")
    x = normal(shape)
    if kind == "MaxPool":  # ties, as in flat image regions, must route their gradient alike
      x = np.round(x * 2) / 2
    params = {}
    if init:
      shapes = jax.eval_shape(init, jax.random.key(0), x)["params"]
      params = jax.tree.map(lambda s: normal(s.shape) / np.sqrt(np.prod(s.shape[:-1])), shapes)
    inputs.append((x, params, normal(jax.eval_shape(fn, x, params).shape)))
  return tuple(inputs)


@functools.cache
def outputs_and_gradients(layers: tuple, impl: str):
  """For each layer: its output on random inputs and the gradients of a random linear
  function of that output with respect to the input and the parameters (one program)."""

  def run(inputs):
    results = []
    for (kind, _, features), (x, params, cotangent) in zip(layers, inputs):
      fn, _ = layer_function(kind, features, impl)
      y, vjp = jax.vjp(fn, x, params)
      results.append((y, vjp(cotangent)))
    return results

  return jax.jit(run)(layer_inputs(layers))


def assert_close(actual, expected, rtol, what, scale=0.0):
  """Largest difference at most ``rtol`` times the largest ``|expected|`` (or ``scale``)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, what
  scale = max(float(np.max(np.abs(expected))), scale, 1e-6)
  error = float(np.max(np.abs(actual - expected))) / scale
  assert error <= rtol, f"{what}: relative error {error:.2e} > {rtol}"


def test_every_shipped_layer_shape_is_recorded():
  kinds = {kind for kind, _, _ in all_layer_shapes()}
  assert kinds == {"Conv1x1", "Conv3x3", "Conv3x3-nobias", "Upsample", "TimeFusion", "MaxPool"}
  widths = {shape[-1] for kind, shape, _ in all_layer_shapes() if kind == "Conv3x3-nobias"}
  assert {1, 3, 64, 512, 1024} <= widths  # input frames, MNAD widths, memory concatenations


@pytest.mark.parametrize("impl", IMPLS)
def test_layers_equal_native_values_and_gradients(impl):
  layers = all_layer_shapes()
  if impl == "mixed":  # its 3x3 convolutions are the native ones
    layers = tuple(layer for layer in layers if not layer[0].startswith("Conv3x3"))
  expected = outputs_and_gradients(layers, "native")
  actual = outputs_and_gradients(layers, impl)
  for layer, (y, grads), (y_ref, grads_ref) in zip(layers, actual, expected):
    assert_close(y, y_ref, 1e-5, f"{impl} {layer} output")
    flat, flat_ref = jax.tree.leaves(grads), jax.tree.leaves(grads_ref)
    assert len(flat) == len(flat_ref)
    for g, g_ref in zip(flat, flat_ref):
      assert_close(g, g_ref, 1e-5, f"{impl} {layer} gradient")


def test_layers_are_drop_in_replacements_for_flax():
  """Same parameter names, shapes and initial values as ``nn.Conv``/``nn.ConvTranspose``
  (so checkpoints written with them restore), and the same outputs."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 4, 5))
  pairs = [
    (nn.Conv(7, (3, 3)), conv.Conv(7, (3, 3))),
    (nn.Conv(7, (3, 3), use_bias=False), conv.Conv(7, (3, 3), use_bias=False)),
    (nn.Conv(7, (1, 1)), conv.Conv(7, (1, 1))),
    (nn.ConvTranspose(7, (2, 2), strides=(2, 2)), conv.Upsample(7)),
  ]
  for flax_layer, ours in pairs:
    ref = flax_layer.init(jax.random.key(1), x)
    for impl in ("native", *IMPLS):
      variables = ours.clone(impl=impl).init(jax.random.key(1), x)
      assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, ref)
      assert all(jax.tree.leaves(jax.tree.map(np.array_equal, variables, ref)))
      assert_close(ours.clone(impl=impl).apply(ref, x), flax_layer.apply(ref, x), 1e-5, f"{ours} {impl}")
  # The time fusion: the 1x1 convolution of the T maps stacked along channels, frame-major.
  clip = jax.random.normal(jax.random.key(2), (2, 4, 6, 4, 5))
  stacked = jnp.moveaxis(clip, 1, 3).reshape(2, 6, 4, 20)
  ref = nn.Conv(7, (1, 1)).init(jax.random.key(1), stacked)
  for impl in ("native", *IMPLS):
    fusion = conv.TimeFusion(7, impl=impl)
    assert jax.tree.map(np.shape, fusion.init(jax.random.key(1), clip)) == jax.tree.map(np.shape, ref)
    assert_close(fusion.apply(ref, clip), nn.Conv(7, (1, 1)).apply(ref, stacked), 1e-5, f"time fusion {impl}")


def test_max_pool_gradient_goes_to_the_first_maximum():
  x = jnp.array([[1.0, 3.0, 2.0, 2.0], [3.0, 0.0, 2.0, 2.0]]).reshape(1, 2, 4, 1)
  for impl in ("native", *IMPLS):
    y, vjp = jax.vjp(functools.partial(conv.max_pool2x2, impl=impl), x)
    assert y.reshape(-1).tolist() == [3.0, 2.0]
    assert vjp(jnp.ones_like(y))[0].reshape(2, 4).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]


def test_resolve_picks_per_backend():
  assert conv.resolve("auto", "cpu") == "mixed" and conv.resolve("auto", "cpu", train=False) == "native"
  assert conv.resolve("auto", "gpu") == "native" and conv.resolve("auto", "tpu") == "native"
  assert conv.resolve("matmul", "gpu") == "matmul" and conv.resolve("native", "cpu") == "native"
  with pytest.raises(ValueError, match="unknown convolution implementation"):
    conv.resolve("fft")
  with pytest.raises(ValueError, match="not resolved"):
    conv.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2)), "auto")


def test_network_loss_gradients_and_state_updates_agree():
  config = config_flags.load("default:test")
  config.model.widths = (4, 8)  # two levels: every layer kind, a third of the compile time
  frames = jax.random.uniform(jax.random.key(0), (4, 5, 16, 16, 3), minval=-1, maxval=1)

  def step(impl):
    config.model.conv_impl = impl
    model = task.build_model(config)
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(1), frames)

    def loss_fn(params):
      (_, aux), new = model.apply(
        {**variables, "params": params}, frames, train=True, mutable=["batch_stats", "memory"]
      )
      total, _ = loss.dual_stream_loss(
        aux, config.loss.alpha, config.loss.beta, config.loss.gamma_i, config.loss.gamma_x
      )
      return total, new

    (value, new), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
    return variables, value, grads, new

  ref_vars, ref_loss, ref_grads, ref_new = step("native")
  for impl in IMPLS:
    variables, value, grads, new = step(impl)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, variables, ref_vars))), "initial variables differ"
    assert float(value) == pytest.approx(float(ref_loss), rel=1e-5)
    # Biases followed by BatchNorm have gradients of rounding size: compare each leaf
    # against the largest gradient entry of the network too.
    largest = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(ref_grads))
    paths = jax.tree_util.tree_leaves_with_path(grads)
    for (path, g), g_ref in zip(paths, jax.tree.leaves(ref_grads)):
      assert_close(g, g_ref, 1e-3, f"{impl} gradient {jax.tree_util.keystr(path)}", scale=1e-3 * largest)
    for (path, v), v_ref in zip(jax.tree_util.tree_leaves_with_path(new), jax.tree.leaves(ref_new)):
      assert_close(v, v_ref, 1e-4, f"{impl} updated {jax.tree_util.keystr(path)}")


def test_runs_resume_with_another_implementation_but_not_another_model(tmp_path):
  """``model.conv_impl`` changes how the model is computed, not its parameters: a run may
  resume with another value, or from a checkpoint saved before the field existed."""
  saved = config_flags.load("synthetic:test").to_dict()
  current = config_flags.load("synthetic:test")
  current.model.conv_impl = "matmul"
  loop.check_saved_config(saved, current.to_dict(), tmp_path)
  del saved["model"]["conv_impl"]
  loop.check_saved_config(saved, current.to_dict(), tmp_path)
  current.model.widths = (4, 8, 32)
  with pytest.raises(checkpointing.ConfigMismatchError, match="model.widths"):
    loop.check_saved_config(saved, current.to_dict(), tmp_path)
