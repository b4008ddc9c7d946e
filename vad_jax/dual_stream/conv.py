"""Convolutions and pooling of the dual-stream network, as XLA convolutions or as matmuls.

The implementations compute the same layers with the same parameters (``kernel
[kh, kw, in, out]`` and ``bias [out]``, named and initialised as ``flax.linen.Conv`` and
``ConvTranspose`` do, so checkpoints do not depend on the choice):

* ``native``: ``lax.conv_general_dilated`` / ``lax.conv_transpose`` and ``reduce_window``
  max pooling, which XLA maps to cuDNN on GPUs and to its own kernels on CPUs;
* ``matmul``: every layer as matrix products whose gradients are matrix products too.
  A 1x1 convolution is ``x @ kernel``; the decoder's 2x2 stride-2 transposed
  convolution writes each input pixel to its own 2x2 output block, so it is
  ``x @ kernel`` and a depth-to-space reshape; a 3x3 convolution is the ``(dy, dx, c)``
  neighbourhood of every pixel (``patches``) ``@ kernel``; 2x2 max pooling is a
  maximum over the four elements of each block whose gradient goes to the element that
  won (the first maximum, as XLA's select-and-scatter picks it);
* ``mixed``: 3x3 convolutions native, everything else as in ``matmul``.

``auto`` picks ``mixed`` for training on CPUs and ``native`` otherwise (``resolve``).
Measured on XLA:CPU (docs/RESULTS.md): the transposed convolutions' and max pooling's
gradients are several times slower natively than as matmuls and masks, while the 3x3
convolutions' patches (9x the activations) make ``matmul`` memory-bound and slower than
XLA's own 3x3 convolutions, forward and backward, at every width the network uses; the
inference pass alone was fastest all native.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = Any

IMPLS = ("auto", "native", "matmul", "mixed")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def resolve(impl: str, backend: str | None = None, train: bool = True) -> str:
  """The implementation (``native``, ``matmul`` or ``mixed``) a configured ``impl`` runs
  on ``backend`` (default: JAX's default backend) in a training (``train``) or inference
  pass. ``auto`` is ``mixed`` for training on CPUs and ``native`` otherwise: on XLA:CPU
  the inference pass, which has no gradients, ran fastest with XLA's own layers; on GPUs
  and TPUs cuDNN's and the TPU's convolutions are kept."""
  if impl not in IMPLS:
    raise ValueError(f"unknown convolution implementation {impl!r}; expected one of {IMPLS}")
  if impl != "auto":
    return impl
  return "mixed" if train and (backend or jax.default_backend()) == "cpu" else "native"


def _check(impl: str) -> None:
  if impl not in ("native", "matmul", "mixed"):
    raise ValueError(f"convolution implementation {impl!r} is not resolved; expected native, matmul or mixed")


def patches(x: Array, kh: int, kw: int) -> Array:
  """``[b, h, w, c] -> [b, h, w, kh * kw * c]``: the ``kh x kw`` neighbourhood of every
  pixel (``SAME`` zero padding as XLA pads), ordered ``(dy, dx, c)`` like a
  ``[kh, kw, c, out]`` kernel."""
  _, h, w, _ = x.shape
  x = jnp.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
  return jnp.concatenate([x[:, dy : dy + h, dx : dx + w] for dy in range(kh) for dx in range(kw)], axis=-1)


def conv2d(x: Array, kernel: Array, impl: str) -> Array:
  """Stride-1 ``SAME`` cross-correlation of ``x [b, h, w, c_in]`` with ``kernel [kh, kw,
  c_in, c_out]`` (no bias)."""
  _check(impl)
  kh, kw, c_in, c_out = kernel.shape
  if impl == "native" or (impl == "mixed" and (kh, kw) != (1, 1)):
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS)
  if (kh, kw) == (1, 1):
    return x @ kernel.reshape(c_in, c_out)
  return patches(x, kh, kw) @ kernel.reshape(kh * kw * c_in, c_out)


def upsample2x(x: Array, kernel: Array, impl: str) -> Array:
  """``flax.linen.ConvTranspose(kernel_size=(2, 2), strides=(2, 2))`` without bias:
  ``[b, h, w, c_in] -> [b, 2h, 2w, c_out]`` with ``kernel [2, 2, c_in, c_out]``.

  Output pixel ``(2i + a, 2j + e)`` is ``x[i, j] @ kernel[1 - a, 1 - e]`` (Flax does not
  transpose the kernel, so ``lax.conv_transpose`` applies it flipped).
  """
  if kernel.shape[:2] != (2, 2):
    raise ValueError(f"upsample2x takes a 2x2 kernel, got {kernel.shape}")
  _check(impl)
  if impl == "native":
    return lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=_DIMENSIONS)
  b, h, w, _ = x.shape
  c_out = kernel.shape[-1]
  y = jnp.einsum("bhwc,aeco->bhaweo", x, kernel[::-1, ::-1])
  return y.reshape(b, 2 * h, 2 * w, c_out)


def max_pool2x2(x: Array, impl: str) -> Array:
  """2x2 max pooling with stride 2 of ``[b, h, w, c]`` (``h``, ``w`` even)."""
  _check(impl)
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f"max_pool2x2 needs an even height and width, got shape {x.shape}")
  if impl == "native":
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  return _max_pool2x2_masked(x)


def _pool_with_choice(x: Array) -> tuple[Array, Array]:
  """2x2 stride-2 max pooling of ``[b, h, w, c]`` and, per output, which element of its
  block (0-3, row-major) is the first maximum, as XLA's select-and-scatter picks it. The
  choice is an index found together with the maximum: the gradient never depends on
  comparing floats that XLA may recompute in another order."""
  b, h, w, c = x.shape
  blocks = x.reshape(b, h // 2, 2, w // 2, 2, c)
  pooled, choice = blocks[:, :, 0, :, 0], jnp.zeros((b, h // 2, w // 2, c), jnp.int8)
  for index, (i, j) in enumerate(((0, 1), (1, 0), (1, 1)), start=1):
    candidate = blocks[:, :, i, :, j]
    larger = candidate > pooled
    pooled, choice = jnp.where(larger, candidate, pooled), jnp.where(larger, jnp.int8(index), choice)
  return pooled, choice


@jax.custom_vjp
def _max_pool2x2_masked(x: Array) -> Array:
  return _pool_with_choice(x)[0]


def _max_pool_fwd(x):
  return _pool_with_choice(x)


def _max_pool_bwd(choice, g):
  b, hh, ww, c = g.shape
  corners = [jnp.where(choice == index, g, jnp.zeros((), g.dtype)) for index in range(4)]
  rows = [jnp.stack(corners[2 * i : 2 * i + 2], axis=-2) for i in (0, 1)]  # [b, h/2, w/2, 2, c]
  return (jnp.stack(rows, axis=2).reshape(b, 2 * hh, 2 * ww, c),)


_max_pool2x2_masked.defvjp(_max_pool_fwd, _max_pool_bwd)


class Conv(nn.Module):
  """``flax.linen.Conv`` (stride 1, ``SAME``) with the same parameters, computed by
  ``impl``. Input ``[batch, h, w, c_in]``; output ``[batch, h, w, features]``."""

  features: int
  kernel_size: Sequence[int] = (3, 3)
  use_bias: bool = True
  dtype: Any = jnp.float32
  impl: str = "native"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features), jnp.float32)
    y = conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32).astype(self.dtype)
    return y


class Upsample(nn.Module):
  """``flax.linen.ConvTranspose(features, (2, 2), strides=(2, 2))`` with the same
  parameters, computed by ``impl``: ``[batch, h, w, c_in] -> [batch, 2h, 2w, features]``."""

  features: int
  dtype: Any = jnp.float32
  impl: str = "native"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    return upsample2x(x.astype(self.dtype), kernel.astype(self.dtype), self.impl) + bias.astype(self.dtype)


class TimeFusion(nn.Module):
  """The 1x1 convolution that mixes the ``T`` per-frame maps of a level into one map:
  ``[batch, T, h, w, c] -> [batch, h, w, features]``. Parameters as ``flax.linen.Conv``
  with ``(1, 1)`` kernels on the maps concatenated along channels, frame-major
  (``kernel [1, 1, T * c, features]``); ``matmul`` contracts time and channels in one
  product without materialising the concatenation."""

  features: int
  dtype: Any = jnp.float32
  impl: str = "native"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 5:
      raise ValueError(f"TimeFusion expects [batch, time, height, width, channels], got shape {x.shape}")
    _check(self.impl)
    b, t, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, t * c, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.impl == "native":
      y = conv2d(jnp.moveaxis(x, 1, 3).reshape(b, h, w, t * c), kernel, "native")
    else:
      y = jnp.einsum("bthwc,tco->bhwo", x, kernel.reshape(t, c, self.features))
    return y + bias.astype(self.dtype)
