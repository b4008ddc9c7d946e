"""Convolutional LSTM (Shi et al., 2015) with the Keras ``ConvLSTM2D`` layout, and the
published ConvLSTM baseline classifier (HYBRID.md, baseline 1).

Cell equations (one time step, ``*`` = 2D convolution, gate order i, f, c, o as Keras):

    z   = W * x_t + U * h_{t-1} + b            # W: ``kernel``, U: ``recurrent_kernel``
    i, f, g, o = split(z, 4)
    c_t = sigma(f) c_{t-1} + sigma(i) act(g)
    h_t = sigma(o) act(c_t)

``W`` convolves with the layer's padding (``VALID`` shrinks the state to the output
size); ``U`` always uses ``SAME`` padding so the state keeps its size, as in Keras.
Parameters: ``kernel [k, k, c_in, 4f]``, ``recurrent_kernel [k, k, f, 4f]``,
``bias [4f]`` (forget-gate slice initialised to 1, Keras ``unit_forget_bias``); so a
layer has ``4 (k k (c_in + f) f + f)`` parameters, exactly as Keras.

Recurrent dropout follows Keras (Gal & Ghahramani's variational dropout): one dropout
mask per gate is drawn per sequence and applied to ``h_{t-1}`` before the recurrent
convolution at every step. It is implemented as a grouped convolution of the four
masked copies of ``h`` with the four gate slices of ``U``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = Any


def hard_sigmoid_keras2(x: Array) -> Array:
  """Keras 2 ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)`` (ConvLSTM2D's default gate activation
  before Keras 3, which uses the logistic sigmoid)."""
  return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _unit_forget_bias(key, shape, dtype=jnp.float32):
  del key
  f = shape[0] // 4
  return jnp.zeros(shape, dtype).at[f : 2 * f].set(1.0)


def _patches(x: Array, kh: int, kw: int, padding: str) -> Array:
  """``[b, h, w, c] -> [b, h', w', kh * kw * c]``: the ``kh x kw`` neighbourhood of every
  output pixel, ordered (dy, dx, c) like a ``[kh, kw, c, out]`` kernel (XLA padding)."""
  if padding == "SAME":
    pad_h, pad_w = ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
    x = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
  elif padding != "VALID":
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.concatenate([x[:, dy : dy + oh, dx : dx + ow] for dy in range(kh) for dx in range(kw)], axis=-1)


def conv_as_matmul(x: Array, kernel: Array, padding: str) -> Array:
  """A stride-1 2D convolution (cross-correlation, ``HWIO`` kernel) as patches @ kernel.

  Same values as ``lax.conv_general_dilated``. Inside a scan over time its gradient is
  several times cheaper on XLA:CPU than the convolution's (docs/RESULTS.md: the
  HybridModel-1 CPU training step went from 12.3 s to 3.0 s).
  """
  kh, kw, c_in, c_out = kernel.shape
  return _patches(x, kh, kw, padding) @ kernel.reshape(kh * kw * c_in, c_out)


@functools.partial(jax.checkpoint, static_argnums=(5,))
def _gate_inputs(
  x: Array, h_prev: Array, recurrent_mask: Array | None, kernel: Array, recurrent_kernel: Array, padding: str
) -> Array:
  """The four gates' pre-activations without bias: ``conv(x) + conv(h_prev [* mask])``.

  Rematerialised in the backward pass (``jax.checkpoint``): a scan over time otherwise
  keeps every step's 3x3 patches for the kernel gradients, 9x its input (36x the state
  with recurrent dropout), written and read back through memory. Keeping the inputs
  instead made the training steps of HybridModel-1 at the CPU size and of the ConvLSTM
  baseline 1.2-1.4x faster on XLA:CPU, with the same values (tests/test_convlstm.py;
  docs/RESULTS.md, "ConvLSTM backward pass on XLA:CPU").
  """
  kh, kw, f = recurrent_kernel.shape[:3]
  z = conv_as_matmul(x, kernel, padding)
  if recurrent_mask is None:
    return z + conv_as_matmul(h_prev, recurrent_kernel, "SAME")
  # Gate g sees h * mask[g]: the columns [g f, (g + 1) f) of the recurrent kernel
  # applied to the patches of the g-th masked copy of the state.
  masked = jnp.stack([_patches(h_prev * recurrent_mask[g], kh, kw, "SAME") for g in range(4)])
  weights = recurrent_kernel.reshape(kh * kw * f, 4, f)
  return z + jnp.einsum("gbhwk,kgf->bhwgf", masked, weights).reshape(z.shape)


class ConvLSTMCell(nn.RNNCellBase):
  """One ConvLSTM step; usable as an ``nn.scan`` / ``nn.RNN`` body.

  ``__call__(carry, x, recurrent_mask=None) -> (carry, h)`` with ``x [batch, h, w, c_in]``,
  ``carry = (c, h)`` each ``[batch, h', w', features]`` (``h' = h - k + 1`` for ``VALID``),
  and optional ``recurrent_mask [4, batch, h', w', features]`` (already scaled by
  ``1 / keep``) applied to ``h`` per gate.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  padding: str = "SAME"
  activation: Callable[[Array], Array] = jnp.tanh
  recurrent_activation: Callable[[Array], Array] = jax.nn.sigmoid
  use_bias: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, carry: tuple[Array, Array], x: Array, recurrent_mask: Array | None = None):
    if x.ndim != 4:
      raise ValueError(f"expected x of rank 4 [batch, h, w, c], got shape {x.shape}")
    c_prev, h_prev = carry
    f = self.features
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (kh, kw, x.shape[-1], 4 * f), self.param_dtype)
    recurrent_kernel = self.param(
      "recurrent_kernel", nn.initializers.orthogonal(), (kh, kw, f, 4 * f), self.param_dtype
    )
    z = _gate_inputs(
      x.astype(self.dtype),
      h_prev.astype(self.dtype),
      None if recurrent_mask is None else recurrent_mask.astype(self.dtype),
      kernel.astype(self.dtype),
      recurrent_kernel.astype(self.dtype),
      self.padding,
    )
    if self.use_bias:
      bias = self.param("bias", _unit_forget_bias, (4 * f,), self.param_dtype)
      z = z + bias.astype(self.dtype)
    i, fg, g, o = jnp.split(z, 4, axis=-1)
    c = self.recurrent_activation(fg) * c_prev + self.recurrent_activation(i) * self.activation(g)
    h = self.recurrent_activation(o) * self.activation(c)
    return (c, h), h

  @nn.nowrap
  def output_spatial_shape(self, height: int, width: int) -> tuple[int, int]:
    """Spatial size of the state for an ``height x width`` input."""
    if self.padding == "VALID":
      return height - self.kernel_size[0] + 1, width - self.kernel_size[1] + 1
    if self.padding == "SAME":
      return height, width
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {self.padding!r}")

  @nn.nowrap
  def initialize_carry(self, rng, input_shape: tuple[int, ...]) -> tuple[Array, Array]:
    """Zero ``(c, h)`` for inputs of shape ``[batch, h, w, c_in]``."""
    del rng
    b, h, w, _ = input_shape
    oh, ow = self.output_spatial_shape(h, w)
    zeros = jnp.zeros((b, oh, ow, self.features), self.dtype)
    return zeros, zeros

  @property
  def num_feature_axes(self) -> int:
    return 3


class ConvLSTM(nn.Module):
  """A ConvLSTM layer over a clip (Keras ``ConvLSTM2D(return_sequences=True)``).

  Scans :class:`ConvLSTMCell` over time with ``nn.scan``.
  Input ``[batch, time, h, w, c_in]`` -> output ``[batch, time, h', w', features]``;
  ``aux = {"carry": (c_T, h_T)}``.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  padding: str = "SAME"
  activation: Callable[[Array], Array] = jnp.tanh
  recurrent_activation: Callable[[Array], Array] = jax.nn.sigmoid
  recurrent_dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> tuple[Array, dict[str, Any]]:
    if x.ndim != 5:
      raise ValueError(f"expected x of rank 5 [batch, time, h, w, c], got shape {x.shape}")
    b, t, h, w, c = x.shape
    scan_cell = nn.scan(
      ConvLSTMCell,
      variable_broadcast="params",
      split_rngs={"params": False},
      in_axes=(1, nn.broadcast),
      out_axes=1,
    )
    cell = scan_cell(
      features=self.features,
      kernel_size=self.kernel_size,
      padding=self.padding,
      activation=self.activation,
      recurrent_activation=self.recurrent_activation,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="cell",
    )
    carry = cell.initialize_carry(None, (b, h, w, c))
    mask = None
    if train and self.recurrent_dropout > 0.0:
      keep = 1.0 - self.recurrent_dropout
      shape = (4,) + carry[1].shape
      mask = jax.random.bernoulli(self.make_rng("dropout"), keep, shape).astype(self.dtype) / keep
    carry, ys = cell(carry, x, mask)
    return ys, {"carry": carry}


class ConvLSTMBaseline(nn.Module):
  """The published ConvLSTM clip classifier (HYBRID.md baseline 1).

  Per layer ``i``: ``ConvLSTM2D(filters[i], 3x3, tanh, recurrent_dropout, VALID,
  return_sequences)``, ``MaxPool3D((1, 2, 2), SAME)``, and (all but the last layer)
  ``TimeDistributed(Dropout(dropout))``; then flatten over time and space and a dense
  ``num_classes``-way layer. With 30 RGB frames of 64x64 and the default filters this
  has 91,106 parameters, as the Keras model.

  Input ``[batch, time, h, w, c]`` in ``[0, 1]``; returns ``(logits [batch, num_classes],
  aux)`` with ``aux["probs"]`` the softmax (Keras' output) and ``aux["features"]`` the
  flattened features.
  """

  filters: Sequence[int] = (4, 8, 16, 32)
  kernel_size: tuple[int, int] = (3, 3)
  padding: str = "VALID"
  # Keras 3 default; pass ``hard_sigmoid_keras2`` to mimic a Keras 2 (TF <= 2.15) model.
  recurrent_activation: Callable[[Array], Array] = jax.nn.sigmoid
  recurrent_dropout: float = 0.2
  dropout: float = 0.2
  num_classes: int = 2
  # "frames" (published) or "differences": each frame beside its change since the
  # previous frame (zero for the first), a labelled change (docs/hybrid.md).
  temporal_input: str = "frames"
  # "none" (published) or "batch": a BatchNorm of the input channels before the first
  # layer, a labelled change (docs/hybrid.md).
  temporal_norm: str = "none"
  # "flatten" (published: one weight per position and time step) or "max": the maximum
  # of each feature over time and space, a labelled change (docs/hybrid.md).
  pooling: str = "flatten"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, clips: Array, *, train: bool) -> tuple[Array, dict[str, Any]]:
    if clips.ndim != 5:
      raise ValueError(f"expected clips of rank 5 [batch, time, h, w, c], got shape {clips.shape}")
    b, t, h, w, c = clips.shape
    x = clips.astype(self.dtype)
    if self.temporal_input == "differences":
      x = with_differences(x)
    elif self.temporal_input != "frames":
      raise ValueError(f"temporal_input must be 'frames' or 'differences', got {self.temporal_input!r}")
    if self.pooling not in ("flatten", "max"):
      raise ValueError(f"pooling must be 'flatten' or 'max', got {self.pooling!r}")
    x = normalize_input(x, self.temporal_norm, train=train, dtype=self.dtype)
    for i, f in enumerate(self.filters):
      x, _ = ConvLSTM(
        features=f,
        kernel_size=self.kernel_size,
        padding=self.padding,
        recurrent_activation=self.recurrent_activation,
        recurrent_dropout=self.recurrent_dropout,
        dtype=self.dtype,
        name=f"conv_lstm2d_{i}",
      )(x, train=train)
      x = nn.max_pool(x, (1, 2, 2), strides=(1, 2, 2), padding="SAME")
      if i < len(self.filters) - 1:
        x = nn.Dropout(self.dropout, deterministic=not train, name=f"dropout_{i}")(x)
    features = x.max(axis=(1, 2, 3)) if self.pooling == "max" else x.reshape(b, -1)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="dense")(features)
    return logits, {"probs": jax.nn.softmax(logits.astype(jnp.float32)), "features": features}


TEMPORAL_NORMS = ("none", "batch")


def normalize_input(clips: Array, norm: str, *, train: bool, dtype: Any) -> Array:
  """``clips [b, t, h, w, c]`` unchanged (``norm="none"``) or each channel standardised
  by a BatchNorm over batch, time and space (``"batch"``, module ``input_norm``: batch
  statistics in training, running averages in evaluation)."""
  if norm not in TEMPORAL_NORMS:
    raise ValueError(f"temporal_norm must be one of {TEMPORAL_NORMS}, got {norm!r}")
  if norm == "none":
    return clips
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype, name="input_norm")(clips)


def with_differences(clips: Array) -> Array:
  """``[b, t, h, w, c]`` -> ``[b, t, h, w, 2c]``: each frame and its difference to the
  previous frame (zero for the first frame)."""
  change = jnp.concatenate([jnp.zeros_like(clips[:, :1]), clips[:, 1:] - clips[:, :-1]], axis=1)
  return jnp.concatenate([clips, change], axis=-1)


def keras_convlstm2d_param_count(in_channels: int, filters: int, kernel_size: int = 3) -> int:
  """Parameters of a Keras ``ConvLSTM2D``: kernel + recurrent kernel + bias over 4 gates."""
  k2 = kernel_size * kernel_size
  return 4 * (k2 * (in_channels + filters) * filters + filters)
