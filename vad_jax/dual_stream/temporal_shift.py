"""Temporal shift (TSM) and the residual temporal shift module (RTSM, Eq. 1).

Feature maps keep their time axis: ``[batch, time, height, width, channels]``.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vad_jax.dual_stream import conv as conv_lib

Array = Any


def temporal_shift(x: Array, fold_fraction: float = 1 / 8, circular: bool = False) -> Array:
  """Moves a slice of channels one step along time in each direction.

  Channels ``[0, fold)`` at time ``t`` take the values of time ``t + 1`` (shift towards
  the past); channels ``[fold, 2 fold)`` take the values of time ``t - 1`` (shift towards
  the future); the rest stay. ``fold = int(channels * fold_fraction)``. The frame rolled
  in from the other end of the clip is zeroed, as in TSM, unless ``circular``.

  Args:
    x: ``[batch, time, height, width, channels]``.
    fold_fraction: fraction of channels shifted in each direction (1/8 by default).
    circular: keep the wrapped-around frame instead of zeroing it.
  """
  if x.ndim != 5:
    raise ValueError(f"temporal_shift expects [batch, time, height, width, channels], got shape {x.shape}")
  t, c = x.shape[1], x.shape[-1]
  fold = int(c * fold_fraction)
  if fold == 0 or t == 1:
    return x
  backward = jnp.roll(x[..., :fold], shift=-1, axis=1)  # time t <- t + 1
  forward = jnp.roll(x[..., fold : 2 * fold], shift=1, axis=1)  # time t <- t - 1
  if not circular:
    time = jnp.arange(t).reshape(1, t, 1, 1, 1)
    backward = jnp.where(time == t - 1, 0, backward)
    forward = jnp.where(time == 0, 0, forward)
  return jnp.concatenate([backward, forward, x[..., 2 * fold :]], axis=-1)


class ResidualTemporalShift(nn.Module):
  """RTSM, Eq. (1): ``q'' = LeakyReLU(q + W2 LeakyReLU(W1 shift(q)))``.

  The shift sits inside the residual branch so the identity path keeps the current
  frame's activations. Input and output ``[batch, time, height, width, channels]``.
  """

  fold_fraction: float = 1 / 8
  circular: bool = False
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, q: Array) -> Array:
    b, t, h, w, c = q.shape
    shifted = temporal_shift(q, self.fold_fraction, self.circular).reshape(b * t, h, w, c)
    conv = lambda name: conv_lib.Conv(c, (3, 3), dtype=self.dtype, impl=self.conv_impl, name=name)
    branch = conv("conv1")(shifted)  # W1
    branch = nn.leaky_relu(branch, self.negative_slope)
    branch = conv("conv2")(branch)  # W2
    return nn.leaky_relu(q + branch.reshape(b, t, h, w, c), self.negative_slope)
