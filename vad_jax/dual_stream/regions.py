"""Where an alarm is: the regions of a frame whose prediction error set it off, as boxes.

The deployment score (``calibration.py``) alarms on how concentrated the fused
prediction error is: the worst block of an ``8 x 8`` grid over the frame's mean error.
The same block errors locate the alarm. A block's concentration is

  10 log10(block mean error / frame mean error)      (dB; 0 for a block at the mean)

and the worst block's is the frame's ``concentration`` (``psnr - block_psnr``, both
floored as ``scoring.psnr`` floors the error). On an alarmed frame the boxes are the
groups of 4-neighbouring blocks whose concentration reaches the calibration's
``region_level`` (``calibration.fit``), or, when no block does, the worst block alone.
The model sees the source frame resized to its input size, so the grid maps onto the
source frame by proportion: the boxes are in the source frame's pixels.
"""

import numpy as np
from scipy import ndimage

from vad_jax.dual_stream import scoring

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1): pixel edges, x0 <= x < x1, y0 <= y < y1
_FLOOR = 1e-10  # as scoring.psnr: a perfect prediction is 100 dB, not infinite


def block_concentration(error_map: np.ndarray, grid: int = scoring.BLOCK_GRID) -> np.ndarray:
  """``[grid, grid]`` concentration in dB of each block of a per-pixel error map ``[h,
  w]`` (height and width divisible by ``grid``, as for ``scoring.block_psnr``)."""
  error = np.asarray(error_map, np.float64)
  if error.ndim != 2:
    raise ValueError(f"error_map must be [height, width], got shape {error.shape}")
  h, w = error.shape
  if h % grid or w % grid:
    raise ValueError(f"error_map {h}x{w} does not divide into a {grid}x{grid} grid")
  blocks = error.reshape(grid, h // grid, grid, w // grid).mean(axis=(1, 3))
  return 10.0 * np.log10(np.maximum(blocks, _FLOOR) / max(float(error.mean()), _FLOOR))


def groups(concentration: np.ndarray, level: float) -> list[np.ndarray]:
  """Boolean ``[grid, grid]`` masks of the 4-connected groups of blocks at or above
  ``level``, the group with the highest block first (none when no block reaches it)."""
  labels, count = ndimage.label(concentration >= level)  # the default structure: 4-neighbours
  found = [labels == k for k in range(1, count + 1)]
  return sorted(found, key=lambda mask: -float(concentration[mask].max()))


def to_box(mask: np.ndarray, source_size: tuple[int, int]) -> Box:
  """The box of a group of blocks in the pixels of a source frame ``(height, width)``."""
  grid_h, grid_w = mask.shape
  rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
  height, width = source_size
  return (
    int(np.floor(cols[0] * width / grid_w)),
    int(np.floor(rows[0] * height / grid_h)),
    int(np.ceil((cols[-1] + 1) * width / grid_w)),
    int(np.ceil((rows[-1] + 1) * height / grid_h)),
  )


def alarm_boxes(
  error_map: np.ndarray, level: float, source_size: tuple[int, int], grid: int = scoring.BLOCK_GRID
) -> tuple[Box, ...]:
  """The boxes of an alarmed frame: each group of blocks at or above ``level``, or the
  worst block when none is, in the pixels of the source frame ``(height, width)``."""
  concentration = block_concentration(error_map, grid)
  found = groups(concentration, level)
  if not found:
    found = [np.arange(concentration.size).reshape(concentration.shape) == np.argmax(concentration)]
  return tuple(to_box(mask, source_size) for mask in found)
