"""Histogram of Oriented Gradients in JAX, numerically matching ``skimage.feature.hog``.

The computation follows the published scikit-image algorithm (grayscale, no
``transform_sqrt``), re-expressed with whole-array operations so it jits and vmaps:

1. Gradients by central differences, ``g_row[r] = I[r + 1] - I[r - 1]`` (and the same
   along columns); the first and last row (column) get a zero row (column) gradient.
2. Magnitude ``hypot(g_row, g_col)`` and unsigned orientation
   ``degrees(atan2(g_row, g_col)) mod 180`` in ``[0, 180)``.
3. Hard binning (no interpolation between bins or cells): bin ``i`` holds orientations in
   ``[i * 180 / n, (i + 1) * 180 / n)``. Cell ``(r, c)`` covers pixel rows
   ``[r * ph, (r + 1) * ph)`` and columns ``[c * pw, (c + 1) * pw)``; pixels beyond the last
   whole cell are ignored. The cell histogram is the **mean** magnitude per bin (sum
   divided by ``ph * pw``).
4. Blocks of ``cells_per_block`` cells slide with a stride of one cell; each block is
   normalised on its own (``eps = 1e-5``): ``L1`` ``v / (sum|v| + eps)``, ``L1-sqrt``
   ``sqrt`` of that, ``L2`` ``v / sqrt(sum v^2 + eps^2)``, ``L2-Hys`` L2, clip at 0.2, L2
   again.
5. Output ``[..., n_blocks_row, n_blocks_col, b_row, b_col, orientations]``, flattened in
   that (row-major) order when ``feature_vector``.

Precision: scikit-image works in float64 (its cell sums accumulate in float32). In
float32 this module agrees to about 1e-6 relative; pixels whose orientation lies within
float32 rounding of a bin edge can land in the neighbouring bin, which is the only source
of larger (local) differences. With ``jax_enable_x64`` and float64 input the two agree to
float64 rounding.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

Array = Any

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def hog_output_shape(
  height: int,
  width: int,
  *,
  orientations: int = 9,
  pixels_per_cell: tuple[int, int] = (8, 8),
  cells_per_block: tuple[int, int] = (3, 3),
) -> tuple[int, int, int, int, int]:
  """``(n_blocks_row, n_blocks_col, b_row, b_col, orientations)`` for an ``height x width`` image."""
  n_cells_r, n_cells_c = height // pixels_per_cell[0], width // pixels_per_cell[1]
  b_r, b_c = cells_per_block
  n_blocks_r, n_blocks_c = n_cells_r - b_r + 1, n_cells_c - b_c + 1
  if n_blocks_r <= 0 or n_blocks_c <= 0:
    raise ValueError(
      f"image {height}x{width} is too small for pixels_per_cell={pixels_per_cell} and "
      f"cells_per_block={cells_per_block}: need at least "
      f"{b_r * pixels_per_cell[0]}x{b_c * pixels_per_cell[1]}"
    )
  return n_blocks_r, n_blocks_c, b_r, b_c, orientations


def hog_feature_size(height: int, width: int, **kwargs) -> int:
  """Length of the flattened HOG vector (e.g. 8100 for 128x128, 9 bins, 8x8 cells, 2x2 blocks)."""
  a, b, c, d, e = hog_output_shape(height, width, **kwargs)
  return a * b * c * d * e


def image_gradients(image: Array) -> tuple[Array, Array]:
  """Central-difference gradients ``(g_row, g_col)`` of ``[..., h, w]``, zero on the border."""
  zr = jnp.zeros_like(image[..., :1, :])
  g_row = jnp.concatenate([zr, image[..., 2:, :] - image[..., :-2, :], zr], axis=-2)
  zc = jnp.zeros_like(image[..., :, :1])
  g_col = jnp.concatenate([zc, image[..., :, 2:] - image[..., :, :-2], zc], axis=-1)
  return g_row, g_col


def cell_histograms(image: Array, *, orientations: int = 9, pixels_per_cell: tuple[int, int] = (8, 8)) -> Array:
  """Per-cell orientation histograms ``[..., n_cells_row, n_cells_col, orientations]``.

  Each entry is the mean gradient magnitude (over the cell's pixels) of the pixels whose
  unsigned orientation falls in that bin.
  """
  ph, pw = pixels_per_cell
  h, w = image.shape[-2:]
  n_r, n_c = h // ph, w // pw
  g_row, g_col = image_gradients(image)
  g_row = g_row[..., : n_r * ph, : n_c * pw]
  g_col = g_col[..., : n_r * ph, : n_c * pw]
  magnitude = jnp.hypot(g_row, g_col)
  # Fold into the upper half plane first, so that directions 180 degrees apart (which
  # skimage maps together through ``mod 180``) take the same path through atan2.
  flip = (g_row < 0) | ((g_row == 0) & (g_col < 0))
  angle = jnp.arctan2(jnp.where(flip, -g_row, g_row), jnp.where(flip, -g_col, g_col))
  degrees = angle * (180.0 / jnp.pi)  # in [0, 180]
  bin_width = 180.0 / orientations
  index = jnp.clip(jnp.floor(degrees / bin_width), 0, orientations - 1).astype(jnp.int32)
  votes = magnitude[..., None] * (index[..., None] == jnp.arange(orientations))
  lead = votes.shape[:-3]
  votes = votes.reshape(*lead, n_r, ph, n_c, pw, orientations)
  return votes.sum(axis=(-4, -2)) / (ph * pw)


def normalize_blocks(
  cells: Array,
  *,
  cells_per_block: tuple[int, int] = (3, 3),
  block_norm: str = "L2-Hys",
  eps: float = 1e-5,
) -> Array:
  """Overlapping block normalisation of ``[..., n_cells_r, n_cells_c, n]`` cell histograms.

  Returns ``[..., n_blocks_r, n_blocks_c, b_row, b_col, n]``.
  """
  if block_norm not in BLOCK_NORMS:
    raise ValueError(f"block_norm must be one of {BLOCK_NORMS}, got {block_norm!r}")
  b_r, b_c = cells_per_block
  n_cr, n_cc = cells.shape[-3:-1]
  n_br, n_bc = n_cr - b_r + 1, n_cc - b_c + 1
  # Gather the b_r x b_c cells of every block with shifted slices (loop over the block's
  # few cell offsets, not over blocks).
  rows = [jnp.stack([cells[..., i : i + n_br, j : j + n_bc, :] for j in range(b_c)], axis=-2) for i in range(b_r)]
  blocks = jnp.stack(rows, axis=-3)  # [..., n_br, n_bc, b_r, b_c, n]
  axes = (-3, -2, -1)
  if block_norm in ("L1", "L1-sqrt"):
    out = blocks / (jnp.sum(jnp.abs(blocks), axis=axes, keepdims=True) + eps)
    if block_norm == "L1-sqrt":
      out = jnp.sqrt(out)
    return out
  out = blocks / jnp.sqrt(jnp.sum(blocks**2, axis=axes, keepdims=True) + eps**2)
  if block_norm == "L2-Hys":
    out = jnp.minimum(out, 0.2)
    out = out / jnp.sqrt(jnp.sum(out**2, axis=axes, keepdims=True) + eps**2)
  return out


@functools.partial(
  jax.jit,
  static_argnames=("orientations", "pixels_per_cell", "cells_per_block", "block_norm", "feature_vector"),
)
def hog(
  image: Array,
  *,
  orientations: int = 9,
  pixels_per_cell: tuple[int, int] = (8, 8),
  cells_per_block: tuple[int, int] = (3, 3),
  block_norm: str = "L2-Hys",
  feature_vector: bool = True,
) -> Array:
  """HOG descriptor of grayscale images ``[..., height, width]``.

  Same parameters and defaults as ``skimage.feature.hog`` (with ``transform_sqrt=False``
  and no visualisation). Leading axes are batch axes; integer input is cast to float32.

  Returns:
    ``[..., n_blocks_row * n_blocks_col * b_row * b_col * orientations]`` when
    ``feature_vector`` else ``[..., n_blocks_row, n_blocks_col, b_row, b_col, orientations]``.
  """
  image = jnp.asarray(image)
  if image.ndim < 2:
    raise ValueError(f"expected grayscale images [..., height, width], got shape {image.shape}")
  if not jnp.issubdtype(image.dtype, jnp.floating):
    image = image.astype(jnp.float32)
  pixels_per_cell = tuple(int(v) for v in pixels_per_cell)
  cells_per_block = tuple(int(v) for v in cells_per_block)
  hog_output_shape(
    *image.shape[-2:],
    orientations=orientations,
    pixels_per_cell=pixels_per_cell,
    cells_per_block=cells_per_block,
  )
  cells = cell_histograms(image, orientations=orientations, pixels_per_cell=pixels_per_cell)
  blocks = normalize_blocks(cells, cells_per_block=cells_per_block, block_norm=block_norm)
  if feature_vector:
    return blocks.reshape(*blocks.shape[:-5], -1)
  return blocks


def rgb_to_gray(images: Array) -> Array:
  """``[..., 3] -> [...]`` luminance with the ITU-R BT.709 weights that ``skimage.color.rgb2gray`` uses."""
  if images.shape[-1] != 3:
    raise ValueError(f"expected RGB images [..., 3], got shape {images.shape}")
  weights = jnp.asarray([0.2125, 0.7154, 0.0721], images.dtype)
  return images @ weights
