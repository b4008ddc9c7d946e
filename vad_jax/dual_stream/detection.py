"""The prediction network as a detector: every frame of a video scored with its ``T - 1``
predecessors, as the frames arrive.

Three normalisations of the frame statistics (``NORMALISATIONS``):

* ``calibrated``: the deployment score (``calibration.py``), comparable between videos;
  needs a calibration; alarm above ``1 - false_alarm_rate``;
* ``video``: Eq. (16) with min-max over the whole video, the literature's protocol;
  alarm above ``DEFAULT_THRESHOLD``; needs the whole video;
* ``causal``: Eq. (16) with the running min/max of what was seen so far.

Without a calibration the scorer refuses to guess: an uncalibrated score is used only
when asked for. With the ``calibrated`` normalisation a stream also says where each
alarm is: the boxes of the frame's regions that set it off (``regions.py``).
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Optional

import jax
import numpy as np

from vad_jax.data import preprocessing
from vad_jax.dual_stream import calibration as calibration_lib
from vad_jax.dual_stream import regions, scoring, steps
from vad_jax.video import results, windows

NORMALISATIONS = ("calibrated", "video", "causal")
DEFAULT_THRESHOLD = 0.6  # alarm threshold on the ``video``/``causal``-normalised fused score


def fused_scorer(
  normalisation: str, lam: float, calibration: Optional[Mapping[str, Any]] = None
) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
  """Statistics of consecutive frames -> fused scores, by ``normalisation``. Called on a
  whole video, or batch after batch (the causal state carries over), it gives the same
  scores."""
  if normalisation == "calibrated":
    return lambda stats: calibration_lib.calibrated_scores(stats, calibration)["fused"]
  if normalisation == "video":
    return lambda stats: scoring.fused_score(stats["psnr"], stats["spatial_distance"], stats["temporal_distance"], lam)
  norms = {k: results.CausalMinMax() for k in ("psnr", "spatial_distance", "temporal_distance")}
  return lambda stats: (
    lam * (1.0 - norms["psnr"](stats["psnr"]))
    + 0.5 * (1.0 - lam) * norms["spatial_distance"](stats["spatial_distance"])
    + 0.5 * (1.0 - lam) * norms["temporal_distance"](stats["temporal_distance"])
  )


class PredictionScorer:
  """Scores and alarms of the frames of one video (``vad_jax.tasks.VideoScorer``).

  ``normalisation``: one of ``NORMALISATIONS``; ``None`` means ``calibrated`` when a
  calibration is given and is an error otherwise. ``threshold`` overrides the alarm
  threshold (the calibration's, or ``DEFAULT_THRESHOLD``).
  """

  def __init__(
    self,
    config,
    state,
    *,
    threshold: Optional[float] = None,
    normalisation: Optional[str] = None,
    calibration: Optional[Mapping[str, Any]] = None,
  ):
    if normalisation is not None and normalisation not in NORMALISATIONS:
      raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if calibration is not None:
      calibration_lib.check(calibration)
    self.config, self.state = config, state
    self.normalisation, self.calibration, self._threshold = normalisation, calibration, threshold

  def _normalisation(self, name: str) -> str:
    """The normalisation asked for, checked against the calibration."""
    if self.normalisation is None:
      if self.calibration is None:
        raise ValueError(
          f"{name}: this model has no calibration, so its scores cannot be compared with a fixed threshold; fit "
          f"one (python -m vad_jax.calibrate --workdir RUN [--videos NORMAL_VIDEOS]) or ask for the per-video "
          f"normalised score (normalisation 'video', or 'causal' for a stream)"
        )
      return "calibrated"
    if self.normalisation == "calibrated" and self.calibration is None:
      raise ValueError(f"{name}: normalisation 'calibrated' needs a calibration (python -m vad_jax.calibrate)")
    return self.normalisation

  def _threshold_and_rule(self, normalisation: str) -> tuple[float, str]:
    if normalisation == "calibrated":
      threshold = self.calibration["threshold"] if self._threshold is None else self._threshold
      target = self.calibration["false_alarm_rate"]
      return threshold, f"calibrated score > {threshold:g} (target false-alarm rate {target:g})"
    threshold = DEFAULT_THRESHOLD if self._threshold is None else self._threshold
    return threshold, f"{normalisation}-normalised score > {threshold:g}"

  def score(self, frames: Iterator[windows.Frame], *, batch_size: int = 8, name: str = "video") -> results.Detection:
    """Scores of every frame with ``T - 1`` predecessors, and alarms; ``details`` holds
    the raw statistics."""
    normalisation = self._normalisation(name)
    frame_indices, stats = steps.video_statistics(self.config, self.state, frames, batch_size, name)
    scores = fused_scorer(normalisation, self.config.score.lam, self.calibration)(stats)
    threshold, rule = self._threshold_and_rule(normalisation)
    return results.Detection(
      frames=frame_indices,
      scores=scores,
      level=scores,
      alarm=scores > threshold,
      threshold=threshold,
      rule=rule,
      details=stats,
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
    """Every frame's result as soon as its batch is scored (the first ``T - 1`` frames
    have no score), for a source that may never end. The scores are ``score``'s, frame
    for frame, for the causal normalisations (``calibrated`` and ``causal``); ``video``
    needs the whole video and is refused. ``keep_frames`` hands each source frame back
    with its result; ``error_maps`` adds the fused prediction's per-pixel error. With
    ``calibrated``, each alarmed frame's result holds the boxes of its alarm
    (``regions.alarm_boxes``, in the source frame's pixels)."""
    normalisation = self._normalisation(name)
    if normalisation == "video":
      raise ValueError(
        f"{name}: the 'video' normalisation needs the whole video (use score), not a stream; use "
        f"'calibrated' or 'causal'"
      )
    config = self.config
    locate = normalisation == "calibrated"  # the boxes need the error maps, and the frames' sizes
    stats_fn = steps.model_statistics(config, self.state, error_maps or locate)
    scorer = fused_scorer(normalisation, config.score.lam, self.calibration)
    threshold, _ = self._threshold_and_rule(normalisation)
    keeper = windows.FrameKeeper(frames, keep_frames or locate)  # held until their results are out
    clips_of = windows.sliding_windows(
      iter(keeper),
      config.model.sequence_length,
      tuple(config.data.image_size),
      config.data.channels,
      batch_size,
      config.data.jpeg_draft,
    )
    for clips, index, count in clips_of:
      out = jax.device_get(stats_fn(preprocessing.to_signed_unit(clips)))  # results are wanted now: one transfer
      stats = {k: np.asarray(out[k][:count], np.float64) for k in scoring.STAT_KEYS}
      scores = scorer(stats)
      position = {int(i): row for row, i in enumerate(index[:count])}
      for i, frame in keeper.release(int(index[count - 1])):
        kept = frame if keep_frames else None
        row = position.get(i)
        if row is None:
          yield results.FrameResult(i, None, None, False, kept)
          continue
        score = float(scores[row])
        alarm, boxes = score > threshold, ()
        if locate and alarm:
          level = self.calibration["region_level"]
          boxes = regions.alarm_boxes(out["error_map"][row], level, windows.frame_size(frame))
        error_map = np.asarray(out["error_map"][row]) if error_maps else None
        yield results.FrameResult(i, score, score, alarm, kept, error_map, boxes=boxes)
    for i, frame in keeper.release_all():  # a source shorter than T
      yield results.FrameResult(i, None, None, False, frame if keep_frames else None)
