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


def annotate(frame: np.ndarray, index: int, fps: float, score: float | None, alarmed: bool) -> np.ndarray:
  """The frame with its number, time, score (``n/a`` before the first scored frame),
  a score bar and a red border while alarmed."""
  image = Image.fromarray(frame).convert("RGB")
  draw = ImageDraw.Draw(image)
  w, h = image.size
  bar = max(4, h // 30)
  level = 0.0 if score is None else float(np.clip(score, 0, 1))
  draw.rectangle([0, h - bar, int(w * level), h], fill=(230, 40, 40) if alarmed else (40, 160, 230))
  if alarmed:
    draw.rectangle([0, 0, w - 1, h - 1], outline=(230, 40, 40), width=max(2, w // 100))
  seconds = index / fps
  text = f"#{index}  {int(seconds // 60):02d}:{seconds % 60:06.3f}  " + ("n/a" if score is None else f"{score:.3f}")
  draw.text((4, 4), text, fill=(255, 255, 0))
  return np.asarray(image)


def write_output(output: pathlib.Path, source: str, frames: np.ndarray, levels: np.ndarray, alarms: np.ndarray) -> None:
  """An annotated video at the source's frame rate, written frame by frame as the
  source is read a second time (memory does not grow with the video), or an image
  strip of a few frames (the highest-scored one among them)."""
  level_of = dict(zip(frames.tolist(), levels.tolist()))
  alarm_of = dict(zip(frames.tolist(), alarms.tolist()))
  fps = video_sources.frame_rate(source)
  if output.suffix.lower() in VIDEO_OUTPUTS:
    with video_sources.VideoWriter(output, fps) as writer:
      for i, f in enumerate(video_sources.read_video(source)):
        writer.write(annotate(detection.to_rgb(f), i, fps, level_of.get(i), alarm_of.get(i, False)))
    return
  picks = set(np.linspace(0, len(frames) - 1, num=min(8, len(frames))).astype(int).tolist())
  picks |= {int(np.argmax(levels))}
  wanted = {int(frames[i]) for i in picks}
  tiles = [
    annotate(detection.to_rgb(f), i, fps, level_of[i], alarm_of[i])
    for i, f in enumerate(video_sources.read_video(source))
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
  flags.DEFINE_string("output_dir", None, "For a folder of videos: one result file per video and summary.csv here.")
  flags.DEFINE_string("output", None, "Write an annotated video (.mp4/.avi) or image strip (.png/.jpg).")


def _print_result(result: detection.Detection, min_frames: int) -> list[tuple[int, int]]:
  print("frame,score,alarm")
  for i, s, a in zip(result.frames, result.scores, result.alarm):
    print(f"{i},{s:.4f},{int(a)}")
  intervals = detection.alarm_intervals(result.frames, result.alarm, min_frames)
  print(
    f"alarm intervals ({result.rule}, >= {min_frames} frames): "
    + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"),
    file=sys.stderr,
  )
  return intervals


def detect_folder(detector: Detector, folder: pathlib.Path, output_dir: pathlib.Path | None, f) -> None:
  """Each video of a folder: a result file per video and a summary (``output_dir``),
  and one summary line per video on the terminal."""
  rows = []
  for video in video_sources.video_files(folder):
    try:
      result = detector.score(video, batch_size=f.batch, threshold=f.threshold, normalisation=f.normalisation)
    except (ValueError, video_lib.VideoDecodeError) as error:
      print(f"{video.name}: error: {error}", file=sys.stderr)
      rows.append((video.name, 0, "error", str(error)))
      continue
    intervals = detection.alarm_intervals(result.frames, result.alarm, f.min_frames)
    if output_dir is not None:
      with open(output_dir / f"{video.stem}.csv", "w", encoding="utf-8") as out:
        out.write("frame,score,alarm\n")
        out.writelines(f"{i},{s:.6g},{int(a)}\n" for i, s, a in zip(result.frames, result.scores, result.alarm))
    spans = " ".join(f"{a}-{b}" for a, b in intervals)
    rows.append((video.name, int(result.frames.size), len(intervals), spans))
    print(f"{video.name}: {result.frames.size} frames scored, {len(intervals)} alarm intervals {spans}".rstrip())
  if output_dir is not None:
    with open(output_dir / "summary.csv", "w", encoding="utf-8") as out:
      out.write("video,frames_scored,alarm_intervals,intervals\n")
      out.writelines(f"{name},{n},{k},{spans}\n" for name, n, k, spans in rows)
    print(f"wrote {output_dir}", file=sys.stderr)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m vad_jax.detect VIDEO|FOLDER|URL --checkpoint PATH")
  metric_writers.quiet_library_logs()
  f = flags.FLAGS
  source = argv[1]
  try:
    # Everything about the input and the outputs is checked before the model is loaded.
    video_sources.check_source(source)
    batch_of_videos = not video_sources.is_stream(source) and pathlib.Path(source).is_dir()
    batch_of_videos = batch_of_videos and bool(video_sources.video_files(pathlib.Path(source)))
    if f.output:
      if video_sources.is_stream(source) or batch_of_videos:
        raise ValueError("--output needs a single video file or frame folder (it reads the source twice)")
      check_output(pathlib.Path(f.output))
    output_dir = pathlib.Path(f.output_dir) if f.output_dir else None
    if output_dir is not None:
      output_dir.mkdir(parents=True, exist_ok=True)
    detector = Detector.load(f.checkpoint)
    if batch_of_videos:
      detect_folder(detector, pathlib.Path(source), output_dir, f)
      return
    result = detector.score(source, batch_size=f.batch, threshold=f.threshold, normalisation=f.normalisation)
  except (checkpointing.CheckpointError, FileNotFoundError, ValueError, video_lib.VideoDecodeError) as error:
    raise SystemExit(f"error: {error}") from None
  _print_result(result, f.min_frames)
  if f.output:
    write_output(pathlib.Path(f.output), source, result.frames, result.level, result.alarm)
    print(f"wrote {f.output}", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
