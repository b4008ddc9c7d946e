"""Using a trained model from Python: load it, score frames or a video, export it.

  from vad_jax.detector import Detector

  detector = Detector.load("runs/ped2")        # a training workdir (latest step) or a step folder
  result = detector.score("walkway.mp4")       # a video file, a frame folder, or frames
  result.frames, result.scores, result.alarm   # per scored frame
  for r in detector.stream("rtsp://cam/live", min_frames=5):  # frame by frame, endless sources
    r.index, r.score, r.alarm, r.event          # event: an alarm interval started or ended
    r.boxes                                     # calibrated: where each alarm is, in the frame's pixels
  detector.alarm_intervals(result, min_frames=5)
  detector.export("ped2.jaxexport")            # runs with JAX alone (vad_jax.export)

The config, weights and calibration come from the checkpoint; the scores are the task's
(``Scoring.video_scorer``): for the dual-stream network the calibrated deployment score
(``vad_jax/dual_stream/calibration.py``, alarm at the calibrated false-alarm rate),
or, when asked (``normalisation="video"`` / ``"causal"``), Eq. (16) normalised over the
whole video or causally; for a classifier its anomaly probability with the
moving-average alarm. ``vad-jax detect`` is a command line over this class, ``vad-jax
calibrate`` over ``calibrate``.
"""

import collections
import dataclasses
import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax import checkpointing, export, sharding, tasks
from vad_jax import precision as precision_lib
from vad_jax import state as state_lib
from vad_jax.video import results, sources, windows


@dataclasses.dataclass
class Detector:
  """A trained model and its config, placed on one device."""

  config: ml_collections.ConfigDict
  state: Any
  checkpoint: Optional[pathlib.Path] = None
  calibration: Optional[dict[str, Any]] = None

  @classmethod
  def load(
    cls, checkpoint: str | os.PathLike, device: Optional[jax.Device] = None, precision: Optional[str] = None
  ) -> "Detector":
    """From a training workdir (its newest intact checkpoint) or a step folder
    (``run/checkpoints/300``). ``precision`` (``vad_jax.precision.CHOICES``) replaces
    the compute precision the model was trained with: the parameters are float32 in
    every precision."""
    directory, step, _ = state_lib.parse_checkpoint_path(checkpoint)
    mesh = sharding.make_mesh([device or jax.devices()[0]])
    config, state = state_lib.restore(directory, step, mesh)
    if precision is not None:
      config.model.dtype = precision_lib.resolve(precision).requested
    check = tasks.hook(tasks.for_config(config), "check_calibration")
    calibration = checkpointing.read_calibration(directory, int(state.step), check)
    return cls(config, state, pathlib.Path(checkpoint), calibration)

  @property
  def task(self) -> tasks.Scoring:
    return tasks.for_config(self.config)

  def scorer(self, threshold: Optional[float] = None, normalisation: Optional[str] = None) -> tasks.VideoScorer:
    """The task's scorer with this detector's calibration (tasks that calibrate) and the
    ``normalisation`` asked for (tasks with several; the others have one score and
    ignore it)."""
    options = {}
    if tasks.hook(self.task, "calibrate") is not None:
      options["calibration"] = self.calibration
    if normalisation is not None and tasks.hook(self.task, "NORMALISATIONS"):
      options["normalisation"] = normalisation
    return self.task.video_scorer(self.config, self.state, threshold=threshold, **options)

  def score(
    self,
    source: str | os.PathLike | np.ndarray | Iterable[windows.Frame],
    *,
    batch_size: int = 8,
    threshold: Optional[float] = None,
    normalisation: Optional[str] = None,
    name: Optional[str] = None,
  ) -> results.Detection:
    """Scores a video file or frame folder (a path), a ``uint8 [N, H, W, 3]`` array, or
    any iterable of such frames (a generator reading a stream). ``normalisation``: see
    the task's ``video_scorer`` (default: calibrated when the checkpoint has a
    calibration; the dual-stream network refuses to guess otherwise)."""
    if isinstance(source, (str, os.PathLike)):
      frames, name = sources.read_video(source), name or os.fspath(source)
    else:
      frames = iter(source)
    return self.scorer(threshold, normalisation).score(frames, batch_size=batch_size, name=name or "frames")

  def stream(
    self,
    source: str | os.PathLike | np.ndarray | Iterable[windows.Frame],
    *,
    batch_size: int = 8,
    threshold: Optional[float] = None,
    normalisation: Optional[str] = None,
    min_frames: int = 1,
    keep_frames: bool = False,
    error_maps: bool = False,
  ) -> Iterator[results.FrameResult]:
    """Every frame of a source (a file, frame folder, URL, device, array or iterable of
    frames) with its score and alarm as soon as its batch is scored, for sources that
    never end: memory stays flat. Each result carries the frame's time in seconds from
    the source's clock (``None`` for frame folders and arrays). Alarm intervals of at
    least ``min_frames`` frames are announced on the results (``result.event``: when
    one reaches ``min_frames``, when it ends, or ``open`` when the source ends during
    it). ``keep_frames`` hands each source frame back with its result and ``error_maps``
    adds the prediction error per pixel (prediction network), both for drawing
    (``video.annotation.heat_map``). With the prediction network's calibrated score,
    each alarmed frame's result holds the boxes of the regions that raised the alarm
    (``result.boxes``, ``(x0, y0, x1, y1)`` in the source frame's pixels). The scores
    equal ``score``'s frame for frame; the prediction network's ``video`` normalisation
    needs the whole video and is refused.

      for result in detector.stream("rtsp://camera.local/stream", min_frames=5):
        if result.event is not None and result.event.last is None:
          print("alarm from frame", result.event.first)
    """
    if isinstance(source, (str, os.PathLike)):
      timed, name = sources.read_timed(source), os.fspath(source)
    else:
      timed, name = ((frame, None) for frame in source), "frames"
    times = collections.deque()  # of the frames read whose results are not out yet

    def frames() -> Iterator[windows.Frame]:
      for frame, time in timed:
        times.append(time)
        yield frame

    found = self.scorer(threshold, normalisation).stream(
      frames(), batch_size=batch_size, keep_frames=keep_frames, error_maps=error_maps, name=name
    )
    found = (dataclasses.replace(r, time=times.popleft()) for r in found)  # one result per frame, in order
    return results.with_alarm_events(found, min_frames)

  def heat_scale(self) -> Optional[float]:
    """The per-pixel squared error drawn at full strength by ``annotation.heat_map``: ten
    times the mean error of the calibration's normal frames (``None`` without a
    calibration)."""
    if self.calibration is None or "pixel_error" not in self.calibration:
      return None
    return 10.0 * self.calibration["pixel_error"]

  @staticmethod
  def alarm_intervals(result: results.Detection, min_frames: int = 1) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` frame ranges alarmed for at least ``min_frames``."""
    return results.alarm_intervals(result.frames, result.alarm, min_frames)

  def export(self, path: str | os.PathLike) -> pathlib.Path:
    """The scoring program for JAX alone (``vad_jax.export``), with the calibrated
    scores and alarms when the checkpoint has a calibration."""
    return export.export(self.config, self.state, path, self.calibration)


def calibrate(
  checkpoint: str | os.PathLike, videos: Iterable[str | os.PathLike] = (), false_alarm_rate: Optional[float] = None
) -> pathlib.Path:
  """Fits the deployment score of a checkpoint (a workdir or step folder) on the given
  videos of normal activity, or on the training videos its config held out
  (``calibration.videos``), and saves it beside the checkpoint; returns the file. Says
  what was fitted and how it held on frames the fit did not see (the task's
  ``calibration_summary``, ``warning:`` lines included)."""
  directory, step, _ = state_lib.parse_checkpoint_path(checkpoint)
  videos = [os.fspath(v) for v in videos]
  for video in videos:
    sources.check_source(pathlib.Path(video))
  mesh = sharding.make_mesh(jax.devices()[:1] if videos else None)
  config, state = state_lib.restore(directory, step, mesh)
  task = tasks.for_config(config)
  fit = tasks.hook(task, "calibrate")
  if fit is None:
    raise ValueError(
      f"nothing to calibrate for {checkpoint}: model {config.model.name!r} has no deployment score to fit "
      f"(a classifier's probability is its score)"
    )
  if false_alarm_rate is not None:
    config.calibration.false_alarm_rate = false_alarm_rate
  if not videos:
    task.prepare(config)
  frames = {video: sources.read_video(pathlib.Path(video)) for video in videos}
  calibration = fit(config, state, mesh, frames or None)
  if calibration is None:
    raise ValueError(
      f"nothing to calibrate for {checkpoint}: give --videos of normal activity, or train with calibration.videos set"
    )
  path = checkpointing.write_calibration(directory, int(state.step), calibration)
  summary = tasks.hook(task, "calibration_summary")
  for line in summary(calibration) if summary is not None else ():
    print(line, flush=True)
  return path
