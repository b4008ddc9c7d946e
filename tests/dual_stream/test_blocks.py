"""Temporal shift, RTSM and RCAM: numerics against explicit references, and shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vad_jax.dual_stream.attention import ChannelAttention, ResidualChannelAttention
from vad_jax.dual_stream.temporal_shift import ResidualTemporalShift, temporal_shift


def reference_shift(x, fold, circular):
  """Loop-based TSM reference: channel-by-channel, frame-by-frame."""
  b, t, h, w, c = x.shape
  out = np.array(x, copy=True)
  for ti in range(t):
    src_next = ti + 1 if ti + 1 < t else (0 if circular else None)
    src_prev = ti - 1 if ti >= 1 else (t - 1 if circular else None)
    out[:, ti, ..., :fold] = 0 if src_next is None else x[:, src_next, ..., :fold]
    out[:, ti, ..., fold : 2 * fold] = 0 if src_prev is None else x[:, src_prev, ..., fold : 2 * fold]
  return out


@pytest.mark.parametrize("circular", [False, True])
def test_temporal_shift_matches_reference(circular):
  t, c = 4, 16
  x = (10.0 * np.arange(t)[:, None] + np.arange(c)[None, :]).reshape(1, t, 1, 1, c) + 1.0
  x = np.broadcast_to(x, (2, t, 3, 2, c)).copy()
  got = np.asarray(temporal_shift(jnp.asarray(x), 1 / 8, circular))
  np.testing.assert_array_equal(got, reference_shift(x, fold=2, circular=circular))


def test_temporal_shift_moves_and_zeroes_the_right_channels():
  x = (10.0 * np.arange(3)[:, None] + np.arange(8)[None, :] + 1.0).reshape(1, 3, 1, 1, 8)
  got = np.asarray(temporal_shift(jnp.asarray(x), 1 / 8))[0, :, 0, 0, :]
  # channel 0 takes the next frame's value, the last frame gets zero
  np.testing.assert_array_equal(got[:, 0], [11.0, 21.0, 0.0])
  # channel 1 takes the previous frame's value, the first frame gets zero
  np.testing.assert_array_equal(got[:, 1], [0.0, 2.0, 12.0])
  # channels 2..7 are untouched
  np.testing.assert_array_equal(got[:, 2:], x[0, :, 0, 0, 2:])


def test_temporal_shift_rejects_wrong_rank():
  with pytest.raises(ValueError, match="batch, time"):
    temporal_shift(jnp.zeros((2, 3, 4, 5)))


def test_rtsm_equation_1():
  """q'' = LeakyReLU(q + W2 LeakyReLU(W1 shift(q))) with the module's own weights."""
  q = jax.random.normal(jax.random.key(0), (2, 3, 4, 4, 8))
  module = ResidualTemporalShift(negative_slope=0.2)
  params = module.init(jax.random.key(1), q)
  out = module.apply(params, q)
  assert out.shape == q.shape
  p = params["params"]
  conv = lambda x, layer: (
    jax.lax.conv_general_dilated(x, layer["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    + layer["bias"]
  )
  shifted = temporal_shift(q).reshape(6, 4, 4, 8)
  branch = conv(jax.nn.leaky_relu(conv(shifted, p["conv1"]), 0.2), p["conv2"])
  expected = jax.nn.leaky_relu(q + branch.reshape(q.shape), 0.2)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_channel_attention_and_rcam():
  q = jax.random.normal(jax.random.key(0), (2, 8, 8, 32))
  cab = ChannelAttention(reduction=16)
  cab_vars = cab.init(jax.random.key(1), q)
  s = cab.apply(cab_vars, q)
  assert s.shape == (2, 1, 1, 32)
  assert cab_vars["params"]["reduce"]["kernel"].shape == (1, 1, 32, 2)  # r = 16
  assert bool(jnp.all((s > 0) & (s < 1)))

  rcam = ResidualChannelAttention(reduction=16)
  variables = rcam.init(jax.random.key(2), q, train=False)
  (out, weights), _ = rcam.apply(variables, q, train=True, mutable=["batch_stats"])
  assert out.shape == q.shape and weights.shape == (2, 1, 1, 32)
  # Eq. (4): the correction q' - q equals U * s(U) with s computed by the CAB on U.
  out_eval, weights_eval = rcam.apply(variables, q, train=False)
  correction = out_eval - q
  u = correction / weights_eval
  s_again = cab.apply({"params": variables["params"]["cab"]}, u)
  np.testing.assert_allclose(s_again, weights_eval, rtol=1e-4, atol=1e-5)
