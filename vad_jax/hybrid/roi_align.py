"""RoIAlign (He et al., Mask R-CNN 2017) in pure JAX, jittable and batched over boxes.

Conventions (those of Detectron2 / torchvision ``roi_align``):

* ``features`` is ``[h, w, c]`` (one image; vmap or use :func:`roi_align_batched` for a
  batch); boxes are ``[x1, y1, x2, y2]`` in input-image pixels and are mapped to the
  feature map with ``spatial_scale`` (feature size / image size).
* ``aligned=True`` (default) uses the half-pixel convention: pixel ``i`` of the feature
  map covers ``[i, i + 1)`` and its value sits at its centre ``i + 0.5``, so a box
  coordinate ``u`` becomes the sampling coordinate ``u * spatial_scale - 0.5``. With
  ``aligned=False`` (the original Mask R-CNN) there is no shift and boxes are at least
  one feature pixel wide and high.
* Each of the ``output_size`` bins averages a regular grid of ``sampling_ratio x
  sampling_ratio`` bilinear samples placed at the centres of equal sub-cells. The
  sampling ratio must be a static positive integer (the adaptive ``ceil(roi / bins)`` of
  torchvision has a data-dependent shape and is not jittable).
* Bilinear samples: a point with ``y < -1`` or ``y > h`` (same for ``x``) contributes 0;
  otherwise its coordinates are clamped into ``[0, h - 1]`` (``[0, w - 1]``) and the four
  neighbours are blended.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

Array = Any


def _bilinear(features: Array, y: Array, x: Array) -> Array:
  """Sample ``features [h, w, c]`` at float coordinates ``y, x`` (same shape ``S``) -> ``S + [c]``."""
  h, w, _ = features.shape
  outside = (y < -1.0) | (y > h) | (x < -1.0) | (x > w)
  y = jnp.clip(y, 0.0, h - 1)
  x = jnp.clip(x, 0.0, w - 1)
  y0 = jnp.floor(y).astype(jnp.int32)
  x0 = jnp.floor(x).astype(jnp.int32)
  y1 = jnp.minimum(y0 + 1, h - 1)
  x1 = jnp.minimum(x0 + 1, w - 1)
  ly = (y - y0)[..., None]
  lx = (x - x0)[..., None]
  v00 = features[y0, x0]
  v01 = features[y0, x1]
  v10 = features[y1, x0]
  v11 = features[y1, x1]
  out = (1 - ly) * ((1 - lx) * v00 + lx * v01) + ly * ((1 - lx) * v10 + lx * v11)
  return jnp.where(outside[..., None], 0.0, out)


@functools.partial(jax.jit, static_argnames=("output_size", "sampling_ratio", "aligned"))
def roi_align(
  features: Array,
  boxes: Array,
  *,
  output_size: tuple[int, int] = (7, 7),
  spatial_scale: float | Array = 1.0,
  sampling_ratio: int = 2,
  aligned: bool = True,
) -> Array:
  """RoIAlign of ``boxes [n, 4]`` (x1, y1, x2, y2) on one feature map ``[h, w, c]``.

  Returns ``[n, out_h, out_w, c]``.
  """
  if features.ndim != 3:
    raise ValueError(f"expected features of rank 3 [h, w, c], got shape {features.shape}")
  if boxes.ndim != 2 or boxes.shape[-1] != 4:
    raise ValueError(f"expected boxes [n, 4], got shape {boxes.shape}")
  if sampling_ratio < 1:
    raise ValueError(f"sampling_ratio must be a positive integer, got {sampling_ratio}")
  out_h, out_w = output_size
  offset = 0.5 if aligned else 0.0
  boxes = boxes.astype(jnp.float32) * spatial_scale - offset
  x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
  roi_w = x2 - x1
  roi_h = y2 - y1
  if not aligned:
    roi_w = jnp.maximum(roi_w, 1.0)
    roi_h = jnp.maximum(roi_h, 1.0)
  bin_h = roi_h / out_h
  bin_w = roi_w / out_w
  s = sampling_ratio
  # Offsets of the samples, in bins: bin index + (k + 0.5) / s for k < s.
  grid_y = (jnp.arange(out_h)[:, None] + (jnp.arange(s)[None, :] + 0.5) / s).reshape(-1)
  grid_x = (jnp.arange(out_w)[:, None] + (jnp.arange(s)[None, :] + 0.5) / s).reshape(-1)
  ys = y1[:, None] + grid_y[None, :] * bin_h[:, None]  # [n, out_h * s]
  xs = x1[:, None] + grid_x[None, :] * bin_w[:, None]  # [n, out_w * s]
  yy = jnp.broadcast_to(ys[:, :, None], (ys.shape[0], ys.shape[1], xs.shape[1]))
  xx = jnp.broadcast_to(xs[:, None, :], yy.shape)
  samples = _bilinear(features.astype(jnp.float32), yy, xx)  # [n, out_h*s, out_w*s, c]
  n, c = samples.shape[0], samples.shape[-1]
  samples = samples.reshape(n, out_h, s, out_w, s, c)
  return samples.mean(axis=(2, 4)).astype(features.dtype)


def roi_align_batched(
  features: Array,
  boxes: Array,
  *,
  output_size: tuple[int, int] = (7, 7),
  spatial_scale: float = 1.0,
  sampling_ratio: int = 2,
  aligned: bool = True,
) -> Array:
  """RoIAlign over a batch: ``features [b, h, w, c]``, ``boxes [b, n, 4]`` -> ``[b, n, oh, ow, c]``."""
  if features.ndim != 4:
    raise ValueError(f"expected features of rank 4 [b, h, w, c], got shape {features.shape}")
  if boxes.ndim != 3 or boxes.shape[-1] != 4:
    raise ValueError(f"expected boxes [b, n, 4], got shape {boxes.shape}")
  fn = functools.partial(
    roi_align,
    output_size=output_size,
    spatial_scale=spatial_scale,
    sampling_ratio=sampling_ratio,
    aligned=aligned,
  )
  return jax.vmap(fn)(features, boxes)
