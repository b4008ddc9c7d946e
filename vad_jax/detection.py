"""Scoring a video as its frames arrive: frame windows and per-frame results.

Shared by the tasks' ``score_video`` (which model runs on a window and how its output
becomes a score) and the ``vad_jax.detect`` command (sources, printing, output files).
Frames are read from an iterator and batched as they come, so a long video never sits
in memory; each batch is padded to a fixed size so that one compiled program serves the
whole video.
"""

import collections
import dataclasses
import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vad_jax.data import preprocessing


@dataclasses.dataclass
class Detection:
  """Per-frame results of one video.

  ``frames`` are the indices of the scored frames (a prediction model cannot score the
  first ``T - 1``); ``scores`` the anomaly scores; ``level`` the value compared with
  ``threshold`` (the score itself, or its moving average); ``alarm`` whether the
  frame is alarmed; ``rule`` the alarm rule in words; ``details`` task-specific
  per-frame arrays (e.g. the raw statistics behind the scores).
  """

  frames: np.ndarray
  scores: np.ndarray
  level: np.ndarray
  alarm: np.ndarray
  threshold: float
  rule: str
  details: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


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


class CausalMinMax:
  """Normalisation by the running min/max of the values so far (0 while constant), over
  a series given whole or in consecutive parts (the running min/max carry over)."""

  def __init__(self):
    self.lo, self.hi = np.inf, -np.inf

  def __call__(self, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    lo = np.minimum.accumulate(np.concatenate([[self.lo], values]))[1:]
    hi = np.maximum.accumulate(np.concatenate([[self.hi], values]))[1:]
    if values.size:
      self.lo, self.hi = lo[-1], hi[-1]
    span = hi - lo
    return np.where(span > 0, (values - lo) / np.where(span > 0, span, 1.0), 0.0)


def causal_minmax(values: np.ndarray) -> np.ndarray:
  """``CausalMinMax`` over one whole series."""
  return CausalMinMax()(values)


def alarm_intervals(frames: np.ndarray, alarm: np.ndarray, min_frames: int = 1) -> list[tuple[int, int]]:
  """Inclusive ``(first, last)`` frame ranges where ``alarm`` holds for at least
  ``min_frames`` consecutive scored frames."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], alarm.astype(int), [0]])))
  return [(int(frames[a]), int(frames[b - 1])) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_frames]


# --------------------------------------------------------------------------------------
# Frame-by-frame results, as frames arrive.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class AlarmEvent:
  """An alarm interval: ``first`` alarmed frame and, once it has ended, its ``last``
  (``None`` while it lasts) and its highest ``level``."""

  first: int
  last: int | None
  peak: float


@dataclasses.dataclass
class FrameResult:
  """One frame of a source, in order, as soon as it is scored.

  ``score`` and ``level`` are ``None`` for frames the model cannot score (the first
  ``T - 1`` of a prediction model); ``frame`` is the source's frame (decoded or still
  encoded: ``to_rgb``) when asked for; ``error_map`` the prediction model's per-pixel
  squared error ``[h, w]`` at the model's resolution (frame scale ``[0, 1]``) when asked
  for; ``event`` an alarm interval that started (``last`` is ``None``) or ended at this
  frame.
  """

  index: int
  score: float | None
  level: float | None
  alarm: bool
  frame: Frame | None = None
  error_map: np.ndarray | None = None
  event: AlarmEvent | None = None


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


def with_alarm_events(results: Iterator[FrameResult], min_frames: int = 1) -> Iterator[FrameResult]:
  """Marks alarm intervals of at least ``min_frames`` consecutive alarmed frames on the
  results: ``event`` (``last = None``) on the frame where an interval reaches
  ``min_frames``, and the completed interval on the first frame after it (or on the
  source's last frame when the alarm lasts to the end)."""
  if min_frames < 1:
    raise ValueError(f"min_frames must be >= 1, got {min_frames}")
  first, run, peak, previous = None, 0, -np.inf, None
  for result in results:
    if previous is not None:
      yield previous
    if result.alarm:
      first = result.index if run == 0 else first
      run, peak = run + 1, max(peak, result.level)
      if run == min_frames:
        result.event = AlarmEvent(first, None, peak)
    elif run:
      if run >= min_frames:
        result.event = AlarmEvent(first, result.index - 1, peak)
      first, run, peak = None, 0, -np.inf
    previous = result
  if previous is not None:
    if run >= min_frames and previous.event is None:
      previous.event = AlarmEvent(first, previous.index, peak)
    yield previous


def heat_map(frame: np.ndarray, error_map: np.ndarray, scale: float, opacity: float = 0.5) -> np.ndarray:
  """``frame`` (uint8 RGB ``[H, W, 3]``) with the prediction error drawn over it:
  ``error_map`` (``[h, w]``, any resolution) divided by ``scale`` and clipped to [0, 1],
  from transparent (no error) through yellow to red (``scale`` or more)."""
  h, w = frame.shape[:2]
  level = np.clip(np.asarray(error_map, np.float32) / max(float(scale), 1e-12), 0.0, 1.0)
  level = np.asarray(Image.fromarray(level).resize((w, h), Image.BILINEAR))[..., None]
  colour = np.concatenate([np.ones_like(level), 1.0 - level, np.zeros_like(level)], axis=-1) * 255.0
  alpha = opacity * level
  return (frame.astype(np.float32) * (1.0 - alpha) + colour * alpha).round().clip(0, 255).astype(np.uint8)
