"""Fit a trained model's deployment score on normal video.

  vad-jax calibrate --workdir RUN      # the training videos the config held out (calibration.videos)
  vad-jax calibrate --workdir RUN --videos normal.mp4,normal_frames/ [--false_alarm_rate 0.01]

The calibration is fitted on normal frames that training did not see, either the
training videos the config held out or the given videos of normal activity, and saved
beside the checkpoint (checkpoints/<step>/calibration.json), where detect, evaluate
and vad_jax.detector.Detector find it. Training with calibration.videos set does this
at its end.

It then prints the alarm threshold, the target false-alarm rate, the frames and videos
fitted on, and a held-out check: fitted again without the last video (one video:
without its last third), the false-alarm rate on what was left out. A "warning:" line
follows when that rate is over 1.5 times the target, or when there are too few frames
to measure the target (fewer than 20 / target). The file saved is the fit on all the
frames. A calibration of an earlier version is refused by detect and evaluate: fit it
again with this command.
"""

from absl import flags

from vad_jax import cli, detector


def define_flags() -> None:
  flags.DEFINE_string(
    "workdir", None, "Training workdir (its newest intact checkpoint), or a step folder.", required=True
  )
  flags.DEFINE_list("videos", [], "Videos or frame folders of normal activity (default: the held-out training videos).")
  flags.DEFINE_float("false_alarm_rate", None, "Target false-alarm rate (default: the config's).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  path = detector.calibrate(f.workdir, f.videos, f.false_alarm_rate)
  print(f"wrote {path}", flush=True)


COMMAND = cli.Command("calibrate", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
