"""ConvLSTM cell/layer against a numpy reference; the published baseline's size and training."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vad_jax.hybrid.convlstm import ConvLSTM, ConvLSTMBaseline, ConvLSTMCell, hard_sigmoid_keras2


def _np_conv(x, k, padding):
  """Plain 'cross-correlation' conv: x [b, h, w, ci], k [kh, kw, ci, co] -> [b, h', w', co]."""
  kh, kw = k.shape[:2]
  if padding == "SAME":
    x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  b, h, w, _ = x.shape
  oh, ow = h - kh + 1, w - kw + 1
  out = np.zeros((b, oh, ow, k.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("bhwc,co->bhwo", x[:, i : i + oh, j : j + ow], k[i, j])
  return out


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def _np_hard_sigmoid(z):
  return np.clip(0.2 * z + 0.5, 0.0, 1.0)


def _np_convlstm(xs, kernel, rkernel, bias, padding, masks=None, gate=_sigmoid):
  """Keras ConvLSTM2D, step by step: gates i, f, c, o; recurrent conv always SAME."""
  b, t = xs.shape[:2]
  f = rkernel.shape[2]
  c = h = None
  outs = []
  for step in range(t):
    zx = _np_conv(xs[:, step], kernel, padding)
    if h is None:
      c = h = np.zeros(zx.shape[:3] + (f,))
    if masks is None:
      zh = _np_conv(h, rkernel, "SAME")
    else:  # one mask per gate on h
      zh = np.concatenate([_np_conv(h * masks[g], rkernel[..., g * f : (g + 1) * f], "SAME") for g in range(4)], -1)
    z = zx + zh + bias
    i, fg, g, o = np.split(z, 4, axis=-1)
    c = gate(fg) * c + gate(i) * np.tanh(g)
    h = gate(o) * np.tanh(c)
    outs.append(h)
  return np.stack(outs, 1)


@pytest.mark.parametrize("padding,keras2_gates", [("VALID", False), ("SAME", False), ("VALID", True)])
def test_convlstm_layer_matches_numpy_reference(padding, keras2_gates):
  rng = np.random.default_rng(0)
  xs = rng.standard_normal((2, 3, 6, 5, 2)).astype(np.float32)
  gate_fn = hard_sigmoid_keras2 if keras2_gates else jax.nn.sigmoid
  layer = ConvLSTM(features=3, padding=padding, recurrent_activation=gate_fn)
  variables = jax.jit(layer.init, static_argnames="train")(jax.random.key(0), xs, train=False)
  p = variables["params"]["cell"]
  assert p["kernel"].shape == (3, 3, 2, 12) and p["recurrent_kernel"].shape == (3, 3, 3, 12)
  # Keras unit_forget_bias: ones on the forget slice only.
  np.testing.assert_array_equal(np.asarray(p["bias"]), np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
  bias = rng.standard_normal(12).astype(np.float32) * 0.3
  params = {"cell": {**p, "bias": jnp.asarray(bias)}}
  ys, aux = layer.apply({"params": params}, xs, train=False)
  expected = _np_convlstm(
    xs,
    np.asarray(p["kernel"]),
    np.asarray(p["recurrent_kernel"]),
    bias,
    padding,
    gate=_np_hard_sigmoid if keras2_gates else _sigmoid,
  )
  assert ys.shape == expected.shape == ((2, 3, 4, 3, 3) if padding == "VALID" else (2, 3, 6, 5, 3))
  np.testing.assert_allclose(np.asarray(ys), expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(aux["carry"][1]), expected[:, -1], rtol=1e-4, atol=1e-5)


def test_cell_recurrent_mask_and_rnn_wrapper():
  rng = np.random.default_rng(1)
  xs = rng.standard_normal((1, 3, 5, 5, 2)).astype(np.float32)
  cell = ConvLSTMCell(features=2, padding="SAME")
  carry = cell.initialize_carry(None, xs[:, 0].shape)
  params = cell.init(jax.random.key(0), carry, xs[:, 0])["params"]
  masks = (rng.random((4, 1, 5, 5, 2)) > 0.3).astype(np.float32) / 0.7
  expected = _np_convlstm(
    xs,
    np.asarray(params["kernel"]),
    np.asarray(params["recurrent_kernel"]),
    np.asarray(params["bias"]),
    "SAME",
    masks=masks,
  )
  outs = []
  for step in range(3):  # the cell as a step function, with a fixed per-gate mask
    carry, y = cell.apply({"params": params}, carry, xs[:, step], jnp.asarray(masks))
    outs.append(np.asarray(y))
  np.testing.assert_allclose(np.stack(outs, 1), expected, rtol=1e-4, atol=1e-5)
  # Usable by flax's generic RNN wrapper (a scan over time): no mask = plain ConvLSTM.
  rnn = nn.RNN(cell)
  ys = rnn.apply({"params": {"cell": params}}, xs)
  plain = _np_convlstm(
    xs, np.asarray(params["kernel"]), np.asarray(params["recurrent_kernel"]), np.asarray(params["bias"]), "SAME"
  )
  np.testing.assert_allclose(np.asarray(ys), plain, rtol=1e-4, atol=1e-5)
  assert not np.allclose(plain, expected)


def _keras_baseline_param_count(in_channels, frames=30, size=64, filters=(4, 8, 16, 32), k=3, classes=2):
  """Keras ConvLSTM2D: kernel k*k*cin*4f + recurrent kernel k*k*f*4f + bias 4f; then dense."""
  total, cin, s = 0, in_channels, size
  for f in filters:
    total += k * k * cin * 4 * f + k * k * f * 4 * f + 4 * f
    cin = f
    s = s - k + 1  # VALID conv
    s = -(-s // 2)  # (1, 2, 2) max-pool, SAME
  flat = frames * s * s * cin
  return total + flat * classes + classes


@pytest.mark.parametrize("channels", [3, 1])
def test_baseline_parameter_count_equals_keras(channels):
  model = ConvLSTMBaseline()
  clips = jax.ShapeDtypeStruct((1, 30, 64, 64, channels), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), clips)
  n = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes["params"]))
  expected = _keras_baseline_param_count(channels)
  assert n == expected
  assert n == {3: 91106, 1: 90818}[channels]  # "about 91k" (HYBRID.md)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), shapes, clips)
  assert out[0].shape == (1, 2) and out[1]["features"].shape == (1, 30 * 3 * 3 * 32)


def test_baseline_max_pooling_and_input_norm_options():
  """``pooling="max"`` replaces the flattened map by each feature's maximum over time and
  space (a dense layer independent of clip length and size, and of where a feature
  fires); ``temporal_norm="batch"`` adds a BatchNorm of the input channels."""
  clips = np.random.default_rng(0).random((2, 30, 64, 64, 1)).astype(np.float32)
  model = ConvLSTMBaseline(pooling="max", temporal_norm="batch", temporal_input="differences")
  variables = jax.jit(model.init, static_argnames="train")(jax.random.key(0), clips, train=False)
  assert variables["params"]["dense"]["kernel"].shape == (32, 2)
  assert variables["batch_stats"]["input_norm"]["mean"].shape == (2,)
  logits, aux = jax.jit(model.apply, static_argnames="train")(variables, clips, train=False)
  assert logits.shape == (2, 2) and aux["features"].shape == (2, 32)
  # The maximum sees where a feature fires only through its value: with left-right
  # symmetric kernels a mirrored clip gives the same features (30x30: every map has an
  # even width, so the 2x2 pooling windows mirror onto each other).
  small = ConvLSTMBaseline(filters=(2, 4), pooling="max")
  clip = clips[:, :6, :30, :30]
  params = jax.jit(small.init, static_argnames="train")(jax.random.key(1), clip, train=False)["params"]
  params = jax.tree.map(lambda leaf: 0.5 * (leaf + leaf[:, ::-1]) if leaf.ndim == 4 else leaf, params)
  apply = jax.jit(lambda x: small.apply({"params": params}, x, train=False)[1]["features"])
  np.testing.assert_allclose(apply(clip[:, :, :, ::-1]), apply(clip), rtol=1e-5, atol=1e-6)
  flat = ConvLSTMBaseline(filters=(2, 4))  # the published head: the features keep their positions
  flat_params = jax.jit(flat.init, static_argnames="train")(jax.random.key(1), clip, train=False)["params"]
  flat_params = {**flat_params, **{k: v for k, v in params.items() if k != "dense"}}
  apply_flat = jax.jit(lambda x: flat.apply({"params": flat_params}, x, train=False)[1]["features"])
  assert np.abs(np.asarray(apply_flat(clip[:, :, :, ::-1])) - np.asarray(apply_flat(clip))).max() > 1e-4
  with pytest.raises(ValueError, match="pooling"):
    ConvLSTMBaseline(pooling="mean").init(jax.random.key(0), clips[:1, :4, :16, :16], train=False)
  with pytest.raises(ValueError, match="temporal_norm"):
    ConvLSTMBaseline(temporal_norm="layer").init(jax.random.key(0), clips[:1, :4, :16, :16], train=False)


def test_baseline_trains_on_tiny_clips():
  # Dropout off so the per-step losses are deterministic and comparable (dropout is
  # covered by test_recurrent_dropout_is_stochastic_in_training).
  model = ConvLSTMBaseline(filters=(2, 4), recurrent_dropout=0.0, dropout=0.0)
  key = jax.random.key(0)
  # Class 1 clips contain a bright square that moves; class 0 clips are static noise.
  rng = np.random.default_rng(0)
  clips = rng.random((4, 4, 12, 12, 1)).astype(np.float32) * 0.2
  for t in range(4):
    clips[2:, t, 2 + t : 6 + t, 2 + t : 6 + t] = 1.0
  labels = jnp.array([0, 0, 1, 1])
  variables = jax.jit(model.init, static_argnames="train")(key, clips, train=False)
  tx = optax.adam(1e-2)
  params = variables["params"]
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss_fn(p):
      logits, aux = model.apply({"params": p}, clips, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), aux["probs"]

    (loss, probs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss, probs

  losses = []
  for _ in range(25):
    params, opt, loss, probs = step(params, opt)
    losses.append(float(loss))
  np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, rtol=1e-5)
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.7 * losses[0], losses


def test_recurrent_dropout_is_stochastic_in_training():
  xs = jnp.asarray(np.random.default_rng(0).standard_normal((1, 3, 5, 5, 1)), jnp.float32)
  layer = ConvLSTM(features=2, recurrent_dropout=0.5)
  variables = jax.jit(layer.init, static_argnames="train")(jax.random.key(0), xs, train=False)
  apply = jax.jit(layer.apply, static_argnames="train")
  a, _ = apply(variables, xs, train=True, rngs={"dropout": jax.random.key(1)})
  b, _ = apply(variables, xs, train=True, rngs={"dropout": jax.random.key(2)})
  c, _ = apply(variables, xs, train=False)
  d, _ = apply(variables, xs, train=False)
  # The first step has h = 0, so masks only matter from step 2 on.
  np.testing.assert_allclose(np.asarray(a[:, 0]), np.asarray(c[:, 0]), rtol=1e-6)
  assert not np.allclose(np.asarray(a[:, 1:]), np.asarray(b[:, 1:]))
  np.testing.assert_array_equal(np.asarray(c), np.asarray(d))


def test_rank_errors():
  with pytest.raises(ValueError, match="rank 5"):
    ConvLSTMBaseline().init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)


@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.4])
def test_gradients_with_the_patches_recomputed_equal_plain_autodiff(monkeypatch, recurrent_dropout):
  """The cell's gate pre-activations are rematerialised in the backward pass (the scan
  keeps inputs and states, not their 3x3 patches): the loss and every gradient equal those
  of plain autodiff, which keeps the patches."""
  from vad_jax.hybrid import convlstm

  xs = jnp.asarray(np.random.default_rng(3).standard_normal((2, 4, 7, 7, 3)), jnp.float32)
  layer = ConvLSTM(features=4, padding="VALID", recurrent_dropout=recurrent_dropout)
  params = layer.init(jax.random.key(0), xs, train=False)["params"]

  def loss_and_grads():  # a new function each time: JAX caches traces by function
    def loss(params, xs):
      ys, _ = layer.apply({"params": params}, xs, train=True, rngs={"dropout": jax.random.key(1)})
      return jnp.sum(jnp.sin(ys))

    return jax.value_and_grad(loss, argnums=(0, 1))

  assert "remat" in str(jax.make_jaxpr(loss_and_grads())(params, xs))
  rematerialised = jax.jit(loss_and_grads())(params, xs)
  monkeypatch.setattr(convlstm, "_gate_inputs", convlstm._gate_inputs.__wrapped__)
  assert "remat" not in str(jax.make_jaxpr(loss_and_grads())(params, xs))
  plain = jax.jit(loss_and_grads())(params, xs)
  for a, b in zip(jax.tree.leaves(rematerialised), jax.tree.leaves(plain)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
