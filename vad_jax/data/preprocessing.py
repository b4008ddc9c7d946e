"""Frame decoding, resizing, channel conversion and pixel scaling (host side, numpy).

Frames arrive as encoded bytes (JPEG for RGB, PNG for grayscale; see
``docs/conventions.md``). They are decoded with Pillow, converted to the configured
number of channels, resized with Pillow's bilinear filter and returned as ``uint8``
``[height, width, channels]``. Scaling to floats happens once per batch:
``to_signed_unit`` ([-1, 1], prediction models) or ``to_unit`` ([0, 1], clip
classifiers).

Pillow's bilinear filter widens its support when it shrinks an image, so downscaling is
antialiased (like ``tf.image.resize(..., antialias=True)``, unlike OpenCV's
``cv2.resize`` which the Frame-Pred/MNAD code used). Upscaling is plain bilinear.

With ``jpeg_draft`` (the default) JPEG frames use Pillow's draft mode: the decoder
outputs luma directly when one channel is wanted, and decodes at 1/2, 1/4 or 1/8 scale
when the target is at most that fraction of the source in both dimensions (e.g.
320x240 -> 64x64), before the bilinear resize. This is several times faster and
differs from a full decode + resize by a few grey levels.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

_MODES = {1: "L", 3: "RGB"}


def decode_frame(data: bytes, image_size: tuple[int, int], channels: int, jpeg_draft: bool = True) -> np.ndarray:
  """Decodes one encoded frame into ``uint8 [height, width, channels]``.

  Args:
    data: encoded image bytes (any format Pillow reads: JPEG, PNG, TIFF, BMP, ...).
    image_size: ``(height, width)`` of the output.
    channels: 1 (luma, ITU-R 601-2 as Pillow's ``"L"`` mode) or 3 (RGB; grayscale
      input is replicated over the three channels).
    jpeg_draft: let the JPEG decoder convert to luma and shrink by a power of two
      (see the module docstring).
  """
  with Image.open(io.BytesIO(data)) as img:
    return prepare_image(img, image_size, channels, jpeg_draft)


def prepare_image(img: Image.Image, image_size: tuple[int, int], channels: int, jpeg_draft: bool = True) -> np.ndarray:
  """An opened image as ``uint8 [height, width, channels]``: the one path from pixels to
  model input shared by the input pipeline (``decode_frame``) and ``detect``."""
  if channels not in _MODES:
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  height, width = image_size
  mode = _MODES[channels]
  if jpeg_draft and img.format == "JPEG":
    img.draft(mode, (width, height))
  if img.mode != mode:
    img = img.convert(mode)
  if img.size != (width, height):
    img = img.resize((width, height), Image.Resampling.BILINEAR)
  array = np.asarray(img, dtype=np.uint8)
  return array[:, :, None] if array.ndim == 2 else array


def decode_mask(data: bytes, mask_size: tuple[int, int]) -> np.ndarray:
  """A stored pixel mask (PNG, nonzero = anomalous) as ``uint8 [height, width]`` in {0, 1}
  at ``mask_size``; resized with nearest neighbour when stored at another size."""
  height, width = mask_size
  with Image.open(io.BytesIO(data)) as img:
    img = img.convert("L")
    if img.size != (width, height):
      img = img.resize((width, height), Image.Resampling.NEAREST)
    return (np.asarray(img) != 0).astype(np.uint8)


def to_signed_unit(frames: np.ndarray) -> np.ndarray:
  """``uint8`` pixels to ``float32`` in [-1, 1]: ``(x - 127.5) / 127.5`` (0 -> -1, 255 -> 1)."""
  out = np.subtract(frames, np.float32(127.5), dtype=np.float32)
  out /= np.float32(127.5)
  return out


def to_unit(frames: np.ndarray) -> np.ndarray:
  """``uint8`` pixels to ``float32`` in [0, 1]: ``x / 255``."""
  return np.divide(frames, np.float32(255), dtype=np.float32)


SCALINGS = {"signed_unit": to_signed_unit, "unit": to_unit}
