"""The dual-stream memory-augmented prediction network (Section II, Figs. 1 and 5).

Each stream is an encoder-decoder with skip connections at every resolution:

* encoder level ``i``: (2x2 max-pool), 3x3 conv-BN-LeakyReLU, RTSM (Eq. 1); the time
  axis is kept so the temporal shift can mix neighbouring frames;
* temporal fusion: the ``T`` per-frame maps of a level are concatenated along channels
  and mixed by a 1x1 conv into one map (the paper does not say how time is collapsed;
  see docs/model.md);
* a memory module (Eqs. 5-8) on every skip connection and on the bottleneck;
* decoder level: 2x2 transposed conv up-sampling, RCAM (Eqs. 2-4), concatenation with
  the memory output of the same resolution, two 3x3 conv-BN-LeakyReLU.

The spatial stream predicts the target frame from the ``T - 1`` frames before it; the
temporal stream predicts the last frame difference from the differences before it; the
fused prediction combines both (``fusion``).

Every convolution and pooling layer is computed as ``conv_impl`` says (``conv.py``:
XLA's convolutions, matmuls, or both mixed); the parameters and the values do not
depend on it.
"""

import functools
from collections.abc import Sequence
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from vad_jax import precision
from vad_jax.dual_stream import conv as conv_lib
from vad_jax.dual_stream.attention import ResidualChannelAttention
from vad_jax.dual_stream.memory import Memory
from vad_jax.dual_stream.temporal_shift import ResidualTemporalShift

Array = Any

FUSIONS = ("average", "sum", "spatial", "temporal")


def frame_differences(frames: Array) -> Array:
  """``[batch, time, h, w, c] -> [batch, time - 1, h, w, c]``: ``x[t] - x[t - 1]``."""
  return frames[:, 1:] - frames[:, :-1]


class ConvBlock(nn.Module):
  """``num_convs`` x (3x3 conv, BatchNorm, LeakyReLU) on ``[batch, h, w, c]``."""

  features: int
  num_convs: int = 1
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    for i in range(self.num_convs):
      x = conv_lib.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype, impl=self.conv_impl, name=f"conv{i}")(
        x
      )
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.leaky_relu(x, self.negative_slope)
    return x


class Encoder(nn.Module):
  """Per-frame 2D encoder with residual temporal shifts.

  Input ``[batch, time, h, w, c]``; returns one map per level,
  ``[batch, time, h / 2**i, w / 2**i, widths[i]]``.
  """

  widths: Sequence[int]
  use_rtsm: bool = True
  fold_fraction: float = 1 / 8
  circular_shift: bool = False
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> list[Array]:
    b, t = x.shape[:2]
    x = x.reshape(b * t, *x.shape[2:])
    levels = []
    for i, width in enumerate(self.widths):
      if i > 0:
        x = conv_lib.max_pool2x2(x, self.conv_impl)
      x = ConvBlock(width, 1, self.negative_slope, self.dtype, self.conv_impl, name=f"block{i}")(x, train=train)
      x = x.reshape(b, t, *x.shape[1:])
      if self.use_rtsm:
        x = ResidualTemporalShift(
          self.fold_fraction, self.circular_shift, self.negative_slope, self.dtype, self.conv_impl, name=f"rtsm{i}"
        )(x)
      levels.append(x)
      x = x.reshape(b * t, *x.shape[2:])
    return levels


class Decoder(nn.Module):
  """Up-sampling decoder with RCAM after each up-sampling and skip concatenation.

  ``skips`` are ``[batch, h / 2**i, w / 2**i, c_i]`` from fine (``i = 0``) to coarse (the
  bottleneck). Returns ``(output [batch, h, w, out_channels], attention_map [batch, h, w])``;
  the map is the mean magnitude of the last RCAM's channel-weighted correction.
  """

  widths: Sequence[int]
  out_channels: int
  use_rcam: bool = True
  reduction: int = 16
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, skips: Sequence[Array], *, train: bool) -> tuple[Array, Array]:
    block = functools.partial(
      ConvBlock, num_convs=2, negative_slope=self.negative_slope, dtype=self.dtype, conv_impl=self.conv_impl
    )
    x = block(self.widths[-1], name="bottleneck")(skips[-1], train=train)
    attention_map = None
    for i in reversed(range(len(self.widths) - 1)):
      x = conv_lib.Upsample(self.widths[i], self.dtype, self.conv_impl, name=f"up{i}")(x)
      x = nn.leaky_relu(x, self.negative_slope)
      if self.use_rcam:
        corrected, _ = ResidualChannelAttention(
          self.reduction, self.negative_slope, self.dtype, self.conv_impl, name=f"rcam{i}"
        )(x, train=train)
        attention_map = jnp.mean(jnp.abs(corrected - x), axis=-1).astype(jnp.float32)
        x = corrected
      x = jnp.concatenate([x, skips[i].astype(x.dtype)], axis=-1)
      x = block(self.widths[i], name=f"block{i}")(x, train=train)
    if attention_map is None:
      attention_map = jnp.zeros(x.shape[:3], jnp.float32)
    out = conv_lib.Conv(self.out_channels, (3, 3), dtype=self.dtype, impl=self.conv_impl, name="out")(x)
    return out.astype(jnp.float32), attention_map


class PredictionStream(nn.Module):
  """One sub-network of Fig. 5: encoder, temporal fusion, memories, decoder.

  Input ``[batch, time, h, w, c]``; output ``(prediction [batch, h, w, c], aux)`` with
  ``aux["distance"]`` and ``aux["discretization"]`` of shape ``[batch, levels]`` (one
  column per memory, fine to coarse) and ``aux["attention_map"]`` ``[batch, h, w]``.
  """

  widths: Sequence[int] = (32, 64, 128, 256)
  num_items: int = 20
  output_scale: float = 1.0
  use_rtsm: bool = True
  use_rcam: bool = True
  use_memory: bool = True
  skip_query: bool = True
  fold_fraction: float = 1 / 8
  circular_shift: bool = False
  attention_reduction: int = 16
  margin_a: float = 2.0
  margin_b: float = 1.0
  hinge: bool = True
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "native"

  @nn.compact
  def __call__(self, x: Array, *, train: bool, update_memory: bool) -> tuple[Array, dict[str, Array]]:
    b, t, h, w, c = x.shape
    levels = Encoder(
      self.widths,
      self.use_rtsm,
      self.fold_fraction,
      self.circular_shift,
      self.negative_slope,
      self.dtype,
      self.conv_impl,
      name="encoder",
    )(x.astype(self.dtype), train=train)
    skips, distances, discretization = [], [], []
    for i, level in enumerate(levels):
      fused = conv_lib.TimeFusion(level.shape[-1], self.dtype, self.conv_impl, name=f"time_fusion{i}")(level)
      if self.use_memory:
        # The bottleneck always passes query and read (MNAD); skips may pass the read only.
        concat = self.skip_query or i == len(levels) - 1
        fused, mem_aux = Memory(self.num_items, self.margin_a, self.margin_b, self.hinge, concat, name=f"memory{i}")(
          fused, update=update_memory
        )
        distances.append(mem_aux["distance"])
        discretization.append(mem_aux["discretization"])
      skips.append(fused)
    out, attention_map = Decoder(
      self.widths,
      c,
      self.use_rcam,
      self.attention_reduction,
      self.negative_slope,
      self.dtype,
      self.conv_impl,
      name="decoder",
    )(skips, train=train)
    zeros = jnp.zeros((b, 0), jnp.float32)
    aux = {
      "distance": jnp.stack(distances, axis=1) if distances else zeros,
      "discretization": jnp.stack(discretization, axis=1) if discretization else zeros,
      "attention_map": attention_map,
    }
    return self.output_scale * jnp.tanh(out.astype(jnp.float32)), aux  # float32 from here on


class DualStreamNet(nn.Module):
  """Spatial and temporal prediction streams and their fusion (Fig. 1).

  Input: a clip ``[batch, T, h, w, c]`` in [-1, 1]; its last frame is the target.
  The spatial stream sees frames ``T-1-spatial_inputs .. T-2`` (all ``T - 1`` by default)
  and predicts frame ``T-1``. The temporal stream sees the differences
  ``x[1] - x[0] .. x[T-2] - x[T-3]`` and predicts ``x[T-1] - x[T-2]``. ``h`` and ``w``
  must be divisible by ``2 ** (len(widths) - 1)``.

  Returns ``(fused [batch, h, w, c], aux)``; ``aux["spatial"]`` and ``aux["temporal"]``
  hold each stream's ``frame`` (its own estimate of the target frame), ``prediction``,
  ``target``, ``distance``, ``discretization`` and ``attention_map``.

  ``conv_impl`` (``auto``, ``native``, ``matmul`` or ``mixed``, see ``conv.resolve``)
  chooses how convolutions are computed; ``auto`` picks per backend and pass.
  """

  widths: Sequence[int] = (32, 64, 128, 256)
  num_items: int = 20
  spatial_inputs: Optional[int] = None
  fusion: str = "average"
  update_memory_at_test: bool = False
  use_rtsm: bool = True
  use_rcam: bool = True
  use_memory: bool = True
  skip_query: bool = True
  fold_fraction: float = 1 / 8
  circular_shift: bool = False
  attention_reduction: int = 16
  margin_a: float = 2.0
  margin_b: float = 1.0
  hinge: bool = True
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  def check_input(self, frames: Array) -> None:
    if frames.ndim != 5:
      raise ValueError(
        f"DualStreamNet expects frames [batch, time, height, width, channels], "
        f"got shape {tuple(frames.shape)} (rank {frames.ndim})"
      )
    _, t, h, w, _ = frames.shape
    if t < 3:
      raise ValueError(f"DualStreamNet needs clips of at least 3 frames (2 differences), got {t}")
    stride = 2 ** (len(self.widths) - 1)
    if h % stride or w % stride:
      raise ValueError(f"frame size {h}x{w} is not divisible by the network stride {stride}")
    if self.spatial_inputs is not None and not 1 <= self.spatial_inputs <= t - 1:
      raise ValueError(f"spatial_inputs={self.spatial_inputs} must lie in [1, {t - 1}] for clips of {t} frames")
    if self.fusion not in FUSIONS:
      raise ValueError(f"unknown fusion {self.fusion!r}; expected one of {FUSIONS}")

  @nn.compact
  def __call__(self, frames: Array, *, train: bool) -> tuple[Array, dict[str, Any]]:
    self.check_input(frames)
    frames = frames.astype(jnp.float32)
    stream = functools.partial(
      PredictionStream,
      self.widths,
      self.num_items,
      use_rtsm=self.use_rtsm,
      use_rcam=self.use_rcam,
      use_memory=self.use_memory,
      skip_query=self.skip_query,
      fold_fraction=self.fold_fraction,
      circular_shift=self.circular_shift,
      attention_reduction=self.attention_reduction,
      margin_a=self.margin_a,
      margin_b=self.margin_b,
      hinge=self.hinge,
      negative_slope=self.negative_slope,
      dtype=self.dtype,
      conv_impl=conv_lib.resolve(self.conv_impl, train=train),
    )
    update = train or self.update_memory_at_test
    n_spatial = self.spatial_inputs or frames.shape[1] - 1
    last_input, target = frames[:, -2], frames[:, -1]
    diffs = frame_differences(frames)

    spatial_pred, spatial = stream(output_scale=1.0, name="spatial")(
      frames[:, -1 - n_spatial : -1], train=train, update_memory=update
    )
    # Differences lie in [-2, 2]: the temporal head's tanh is scaled to that range.
    temporal_pred, temporal = stream(output_scale=2.0, name="temporal")(
      diffs[:, :-1], train=train, update_memory=update
    )

    spatial.update(prediction=spatial_pred, target=target, frame=spatial_pred)
    temporal.update(
      prediction=temporal_pred, target=diffs[:, -1], frame=jnp.clip(last_input + temporal_pred, -1.0, 1.0)
    )
    fused = {
      "average": lambda: 0.5 * (spatial["frame"] + temporal["frame"]),
      "sum": lambda: spatial_pred + temporal_pred,
      "spatial": lambda: spatial["frame"],
      "temporal": lambda: temporal["frame"],
    }[self.fusion]()
    return jnp.clip(fused, -1.0, 1.0), {"spatial": spatial, "temporal": temporal, "target": target}


def from_config(config: ml_collections.ConfigDict) -> DualStreamNet:
  """The network of ``config.model`` with the loss margins of ``config.loss``."""
  m = config.model
  return DualStreamNet(
    widths=tuple(m.widths),
    num_items=m.num_items,
    spatial_inputs=m.spatial_inputs or None,
    fusion=m.fusion,
    update_memory_at_test=m.update_memory_at_test,
    use_rtsm=m.use_rtsm,
    use_rcam=m.use_rcam,
    use_memory=m.use_memory,
    skip_query=m.skip_query,
    fold_fraction=m.fold_fraction,
    circular_shift=m.circular_shift,
    attention_reduction=m.attention_reduction,
    margin_a=config.loss.margin_a,
    margin_b=config.loss.margin_b,
    hinge=config.loss.hinge,
    negative_slope=m.negative_slope,
    dtype=precision.compute_dtype(config),
    conv_impl=m.conv_impl,
  )
