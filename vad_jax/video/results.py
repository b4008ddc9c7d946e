"""Per-frame results of a video scorer and the alarms drawn from them.

``Detection`` holds a whole video's scores (``Detector.score``), ``FrameResult`` one
frame's as soon as it is scored (``Detector.stream``); ``with_alarm_events`` marks alarm
intervals on a stream of results as they start and end; ``CausalMinMax`` normalises a
series by what was seen so far.
"""

import dataclasses
from collections.abc import Iterator

import numpy as np

from vad_jax.video import windows


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
  (``None`` while it lasts) and its highest ``level``; the frames' times in seconds where
  the source has a clock (``FrameResult.time``); ``open`` when the source ended while the
  alarm still held (``last`` is then the source's last frame)."""

  first: int
  last: int | None
  peak: float
  first_time: float | None = None
  last_time: float | None = None
  open: bool = False


@dataclasses.dataclass
class FrameResult:
  """One frame of a source, in order, as soon as it is scored.

  ``score`` and ``level`` are ``None`` for frames the model cannot score (the first
  ``T - 1`` of a prediction model); ``frame`` is the source's frame (decoded or still
  encoded: ``to_rgb``) when asked for; ``error_map`` the prediction model's per-pixel
  squared error ``[h, w]`` at the model's resolution (frame scale ``[0, 1]``) when asked
  for; ``event`` an alarm interval that started (``last`` is ``None``) or ended at this
  frame; ``time`` the frame's presentation time in seconds from the source's own clock
  (``None`` for a source without one: a frame folder, an array); ``boxes`` the regions
  of an alarmed frame that caused its alarm, ``(x0, y0, x1, y1)`` in the source frame's
  pixels (``x0 <= x < x1``), where the scorer locates alarms (the prediction model's
  calibrated score), else empty.
  """

  index: int
  score: float | None
  level: float | None
  alarm: bool
  frame: windows.Frame | None = None
  error_map: np.ndarray | None = None
  event: AlarmEvent | None = None
  time: float | None = None
  boxes: tuple[tuple[int, int, int, int], ...] = ()


def with_alarm_events(results: Iterator[FrameResult], min_frames: int = 1) -> Iterator[FrameResult]:
  """Marks alarm intervals of at least ``min_frames`` consecutive alarmed frames on the
  results: ``event`` (``last = None``) on the frame where an interval reaches
  ``min_frames``, and the completed interval on the first frame after it, or, when the
  alarm lasts to the end of the source, on the source's last frame (``open``)."""
  if min_frames < 1:
    raise ValueError(f"min_frames must be >= 1, got {min_frames}")
  first, first_time, run, peak, previous = None, None, 0, -np.inf, None
  for result in results:
    if result.alarm:
      if run == 0:
        first, first_time = result.index, result.time
      run, peak = run + 1, max(peak, result.level)
      if run == min_frames:
        result.event = AlarmEvent(first, None, peak, first_time)
    elif run:
      if run >= min_frames:
        result.event = AlarmEvent(first, result.index - 1, peak, first_time, previous.time)
      first, first_time, run, peak = None, None, 0, -np.inf
    if previous is not None:
      yield previous
    previous = result
  if previous is not None:
    if run >= min_frames:
      ended = AlarmEvent(first, previous.index, peak, first_time, previous.time, open=True)
      if previous.event is None:
        previous.event = ended
      else:  # the alarm reached min_frames on the very last frame: it started and is still open
        previous.event.last, previous.event.last_time, previous.event.open = ended.last, ended.last_time, True
    yield previous
