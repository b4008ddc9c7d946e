"""HybridModel-1 (spatial object-level branch + ConvLSTM temporal branch + AFFM) and the
EfficientNetV2-B0 + HOG frame classifier (HYBRID.md baseline 2).

HybridModel-1 on a clip ``frames [b, t, H, W, 3]`` in ``[0, 1]`` with object boxes
``[b, t, n, 4]`` (pixels of ``frames``), their confidences and validity mask:

* Spatial branch, per frame: backbone feature map ``F`` (EfficientNetV2-B0, or a tiny CNN
  for CPU tests) on the frame resized to ``spatial_size``; optional spatial attention
  ``F <- F * sigmoid(conv([mean_c F; max_c F]))``; global feature ``mean_hw F``; object
  feature = RoIAlign(7x7) of every box, averaged over its 7x7 cells, then the
  confidence-weighted mean over the valid boxes (zeros when a frame has none) plus a
  "has objects" bit; ``s_t = Dense(d)([global; object; bit])``.
* Temporal branch: ConvLSTM stack (the baseline-1 layers: 4/8/16/32 filters, 3x3, VALID,
  (1,2,2) max-pool, recurrent dropout and dropout 0.2) over the clip resized to
  ``temporal_size``, flattened per time step, ``h_t = Dense(d)``.
* AFFM (adaptive feature fusion): ``g = sigmoid(W2 relu(W1 [s_t; h_t]))`` per channel,
  ``f_t = g * s_t + (1 - g) * h_t``.
* Head: LayerNorm, dropout 0.3, ``Dense(1)``: one logit per frame.

Not published, labelled options (docs/hybrid.md, Diagnosis): ``temporal_input=
"differences"`` feeds the ConvLSTM each frame with its difference to the previous one;
``pooling="max"`` takes the spatial maximum instead of the mean of the backbone map and
projects the ConvLSTM map per location before a spatial maximum (instead of flattening);
``temporal_norm="batch"`` standardises the ConvLSTM's input channels with a BatchNorm
(frame differences are about 0.01 on average, too small for the gates to learn from).

Ablation switches (docs/hybrid.md): ``fusion="concat"`` (no AFFM), ``branches="spatial"``
or ``"temporal"``, ``use_object_features=False``, ``spatial_attention=False``; the plain
weighted BCE instead of TCR is a loss switch (``vad_jax.hybrid.tcr.tcr_loss(tcr=False)``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vad_jax.hybrid.convlstm import TEMPORAL_NORMS, ConvLSTM, normalize_input, with_differences
from vad_jax.hybrid.efficientnet import EfficientNetV2B0
from vad_jax.hybrid.hog import hog, rgb_to_gray
from vad_jax.hybrid.roi_align import roi_align_batched

Array = Any

BACKBONES = ("efficientnetv2_b0", "tiny")


class TinyBackbone(nn.Module):
  """Small CNN stand-in for the ImageNet backbone (CPU tests, smoke runs).

  ``[b, h, w, 3]`` in ``[0, 1]`` -> feature map ``[b, h / 2^L, w / 2^L, features[-1]]``
  (L = number of stride-2 conv-BN-ReLU layers); ``aux = {"features", "pooled"}``.
  """

  features: Sequence[int] = (8, 16)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: Array, *, train: bool) -> tuple[Array, dict[str, Array]]:
    if images.ndim != 4:
      raise ValueError(f"expected images of rank 4 [batch, h, w, c], got shape {images.shape}")
    x = images.astype(self.dtype)
    for i, f in enumerate(self.features):
      x = nn.Conv(f, (3, 3), strides=2, use_bias=False, dtype=self.dtype, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    return x, {"features": x, "pooled": jnp.mean(x, axis=(1, 2))}


def _backbone(name: str, dtype: Any) -> tuple[nn.Module, float]:
  """The backbone module (named ``backbone``) and the factor mapping [0, 1] pixels to its input."""
  if name == "efficientnetv2_b0":
    # Keras preprocessing inside the network expects pixels in [0, 255].
    return EfficientNetV2B0(include_top=False, dtype=dtype, name="backbone"), 255.0
  if name == "tiny":
    return TinyBackbone(dtype=dtype, name="backbone"), 1.0
  raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


def _resize(images: Array, size: int | None) -> Array:
  """Bilinear resize of ``[n, h, w, c]`` to ``size x size`` (no-op for ``None`` or same size)."""
  if size is None or images.shape[1:3] == (size, size):
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "bilinear")


class SpatialAttention(nn.Module):
  """CBAM-style spatial attention on ``[b, h, w, c]``: ``x * sigmoid(conv([mean_c; max_c]))``.

  Returns ``(x * a, a)`` with the attention map ``a [b, h, w, 1]``.
  """

  kernel_size: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    desc = jnp.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1)
    k = self.kernel_size
    a = nn.sigmoid(nn.Conv(1, (k, k), dtype=self.dtype, name="conv")(desc))
    return x * a, a


def pool_object_features(
  features: Array,
  boxes: Array,
  scores: Array,
  valid: Array,
  *,
  image_hw: tuple[int, int],
  output_size: tuple[int, int] = (7, 7),
  sampling_ratio: int = 2,
) -> tuple[Array, Array]:
  """Confidence-weighted mean of RoIAligned box features.

  Args:
    features: ``[n, fh, fw, c]`` feature maps.
    boxes: ``[n, k, 4]`` boxes in pixels of the ``image_hw`` frames.
    scores: ``[n, k]`` box confidences.
    valid: ``[n, k]`` box validity.
    image_hw: ``(H, W)`` of the frames the boxes refer to.

  Returns:
    ``(object_features [n, c], has_objects [n, 1])``; frames without a valid box (or with
    zero total confidence) get zeros and ``has_objects = 0``.
  """
  n, fh, fw, c = features.shape
  sy, sx = fh / image_hw[0], fw / image_hw[1]
  scaled = boxes.astype(jnp.float32) * jnp.asarray([sx, sy, sx, sy], jnp.float32)
  rois = roi_align_batched(features, scaled, output_size=output_size, sampling_ratio=sampling_ratio)
  per_box = rois.mean(axis=(2, 3))  # [n, k, c]
  w = scores.astype(jnp.float32) * valid.astype(jnp.float32)
  total = w.sum(-1, keepdims=True)
  obj = jnp.einsum("nk,nkc->nc", w, per_box.astype(jnp.float32)) / jnp.maximum(total, 1e-6)
  has = (total > 0).astype(jnp.float32)
  return (obj * has).astype(features.dtype), has


class AdaptiveFeatureFusion(nn.Module):
  """AFFM: ``g = sigmoid(W2 relu(W1 [s; h]))``, ``fused = g * s + (1 - g) * h``.

  ``s, h [..., d]`` -> ``(fused [..., d], g [..., d])``.
  """

  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, s: Array, h: Array) -> tuple[Array, Array]:
    if s.shape != h.shape:
      raise ValueError(f"AFFM inputs differ in shape: {s.shape} vs {h.shape}")
    z = jnp.concatenate([s, h], axis=-1)
    z = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="w1")(z))
    g = nn.sigmoid(nn.Dense(s.shape[-1], dtype=self.dtype, name="w2")(z))
    return g * s + (1.0 - g) * h, g


class HybridModel1(nn.Module):
  """HybridModel-1 (see module docstring).

  Call: ``model.apply(variables, frames, boxes, box_scores, box_valid, train=...)`` with
  ``frames [b, t, H, W, 3]`` in ``[0, 1]``, ``boxes [b, t, n, 4]`` (x1, y1, x2, y2 pixels of
  ``frames``), ``box_scores [b, t, n]``, ``box_valid [b, t, n]``; the box arguments may be
  ``None`` (no objects). Returns ``(logits [b, t], aux)`` with ``aux["probs"] [b, t]``,
  ``aux["gate"]`` (``[b, t, d]`` AFFM gate, or ``None``), ``aux["spatial"]``,
  ``aux["temporal"]`` (``[b, t, d]`` or ``None``), ``aux["attention"]``
  (``[b, t, fh, fw, 1]`` or ``None``) and ``aux["has_objects"] [b, t]``.
  """

  backbone: str = "efficientnetv2_b0"
  spatial_size: int | None = 224
  temporal_size: int | None = 64
  feature_dim: int = 512
  branches: str = "both"  # "both" | "spatial" | "temporal"
  fusion: str = "affm"  # "affm" | "concat"
  affm_hidden: int = 256
  use_object_features: bool = True
  spatial_attention: bool = True
  attention_kernel: int = 3
  freeze_backbone: bool = False
  roi_output_size: tuple[int, int] = (7, 7)
  roi_sampling_ratio: int = 2
  temporal_filters: Sequence[int] = (4, 8, 16, 32)
  recurrent_dropout: float = 0.2
  temporal_dropout: float = 0.2
  head_dropout: float = 0.3
  temporal_input: str = "frames"  # "frames" (published) | "differences" (frame and its change)
  pooling: str = "mean"  # "mean" (published) | "max" (features kept where they are strongest)
  temporal_norm: str = "none"  # "none" (published) | "batch" (BatchNorm of the ConvLSTM's input channels)
  dtype: Any = jnp.float32

  def _spatial(self, frames, boxes, box_scores, box_valid, train):
    b, t, h, w, c = frames.shape
    backbone, scale = _backbone(self.backbone, self.dtype)
    x = _resize(frames.reshape(b * t, h, w, c), self.spatial_size) * scale
    fmap, _ = backbone(x, train=train and not self.freeze_backbone)
    if self.freeze_backbone:
      fmap = jax.lax.stop_gradient(fmap)
    attention = None
    if self.spatial_attention:
      fmap, attention = SpatialAttention(self.attention_kernel, dtype=self.dtype, name="attention")(fmap)
      attention = attention.reshape(b, t, *attention.shape[1:])
    parts = [fmap.max(axis=(1, 2)) if self.pooling == "max" else fmap.mean(axis=(1, 2))]
    has = jnp.zeros((b * t, 1), fmap.dtype)
    if self.use_object_features:
      if boxes is None:
        k = 1
        boxes = jnp.zeros((b, t, k, 4))
        box_scores = jnp.zeros((b, t, k))
        box_valid = jnp.zeros((b, t, k), bool)
      if boxes.ndim != 4 or boxes.shape[:2] != (b, t):
        raise ValueError(f"expected boxes [b, t, n, 4] with b, t = {b, t}, got shape {boxes.shape}")
      k = boxes.shape[2]
      if box_scores is None:
        box_scores = jnp.ones((b, t, k))
      if box_valid is None:
        box_valid = jnp.ones((b, t, k), bool)
      obj, has = pool_object_features(
        fmap,
        boxes.reshape(b * t, k, 4),
        box_scores.reshape(b * t, k),
        box_valid.reshape(b * t, k),
        image_hw=(h, w),
        output_size=tuple(self.roi_output_size),
        sampling_ratio=self.roi_sampling_ratio,
      )
      parts += [obj, has.astype(fmap.dtype)]
    s = nn.Dense(self.feature_dim, dtype=self.dtype, name="spatial_proj")(jnp.concatenate(parts, -1))
    return s.reshape(b, t, -1), attention, has.reshape(b, t)

  def _temporal(self, frames, train):
    b, t, h, w, c = frames.shape
    x = _resize(frames.reshape(b * t, h, w, c), self.temporal_size)
    x = x.reshape(b, t, *x.shape[1:])
    if self.temporal_input == "differences":
      x = with_differences(x)
    x = normalize_input(x, self.temporal_norm, train=train, dtype=self.dtype)
    for i, f in enumerate(self.temporal_filters):
      x, _ = ConvLSTM(
        features=f,
        kernel_size=(3, 3),
        padding="VALID",
        recurrent_dropout=self.recurrent_dropout,
        dtype=self.dtype,
        name=f"conv_lstm_{i}",
      )(x, train=train)
      x = nn.max_pool(x, (1, 2, 2), strides=(1, 2, 2), padding="SAME")
      if i < len(self.temporal_filters) - 1:
        x = nn.Dropout(self.temporal_dropout, deterministic=not train, name=f"temporal_dropout_{i}")(x)
    if self.pooling == "max":  # per-location projection, then the strongest location
      return nn.Dense(self.feature_dim, dtype=self.dtype, name="temporal_proj")(x).max(axis=(2, 3))
    return nn.Dense(self.feature_dim, dtype=self.dtype, name="temporal_proj")(x.reshape(b, t, -1))

  @nn.compact
  def __call__(
    self,
    frames: Array,
    boxes: Array | None = None,
    box_scores: Array | None = None,
    box_valid: Array | None = None,
    *,
    train: bool,
  ) -> tuple[Array, dict[str, Any]]:
    if frames.ndim != 5:
      raise ValueError(f"expected frames of rank 5 [batch, time, h, w, c], got shape {frames.shape}")
    if self.branches not in ("both", "spatial", "temporal"):
      raise ValueError(f"branches must be 'both', 'spatial' or 'temporal', got {self.branches!r}")
    if self.fusion not in ("affm", "concat"):
      raise ValueError(f"fusion must be 'affm' or 'concat', got {self.fusion!r}")
    if self.temporal_input not in ("frames", "differences"):
      raise ValueError(f"temporal_input must be 'frames' or 'differences', got {self.temporal_input!r}")
    if self.pooling not in ("mean", "max"):
      raise ValueError(f"pooling must be 'mean' or 'max', got {self.pooling!r}")
    if self.temporal_norm not in TEMPORAL_NORMS:
      raise ValueError(f"temporal_norm must be one of {TEMPORAL_NORMS}, got {self.temporal_norm!r}")
    b, t = frames.shape[:2]
    frames = frames.astype(self.dtype)
    s = h = attention = gate = None
    has = jnp.zeros((b, t), self.dtype)
    if self.branches in ("both", "spatial"):
      s, attention, has = self._spatial(frames, boxes, box_scores, box_valid, train)
    if self.branches in ("both", "temporal"):
      h = self._temporal(frames, train)
    if s is not None and h is not None:
      if self.fusion == "affm":
        fused, gate = AdaptiveFeatureFusion(self.affm_hidden, dtype=self.dtype, name="affm")(s, h)
      else:
        fused = jnp.concatenate([s, h], axis=-1)
    else:
      fused = s if s is not None else h
    y = nn.LayerNorm(dtype=self.dtype, name="head_norm")(fused)
    y = nn.Dropout(self.head_dropout, deterministic=not train, name="head_dropout")(y)
    logits = nn.Dense(1, dtype=self.dtype, name="head")(y)[..., 0]
    aux = {
      "probs": jax.nn.sigmoid(logits.astype(jnp.float32)),
      "gate": gate,
      "spatial": s,
      "temporal": h,
      "attention": attention,
      "has_objects": has,
    }
    return logits, aux


class EfficientNetHOGClassifier(nn.Module):
  """Baseline 2: EfficientNetV2-B0 features + HOG, per-frame anomaly logit.

  Frame ``[H, W, 3]`` in ``[0, 1]`` -> backbone on the frame resized to ``image_size``,
  global average pool (1280-d for B0); HOG (9 bins, 8x8 cells, 2x2 blocks, L2-Hys) of the
  grayscale frame resized to ``hog_size`` (8100-d at 128) -> ``Dense(hog_dim)``;
  concatenate -> ``Dense(hidden)`` + ReLU -> dropout 0.5 -> ``Dense(1)``.

  Input ``[b, H, W, 3]`` (frames) or ``[b, t, H, W, 3]`` (clips). Returns ``(logits, aux)``:
  logits ``[b]`` or ``[b, t]``; ``aux["probs"]`` the sigmoid, ``aux["clip_probs"] [b]``
  (mean frame probability, clips only), ``aux["hog"]`` the HOG vectors.
  """

  backbone: str = "efficientnetv2_b0"
  image_size: int | None = 224
  hog_size: int = 128
  orientations: int = 9
  pixels_per_cell: tuple[int, int] = (8, 8)
  cells_per_block: tuple[int, int] = (2, 2)
  block_norm: str = "L2-Hys"
  hog_dim: int = 256
  hidden: int = 256
  dropout: float = 0.5
  freeze_backbone: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, frames: Array, *, train: bool) -> tuple[Array, dict[str, Any]]:
    if frames.ndim not in (4, 5):
      raise ValueError(f"expected frames [b, h, w, 3] or clips [b, t, h, w, 3], got shape {frames.shape}")
    lead = frames.shape[:-3]
    h, w, c = frames.shape[-3:]
    x = frames.reshape(-1, h, w, c).astype(self.dtype)
    backbone, scale = _backbone(self.backbone, self.dtype)
    fmap, _ = backbone(_resize(x, self.image_size) * scale, train=train and not self.freeze_backbone)
    deep = fmap.mean(axis=(1, 2))
    if self.freeze_backbone:
      deep = jax.lax.stop_gradient(deep)
    gray = _resize(rgb_to_gray(x.astype(jnp.float32))[..., None], self.hog_size)[..., 0]
    hog_kwargs = dict(
      orientations=self.orientations,
      pixels_per_cell=tuple(self.pixels_per_cell),
      cells_per_block=tuple(self.cells_per_block),
    )
    hog_feat = hog(gray, block_norm=self.block_norm, **hog_kwargs)
    hog_proj = nn.Dense(self.hog_dim, dtype=self.dtype, name="hog_proj")(hog_feat.astype(self.dtype))
    z = jnp.concatenate([deep, hog_proj], axis=-1)
    z = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc")(z))
    z = nn.Dropout(self.dropout, deterministic=not train, name="dropout")(z)
    logits = nn.Dense(1, dtype=self.dtype, name="out")(z)[..., 0].reshape(lead)
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    aux = {"probs": probs, "hog": hog_feat.reshape(*lead, -1)}
    if frames.ndim == 5:
      aux["clip_probs"] = probs.mean(axis=1)
    return logits, aux


TinyHybridModel1 = functools.partial(
  HybridModel1,
  backbone="tiny",
  spatial_size=None,
  temporal_size=None,
  feature_dim=32,
  affm_hidden=16,
  temporal_filters=(4, 8),
)
TinyEfficientNetHOGClassifier = functools.partial(
  EfficientNetHOGClassifier,
  backbone="tiny",
  image_size=None,
  hog_size=32,
  hog_dim=16,
  hidden=16,
)
