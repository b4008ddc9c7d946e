"""Run a trained model over a video and report anomalies (a command line over
``vad_jax.detector.Detector``).

  python -m vad_jax.detect VIDEO --checkpoint RUN[/checkpoints/300] [--threshold T]
      [--normalisation calibrated|video|causal] [--output annotated.mp4 | strip.png]

``VIDEO`` is a video file (anything PyAV decodes: mp4, avi, ...) or a folder of frames
(jpg/png/tif/bmp, sorted by name). Frames are decoded and scored in batches as they are
read. The prediction network scores each frame with ``T - 1`` predecessors:

* ``calibrated`` (the default when the checkpoint has a calibration, see
  ``python -m vad_jax.calibrate``): the deployment score, comparable between videos,
  alarm at the calibrated false-alarm rate;
* ``video``: Eq. (16) with min-max over the whole video, as in evaluation;
* ``causal``: running min/max of what was seen so far.

Without a calibration the prediction network asks for one of the last two explicitly.
Classifier checkpoints (HybridModel-1, ConvLSTM, EfficientNet+HOG) give each frame the
model's anomaly probability over consecutive windows of ``data.clip_frames`` frames and
alarm on the moving average of the last ``alarm.window`` probabilities, as in the
authors' code.

Prints one line per scored frame and the alarm intervals (at least ``--min_frames``
consecutive alarmed frames), and optionally writes an annotated video (score bar, red
border while alarmed) or an image strip. The input and ``--output`` are checked before
the model is loaded.
"""

import pathlib
import sys

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from vad_jax import checkpointing, detection, metric_writers, video_sources
from vad_jax.detector import Detector
from vad_jax.tfds_builders import video as video_lib

VIDEO_OUTPUTS = (".mp4", ".avi")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg")


def check_output(output: pathlib.Path) -> None:
  """Raises before any work for an output format ``write_output`` cannot write."""
  if output.suffix.lower() not in VIDEO_OUTPUTS + IMAGE_OUTPUTS:
    raise ValueError(
      f"--output {output}: unsupported format {output.suffix or '(none)'!r}; use "
      f"{'/'.join(VIDEO_OUTPUTS)} for an annotated video or {'/'.join(IMAGE_OUTPUTS)} for an image strip"
    )
  if not output.parent.is_dir():
    raise FileNotFoundError(f"--output {output}: the folder {output.parent} does not exist")


def detect(
  video_path: pathlib.Path,
  config,
  state,
  batch_size: int = 8,
  normalisation: str | None = None,
  threshold: float | None = None,
  calibration: dict | None = None,
) -> detection.Detection:
  """Scores the video file or frame folder at ``video_path`` (``Detector.score``)."""
  return Detector(config, state, calibration=calibration).score(
    video_path, batch_size=batch_size, threshold=threshold, normalisation=normalisation
  )


def annotate(frame: np.ndarray, score: float, alarmed: bool) -> np.ndarray:
  image = Image.fromarray(frame).convert("RGB")
  draw = ImageDraw.Draw(image)
  w, h = image.size
  bar = max(4, h // 30)
  draw.rectangle(
    [0, h - bar, int(w * float(np.clip(score, 0, 1))), h], fill=(230, 40, 40) if alarmed else (40, 160, 230)
  )
  if alarmed:
    draw.rectangle([0, 0, w - 1, h - 1], outline=(230, 40, 40), width=max(2, w // 100))
  draw.text((4, 4), f"{score:.2f}", fill=(255, 255, 0))
  return np.asarray(image)


def write_output(
  output: pathlib.Path, video_path: pathlib.Path, frames: np.ndarray, scores: np.ndarray, threshold: float
) -> None:
  score_of = dict(zip(frames.tolist(), scores.tolist()))
  if output.suffix.lower() in VIDEO_OUTPUTS:
    annotated = [
      annotate(detection.to_rgb(f), score_of.get(i, 0.0), score_of.get(i, 0.0) > threshold)
      for i, f in enumerate(video_sources.read_video(video_path))
    ]
    even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in annotated]
    video_lib.write_video(output, np.stack(even))
    return
  picks = set(np.linspace(0, len(frames) - 1, num=min(8, len(frames))).astype(int).tolist())
  picks |= {int(np.argmax(scores))}
  wanted = {int(frames[i]) for i in picks}
  tiles = [
    annotate(detection.to_rgb(f), score_of[i], score_of[i] > threshold)
    for i, f in enumerate(video_sources.read_video(video_path))
    if i in wanted
  ]
  h = min(t.shape[0] for t in tiles)
  strip = np.concatenate([t[:h] for t in tiles], axis=1)
  Image.fromarray(strip).save(output)


def define_flags() -> None:
  flags.DEFINE_string(
    "checkpoint", None, "A checkpoint step directory, or a training workdir (latest step).", required=True
  )
  flags.DEFINE_float(
    "threshold",
    None,
    "Alarm threshold on the fused score (default 0.6) or, for the "
    "classifiers, on the moving average of probabilities (default: the config's alarm.threshold).",
  )
  flags.DEFINE_integer("min_frames", 5, "Shortest alarm interval reported, in frames.")
  flags.DEFINE_integer("batch", 8, "Clips scored per device call.")
  flags.DEFINE_enum(
    "normalisation",
    None,
    ["calibrated", "video", "causal"],
    "Prediction network: 'calibrated' (default when the checkpoint has a calibration: comparable scores, alarm "
    "at the calibrated false-alarm rate), 'video' (min-max over the whole video, as in evaluation) or 'causal' "
    "(running min/max). Classifiers ignore it.",
  )
  flags.DEFINE_string("output", None, "Write an annotated video (.mp4/.avi) or image strip (.png/.jpg).")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m vad_jax.detect VIDEO --checkpoint PATH")
  metric_writers.quiet_library_logs()
  f = flags.FLAGS
  try:
    video_sources.check_source(pathlib.Path(argv[1]))  # before the minute of restoring and compiling
    if f.output:
      check_output(pathlib.Path(f.output))
    detector = Detector.load(f.checkpoint)
    result = detector.score(argv[1], batch_size=f.batch, threshold=f.threshold, normalisation=f.normalisation)
  except (checkpointing.CheckpointError, FileNotFoundError, ValueError, video_lib.VideoDecodeError) as error:
    raise SystemExit(f"error: {error}") from None
  print("frame,score,alarm")
  for i, s, a in zip(result.frames, result.scores, result.alarm):
    print(f"{i},{s:.4f},{int(a)}")
  intervals = detection.alarm_intervals(result.frames, result.alarm, f.min_frames)
  print(
    f"alarm intervals ({result.rule}, >= {f.min_frames} frames): "
    + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"),
    file=sys.stderr,
  )
  if f.output:
    write_output(pathlib.Path(f.output), pathlib.Path(argv[1]), result.frames, result.level, result.threshold)
    print(f"wrote {f.output}", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
