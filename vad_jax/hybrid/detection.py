"""A classifier as a detector: per-frame anomaly probabilities over consecutive windows of
``data.clip_frames`` frames, alarmed on their moving average (as in the authors' code).

The last window of a video is padded by repeating its final frame; a ConvLSTM frame
takes its window's probability. A probability needs no normalisation or calibration;
the result is causal up to one window.
"""

import functools
from collections.abc import Iterator
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax import metrics as metrics_lib
from vad_jax.data import preprocessing
from vad_jax.hybrid import boxes, networks, steps
from vad_jax.video import results, windows


class ClassifierScorer:
  """Scores and alarms of the frames of one video (``vad_jax.tasks.VideoScorer``): alarm
  where the moving average of the last ``alarm.window`` probabilities exceeds
  ``threshold`` (default ``alarm.threshold``)."""

  def __init__(self, config: ml_collections.ConfigDict, state, *, threshold: Optional[float] = None):
    self.config, self.state = config, state
    self.threshold = config.alarm.threshold if threshold is None else threshold

  def _window_probabilities(
    self, frames: Iterator[windows.Frame], batch_size: int, name: str
  ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """``(frame probabilities [B, n] on the device, first frames, lengths)`` of each batch
    of consecutive windows of ``data.clip_frames`` frames (padding windows dropped)."""
    config = self.config
    step = jax.jit(functools.partial(steps.eval_step, model=networks.build(config), config=config))
    add_boxes = None
    if boxes.needs_boxes(config):
      add_boxes = boxes.AddBoxes(boxes.make_box_source(config), config.boxes.max_boxes, (name,))
    n = config.data.clip_frames
    clips_of = windows.consecutive_windows(
      frames, n, tuple(config.data.image_size), config.data.channels, batch_size, config.data.jpeg_draft
    )
    for clips, firsts, lengths, count in clips_of:
      batch = {
        "frames": clips,
        "valid": lengths > 0,
        "video_index": np.zeros(len(clips), np.int32),
        "frame_index": firsts[:, None] + np.arange(n),
      }
      if add_boxes is not None:
        batch = add_boxes(batch)  # on the uint8 frames, as in the input pipeline
      batch["frames"] = preprocessing.to_unit(clips)
      yield step(self.state, batch)["frame_probs"], firsts[:count], lengths[:count]

  def score(self, frames: Iterator[windows.Frame], *, batch_size: int = 8, name: str = "video") -> results.Detection:
    """Per-frame anomaly probabilities and moving-average alarms of a whole video."""
    parts = list(self._window_probabilities(frames, batch_size, name))  # results stay on the device
    if not parts:
      raise ValueError(f"{name} has no frame to score")
    host = jax.device_get([p for p, _, _ in parts])
    indices, probs = [], []
    for probs_batch, (_, firsts, lengths) in zip(host, parts):
      for row, (first, length) in enumerate(zip(firsts, lengths)):
        indices.append(first + np.arange(length))
        probs.append(np.asarray(probs_batch[row, :length], np.float64))
    frame_indices, scores = np.concatenate(indices), np.concatenate(probs)
    window = self.config.alarm.window
    level, alarm = metrics_lib.moving_average_alarm(scores, window, self.threshold)
    return results.Detection(
      frames=frame_indices,
      scores=scores,
      level=level,
      alarm=alarm,
      threshold=self.threshold,
      rule=f"moving average of {window} probabilities > {self.threshold}",
    )

  def stream(
    self,
    frames: Iterator[windows.Frame],
    *,
    batch_size: int = 8,
    keep_frames: bool = False,
    error_maps: bool = False,
    name: str = "video",
  ) -> Iterator[results.FrameResult]:
    """Every frame's result as soon as its batch of windows is scored: ``score``'s
    probabilities and moving-average alarms, frame for frame. A classifier has no
    prediction error, so ``error_maps`` gives none."""
    del error_maps
    window = self.config.alarm.window
    history = np.zeros(0)  # the last window - 1 probabilities: the moving average continues over batches
    keeper = windows.FrameKeeper(frames, keep_frames)
    for probs, firsts, lengths in self._window_probabilities(iter(keeper), batch_size, name):
      probs = np.asarray(jax.device_get(probs), np.float64)  # results are wanted now: one transfer
      new = np.concatenate([probs[row, :length] for row, length in enumerate(lengths)])
      series = np.concatenate([history, new])
      levels, alarms = metrics_lib.moving_average_alarm(series, window, self.threshold)
      history = series[len(series) - (window - 1) :] if window > 1 else np.zeros(0)
      last = int(firsts[-1] + lengths[-1] - 1)
      released = zip(keeper.release(last), new, levels[-len(new) :], alarms[-len(new) :])
      for (i, frame), p, level, alarm in released:
        yield results.FrameResult(i, float(p), float(level), bool(alarm), frame)
    for i, frame in keeper.release_all():  # nothing left unscored unless the source was empty
      yield results.FrameResult(i, None, None, False, frame)
