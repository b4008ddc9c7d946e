"""Using a trained model from Python: load it, score frames or a video, export it.

  from vad_jax.detector import Detector

  detector = Detector.load("runs/ped2")        # a training workdir (latest step) or a step folder
  result = detector.score("walkway.mp4")       # a video file, a frame folder, or frames
  result.frames, result.scores, result.alarm   # per scored frame
  for r in detector.stream("rtsp://cam/live", min_frames=5):  # frame by frame, endless sources
    r.index, r.score, r.alarm, r.event          # event: an alarm interval started or ended
  detector.alarm_intervals(result, min_frames=5)
  detector.export("ped2.jaxexport")            # runs with JAX alone (vad_jax.export)

The config, weights and calibration come from the checkpoint; the scores are the task's
(``Task.score_video``): for the dual-stream network the calibrated deployment score
(``vad_jax/dual_stream/calibration.py``, alarm at the calibrated false-alarm rate),
or, when asked (``normalisation="video"`` / ``"causal"``), Eq. (16) normalised over the
whole video or causally; for a classifier its anomaly probability with the
moving-average alarm. ``python -m vad_jax.detect`` is a command
line over this class.
"""

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax import checkpointing, detection, export, sharding, tasks, video_sources
from vad_jax import state as state_lib


@dataclasses.dataclass
class Detector:
  """A trained model and its config, placed on one device."""

  config: ml_collections.ConfigDict
  state: Any
  checkpoint: Optional[pathlib.Path] = None
  calibration: Optional[dict[str, Any]] = None

  @classmethod
  def load(cls, checkpoint: str | os.PathLike, device: Optional[jax.Device] = None) -> "Detector":
    """From a training workdir (its newest intact checkpoint) or a step folder
    (``run/checkpoints/300``)."""
    directory, step, _ = state_lib.parse_checkpoint_path(checkpoint)
    mesh = sharding.make_mesh([device or jax.devices()[0]])
    config, state = state_lib.restore(directory, step, mesh)
    calibration = checkpointing.read_calibration(directory, int(state.step))
    return cls(config, state, pathlib.Path(checkpoint), calibration)

  @property
  def task(self) -> tasks.Task:
    return tasks.for_config(self.config)

  def score(
    self,
    source: str | os.PathLike | np.ndarray | Iterable[detection.Frame],
    *,
    batch_size: int = 8,
    threshold: Optional[float] = None,
    normalisation: Optional[str] = None,
    name: Optional[str] = None,
  ) -> detection.Detection:
    """Scores a video file or frame folder (a path), a ``uint8 [N, H, W, 3]`` array, or
    any iterable of such frames (a generator reading a stream). ``normalisation``: see
    the task's ``score_video`` (default: calibrated when the checkpoint has a
    calibration; the dual-stream network refuses to guess otherwise)."""
    if isinstance(source, (str, os.PathLike)):
      frames, name = video_sources.read_video(source), name or os.fspath(source)
    else:
      frames = iter(source)
    return self.task.score_video(
      self.config,
      self.state,
      frames,
      batch_size=batch_size,
      threshold=threshold,
      normalisation=normalisation,
      calibration=self.calibration,
      name=name or "frames",
    )

  def stream(
    self,
    source: str | os.PathLike | np.ndarray | Iterable[detection.Frame],
    *,
    batch_size: int = 8,
    threshold: Optional[float] = None,
    normalisation: Optional[str] = None,
    min_frames: int = 1,
    keep_frames: bool = False,
    error_maps: bool = False,
  ) -> Iterator[detection.FrameResult]:
    """Every frame of a source (a file, frame folder, URL, device, array or iterable of
    frames) with its score and alarm as soon as its batch is scored, for sources that
    never end: memory stays flat. Alarm intervals of at least ``min_frames`` frames are
    announced on the results (``result.event``: when one reaches ``min_frames`` and
    when it ends). ``keep_frames`` hands each source frame back with its result and
    ``error_maps`` adds the prediction error per pixel (prediction network), both for
    drawing (``detection.heat_map``). The scores equal ``score``'s frame for frame; the
    prediction network's ``video`` normalisation needs the whole video and is refused.

      for result in detector.stream("rtsp://camera.local/stream", min_frames=5):
        if result.event is not None and result.event.last is None:
          print("alarm from frame", result.event.first)
    """
    if isinstance(source, (str, os.PathLike)):
      frames, name = video_sources.read_video(source), os.fspath(source)
    else:
      frames, name = iter(source), "frames"
    results = self.task.stream(
      self.config,
      self.state,
      frames,
      batch_size=batch_size,
      threshold=threshold,
      normalisation=normalisation,
      calibration=self.calibration,
      keep_frames=keep_frames,
      error_maps=error_maps,
      name=name,
    )
    return detection.with_alarm_events(results, min_frames)

  def heat_scale(self) -> Optional[float]:
    """The per-pixel squared error drawn at full strength by ``detection.heat_map``: ten
    times the mean error of the calibration's normal frames (``None`` without a
    calibration)."""
    if self.calibration is None or "pixel_error" not in self.calibration:
      return None
    return 10.0 * self.calibration["pixel_error"]

  @staticmethod
  def alarm_intervals(result: detection.Detection, min_frames: int = 1) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` frame ranges alarmed for at least ``min_frames``."""
    return detection.alarm_intervals(result.frames, result.alarm, min_frames)

  def export(self, path: str | os.PathLike) -> pathlib.Path:
    """The scoring program for JAX alone (``vad_jax.export``)."""
    return export.export(self.config, self.state, path)
