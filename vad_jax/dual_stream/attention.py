"""Residual channel attention module (RCAM, Eqs. 2-4) of the decoder."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vad_jax.dual_stream import conv as conv_lib

Array = Any


class ChannelAttention(nn.Module):
  """Channel attention block (CAB), Eq. (3): ``s(U) = sigmoid(W4 LeakyReLU(W3 GAP(U)))``.

  Input ``[batch, height, width, channels]``; returns the per-channel weights
  ``[batch, 1, 1, channels]``.
  """

  reduction: int = 16
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, u: Array) -> Array:
    c = u.shape[-1]
    z = jnp.mean(u, axis=(1, 2), keepdims=True)  # GAP: [b, 1, 1, c]
    z = conv_lib.Conv(max(c // self.reduction, 1), (1, 1), dtype=self.dtype, impl=self.conv_impl, name="reduce")(
      z
    )  # W3
    z = nn.leaky_relu(z, self.negative_slope)
    z = conv_lib.Conv(c, (1, 1), dtype=self.dtype, impl=self.conv_impl, name="expand")(z)  # W4
    return nn.sigmoid(z)


class ResidualChannelAttention(nn.Module):
  """RCAM: ``U = W2 LeakyReLU(BN(W1 q))`` (Eq. 2), ``q' = q + U * s(U)`` (Eq. 4).

  Input and output ``[batch, height, width, channels]``. Returns ``(q', weights)`` where
  ``weights`` are the channel weights ``s(U)`` (kept for attention visualisation).
  """

  reduction: int = 16
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, q: Array, *, train: bool) -> tuple[Array, Array]:
    c = q.shape[-1]
    u = conv_lib.Conv(c, (3, 3), dtype=self.dtype, impl=self.conv_impl, name="conv1")(q)  # W1
    u = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name="bn")(u)
    u = nn.leaky_relu(u, self.negative_slope)
    u = conv_lib.Conv(c, (3, 3), dtype=self.dtype, impl=self.conv_impl, name="conv2")(u)  # W2
    s = ChannelAttention(self.reduction, self.negative_slope, self.dtype, self.conv_impl, name="cab")(u)
    return q + u * s, s
