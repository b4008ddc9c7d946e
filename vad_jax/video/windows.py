"""Frames into model windows, as the frames arrive.

Shared by the tasks' video scorers (which model runs on a window and how its output
becomes a score). Frames are read from an iterator and batched as they come, so a long
video never sits in memory; each batch is padded to a fixed size so that one compiled
program serves the whole video. ``FrameKeeper`` holds each source frame until its
result is out, so that a result can carry its frame.
"""

import collections
import dataclasses
import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vad_jax.data import preprocessing


@dataclasses.dataclass(frozen=True)
class EncodedFrame:
  """A frame still encoded (an image file's bytes), decoded for the model exactly as the
  input pipeline decodes a dataset record (``preprocessing.decode_frame``, JPEG draft
  mode included), so that ``detect`` and ``evaluate`` give identical scores for
  identical frames."""

  data: bytes
  name: str  # the file, for messages

  def to_rgb(self) -> np.ndarray:
    """Full-resolution uint8 RGB (for display)."""
    try:
      with Image.open(io.BytesIO(self.data)) as image:
        return np.asarray(image.convert("RGB"))
    except OSError as error:
      raise ValueError(f"cannot decode frame image {self.name}: {error}") from error


Frame = np.ndarray | EncodedFrame


def to_rgb(frame: Frame) -> np.ndarray:
  """uint8 ``[H, W, 3]`` of a decoded or encoded frame."""
  return frame.to_rgb() if isinstance(frame, EncodedFrame) else frame


def frame_size(frame: Frame) -> tuple[int, int]:
  """``(height, width)`` of a decoded or encoded frame (an encoded one's header only)."""
  if isinstance(frame, EncodedFrame):
    try:
      with Image.open(io.BytesIO(frame.data)) as image:
        return image.height, image.width
    except OSError as error:
      raise ValueError(f"cannot decode frame image {frame.name}: {error}") from error
  return tuple(frame.shape[:2])


def prepare_frame(frame: Frame, size: tuple[int, int], channels: int, jpeg_draft: bool = True) -> np.ndarray:
  """Model input ``uint8 [h, w, c]`` of one frame, through the input pipeline's path."""
  if isinstance(frame, EncodedFrame):
    try:
      return preprocessing.decode_frame(frame.data, size, channels, jpeg_draft)
    except OSError as error:
      raise ValueError(f"cannot decode frame image {frame.name}: {error}") from error
  return preprocessing.prepare_image(Image.fromarray(frame), size, channels, jpeg_draft)


def sliding_windows(
  frames: Iterator[Frame], length: int, size: tuple[int, int], channels: int, batch_size: int, jpeg_draft: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
  """Every window of ``length`` consecutive frames, one per new frame.

  Yields ``(windows uint8 [B, length, h, w, c], index of each window's last frame [B],
  count)``; the last batch is padded to ``batch_size`` by repeating its last window
  (``count`` real windows).
  """
  window = collections.deque(maxlen=length)
  clips, targets = [], []
  for index, frame in enumerate(frames):
    window.append(prepare_frame(frame, size, channels, jpeg_draft))
    if len(window) == length:
      clips.append(np.stack(window))
      targets.append(index)
    if len(clips) == batch_size:
      yield np.stack(clips), np.array(targets), batch_size
      clips, targets = [], []
  if clips:
    count = len(clips)
    clips += [clips[-1]] * (batch_size - count)
    yield np.stack(clips), np.array(targets), count


def consecutive_windows(
  frames: Iterator[Frame], length: int, size: tuple[int, int], channels: int, batch_size: int, jpeg_draft: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
  """Non-overlapping windows of ``length`` frames.

  Yields ``(windows uint8 [B, length, h, w, c], first frame [B], real frames [B],
  count)``; the last window is padded by repeating its final frame, the last batch by
  repeating its last window (``count`` real windows, padding windows have 0 frames).
  """
  window, clips, firsts, lengths = [], [], [], []

  def flush():
    count = len(clips)
    pad = batch_size - count
    return (
      np.stack(clips + clips[-1:] * pad),
      np.array(firsts + firsts[-1:] * pad),
      np.array(lengths + [0] * pad),
      count,
    )

  index = -1
  for index, frame in enumerate(frames):
    window.append(prepare_frame(frame, size, channels, jpeg_draft))
    if len(window) == length:
      clips.append(np.stack(window))
      firsts.append(index - length + 1)
      lengths.append(length)
      window = []
    if len(clips) == batch_size:
      yield flush()
      clips, firsts, lengths = [], [], []
  if window:
    real = len(window)
    clips.append(np.stack(window + window[-1:] * (length - real)))
    firsts.append(index - real + 1)
    lengths.append(real)
  if clips:
    yield flush()


class FrameKeeper:
  """Passes frames through to the model's windows and keeps each one until its result
  is out, so that a result can carry its frame (at most a batch and a window of frames
  are held)."""

  def __init__(self, frames: Iterator[Frame], keep: bool):
    self._frames, self._keep = frames, keep
    self._held: collections.deque = collections.deque()
    self.next_index = 0  # the first frame not yet handed out as a result

  def __iter__(self) -> Iterator[Frame]:
    for frame in self._frames:
      self._held.append(frame if self._keep else None)
      yield frame

  def release(self, upto: int) -> Iterator[tuple[int, Frame | None]]:
    """``(index, frame)`` of every held frame up to index ``upto`` inclusive."""
    while self.next_index <= upto and self._held:
      yield self.next_index, self._held.popleft()
      self.next_index += 1

  def release_all(self) -> Iterator[tuple[int, Frame | None]]:
    """Every frame still held."""
    return self.release(self.next_index + len(self._held))
