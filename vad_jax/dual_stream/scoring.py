"""Anomaly scores of the dual-stream network, Eqs. (14)-(16).

Per-frame quantities (PSNR, memory distances) are computed on the device inside the
evaluation step; per-video min-max normalisation and the fusion run on the host once a
video's frames are all scored.
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

Array = Any
# What ``frame_statistics`` returns per frame: the raw inputs of every score.
STAT_KEYS = (
  "psnr",
  "spatial_psnr",
  "temporal_psnr",
  "spatial_distance",
  "temporal_distance",
  "block_psnr",
  "spatial_block_psnr",
  "temporal_block_psnr",
)
BLOCK_GRID = 8  # blocks per side of the grid ``block_psnr`` takes the worst block of


def psnr(prediction: Array, target: Array) -> Array:
  """Eq. (14), per example, for frames in [-1, 1].

  Uses the standard ``10 log10(MAX^2 / MSE)`` with both frames rescaled to [0, 1]
  (``MAX = 1``). The paper's Eq. (14) prints ``max(Y_hat) / (1/N ||.||_2^2)`` without the
  square on the peak value; that is a typo for the usual definition (as in Frame-Pred
  and MNAD, whose evaluation this paper follows). The MSE is floored at 1e-10 so a
  perfect prediction gives 100 dB instead of infinity.
  """
  a = (prediction.astype(jnp.float32) + 1.0) / 2.0
  b = (target.astype(jnp.float32) + 1.0) / 2.0
  mse = jnp.mean(jnp.square(a - b), axis=tuple(range(1, a.ndim)))
  return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def block_psnr(prediction: Array, target: Array, grid: int = BLOCK_GRID) -> Array:
  """Per example, the PSNR (as in ``psnr``) of the worst-predicted block of a ``grid x
  grid`` tiling of the frame (height and width divisible by ``grid``): how badly the
  worst region is predicted, where ``psnr`` averages the error over the whole frame."""
  a = (prediction.astype(jnp.float32) + 1.0) / 2.0
  b = (target.astype(jnp.float32) + 1.0) / 2.0
  error = jnp.mean(jnp.square(a - b), axis=-1)  # [batch, h, w]
  n, h, w = error.shape
  blocks = error.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(n, -1)
  return 10.0 * jnp.log10(1.0 / jnp.maximum(blocks.max(axis=1), 1e-10))


def frame_statistics(aux: Mapping[str, Any], fused: Array, level: int = -1) -> dict[str, Array]:
  """Per-frame score inputs from a model output: PSNR of the fused frame and of each
  stream's own frame, the same for their worst 1/64 block (``block_psnr``, for the
  deployment score of ``calibration.py``), and the memory distance (Eq. 15) of each stream at memory
  ``level`` (-1 = bottleneck; ``None`` = mean over all memories)."""
  target = aux["target"]
  stats = {"psnr": psnr(fused, target), "block_psnr": block_psnr(fused, target)}
  for name in ("spatial", "temporal"):
    stream = aux[name]
    stats[f"{name}_psnr"] = psnr(stream["frame"], target)
    stats[f"{name}_block_psnr"] = block_psnr(stream["frame"], target)
    d = stream["distance"]
    if d.shape[1] == 0:
      stats[f"{name}_distance"] = jnp.zeros(d.shape[:1], jnp.float32)
    else:
      stats[f"{name}_distance"] = jnp.mean(d, axis=1) if level is None else d[:, level]
  return stats


def minmax_normalize(values: np.ndarray) -> np.ndarray:
  """``g(.)`` of Eq. (16) over one video: ``(v - min) / (max - min)``.

  A constant video (``max == min``) gives all zeros rather than NaN.
  """
  values = np.asarray(values, np.float64)
  if values.size == 0:
    return values
  lo, hi = values.min(), values.max()
  span = hi - lo
  if span <= 0 or not np.isfinite(span):
    return np.zeros_like(values)
  return (values - lo) / span


def fused_score(
  psnr_values: np.ndarray, spatial_distance: np.ndarray, temporal_distance: np.ndarray, lam: float = 0.8
) -> np.ndarray:
  """Eq. (16) over one video: ``lam (1 - g(P)) + (1 - lam)/2 g(D_i) + (1 - lam)/2 g(D_x)``.

  Higher means more anomalous.
  """
  return (
    lam * (1.0 - minmax_normalize(psnr_values))
    + 0.5 * (1.0 - lam) * minmax_normalize(spatial_distance)
    + 0.5 * (1.0 - lam) * minmax_normalize(temporal_distance)
  )


def stream_score(psnr_values: np.ndarray, distance: np.ndarray, lam: float = 0.8) -> np.ndarray:
  """Single-stream score (Table IV rows): ``lam (1 - g(P)) + (1 - lam) g(D)``."""
  return lam * (1.0 - minmax_normalize(psnr_values)) + (1.0 - lam) * minmax_normalize(distance)
