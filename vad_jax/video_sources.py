"""Frames from a video file or a frame folder, read as they are needed.

A video file (anything PyAV decodes) gives uint8 ``[H, W, 3]`` RGB frames; a folder of
images (sorted by name) gives each file's encoded bytes (``detection.EncodedFrame``),
decoded for the model by the input pipeline's own path. Neither holds more than the
frame at hand in memory.
"""

import pathlib
import warnings
from collections.abc import Iterator

from vad_jax import detection
from vad_jax.tfds_builders import video as video_lib

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def frame_files(folder: pathlib.Path) -> list[pathlib.Path]:
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))
  if not files:
    raise FileNotFoundError(f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
  return files


class IncompleteVideoWarning(UserWarning):
  """A video file held fewer decodable frames than its container promised."""


def check_source(path: pathlib.Path) -> None:
  """Raises before any model work if ``path`` is neither a frame folder with frames
  nor a video file whose container opens."""
  if path.is_dir():
    frame_files(path)
  elif not path.exists():
    raise FileNotFoundError(f"no video file or frame folder at {path}")
  else:
    video_lib.probe(path)


def read_video(path: pathlib.Path) -> Iterator[detection.Frame]:
  """The frames of a video file (uint8 ``[H, W, 3]``) or a frame folder (the files'
  encoded bytes, ``detection.EncodedFrame``), in order.

  A video file that ends early (truncated, or a decoding error after some frames) gives
  the frames that decode and an ``IncompleteVideoWarning`` saying how many the
  container promised.
  """
  if path.is_dir():
    for f in frame_files(path):  # decoded later, by the input pipeline's path
      yield detection.EncodedFrame(f.read_bytes(), str(f))
    return
  check_source(path)
  promised = video_lib.probe(path).num_frames
  decoded, problem = 0, ""
  try:
    for frame in video_lib.iter_frames(path, check_count=False):
      decoded += 1
      yield frame
  except video_lib.VideoDecodeError as error:
    if decoded == 0:
      raise
    problem = f" ({error})"
  if problem or (promised and promised - decoded > video_lib.count_tolerance(promised)):
    warnings.warn(
      f"{path}: the container promises {promised} frames, {decoded} could be decoded{problem}; only those are scored",
      IncompleteVideoWarning,
      stacklevel=2,
    )
