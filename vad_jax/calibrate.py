"""Fitting a trained model's deployment score: ``python -m vad_jax.calibrate``.

  python -m vad_jax.calibrate --workdir RUN      # the held-out training videos (calibration.videos)
  python -m vad_jax.calibrate --workdir RUN --videos normal.mp4,normal_frames/ [--false_alarm_rate 0.01]

Fits the calibration (``vad_jax/dual_stream/calibration.py``) on normal frames that
training did not see, either the training videos the config held out
(``calibration.videos``) or the given videos of normal activity, and saves it beside the
checkpoint (``checkpoints/<step>/calibration.json``), where ``detect``, ``evaluate`` and
``vad_jax.detector.Detector`` find it. Training with ``calibration.videos`` set does this
at its end.
"""

import pathlib

import jax
from absl import app, flags

from vad_jax import checkpointing, metric_writers, sharding, tasks, video_sources
from vad_jax import state as state_lib


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir (its newest intact checkpoint), or a step folder.")
  flags.DEFINE_list("videos", [], "Videos or frame folders of normal activity (default: the held-out training videos).")
  flags.DEFINE_float("false_alarm_rate", None, "Target false-alarm rate (default: the config's).")


def calibrate(checkpoint: str | pathlib.Path, videos=(), false_alarm_rate=None) -> pathlib.Path:
  """Fits and saves the calibration of a checkpoint; returns the file written."""
  directory, step, _ = state_lib.parse_checkpoint_path(checkpoint)
  for video in videos:
    video_sources.check_source(pathlib.Path(video))
  mesh = sharding.make_mesh(jax.devices()[:1] if videos else None)
  config, state = state_lib.restore(directory, step, mesh)
  if false_alarm_rate is not None:
    config.calibration.false_alarm_rate = false_alarm_rate
  task = tasks.for_config(config)
  if not videos:
    task.prepare(config)
  frames = {str(v): video_sources.read_video(pathlib.Path(v)) for v in videos}
  calibration = task.calibrate(config, state, mesh, frames or None)
  if calibration is None:
    raise ValueError(
      f"nothing to calibrate for {checkpoint}: give --videos of normal activity, or train with "
      f"calibration.videos set (model {config.model.name!r}; classifiers need no calibration)"
    )
  return checkpointing.write_calibration(directory, int(state.step), calibration)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  metric_writers.quiet_library_logs()
  f = flags.FLAGS
  if not f.workdir:
    raise app.UsageError("--workdir is required")
  try:
    path = calibrate(f.workdir, f.videos, f.false_alarm_rate)
  except (ValueError, FileNotFoundError, checkpointing.CheckpointError) as error:
    raise SystemExit(f"error: {error}") from None
  print(f"wrote {path}", flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
