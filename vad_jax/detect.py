"""Run a trained model over a video and report anomalies (a command line over
``vad_jax.detector.Detector``).

  python -m vad_jax.detect VIDEO --checkpoint RUN[/checkpoints/300] [--threshold T]
      [--normalisation calibrated|video|causal] [--output annotated.mp4 | strip.png]

``VIDEO`` is a video file (anything PyAV decodes: mp4, avi, ...), a folder of frames
(jpg/png/tif/bmp, sorted by name), a folder of videos (``--output_dir``: one CSV each and
a summary), or a URL or device PyAV opens (``rtsp://``, ``udp://``, ``/dev/video0``).
Frames are decoded once and scored in batches as they are read, results printed as they
come (Ctrl-C ends a live stream). The prediction network scores each frame with ``T - 1``
predecessors:

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

Prints one line per scored frame, each alarm interval (at least ``--min_frames``
consecutive alarmed frames) as it starts and ends, and optionally writes an annotated
video at the source's frame rate (the prediction error as a heat map over the frame,
frame number, time, score, score bar, red border while alarmed) or an image strip. The
input and ``--output`` are checked before the model is loaded.
"""

import contextlib
import pathlib
import sys

from absl import app, flags

from vad_jax import annotation, checkpointing, detection, metric_writers, video_sources
from vad_jax.detector import Detector
from vad_jax.tfds_builders import video as video_lib

VIDEO_OUTPUTS, IMAGE_OUTPUTS = annotation.VIDEO_OUTPUTS, annotation.IMAGE_OUTPUTS


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


def run_stream(detector: Detector, source: str, output: pathlib.Path | None, f) -> list[tuple[int, int]]:
  """Scores ``source`` frame by frame as it is read (decoded once), printing each scored
  frame and each alarm as it starts and ends, and drawing the annotated video or strip
  as the frames go by (``annotation.AnnotatedOutput``). Ctrl-C ends a live stream
  cleanly."""
  fps = video_sources.frame_rate(source)
  results = detector.stream(
    source,
    batch_size=f.batch,
    threshold=f.threshold,
    normalisation=f.normalisation,
    min_frames=f.min_frames,
    keep_frames=output is not None,
    error_maps=output is not None,
  )
  intervals, header = [], False
  with contextlib.ExitStack() as stack:
    drawn = None
    if output is not None:
      drawn = stack.enter_context(annotation.AnnotatedOutput(output, fps, detector.heat_scale()))
    try:
      for r in results:
        if drawn is not None:
          drawn.add(r)
        if r.score is not None:
          if not header:
            print("frame,score,alarm")
            header = True
          print(f"{r.index},{r.score:.4f},{int(r.alarm)}", flush=True)
        if r.event is not None:
          if r.event.last is None:
            print(f"alarm from frame {r.event.first} ({r.event.first / fps:.2f} s)", file=sys.stderr)
          else:
            intervals.append((r.event.first, r.event.last))
            print(f"alarm ended: frames {r.event.first}-{r.event.last}", file=sys.stderr)
    except KeyboardInterrupt:
      print("stopped", file=sys.stderr)  # what was drawn so far is kept
  print(
    f"alarm intervals (>= {f.min_frames} frames): " + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"),
    file=sys.stderr,
  )
  if output is not None:
    print(f"wrote {output}", file=sys.stderr)
  return intervals


def write_output(
  output: pathlib.Path, detector: Detector, source: str, result: detection.Detection, batch_size: int
) -> None:
  """The annotated video or strip of a whole-video (``video``-normalised) result: the
  source is read a second time for the frames and the prediction errors, and drawn with
  the result's scores (memory does not grow with the video beyond the scores)."""
  level_of = dict(zip(result.frames.tolist(), result.level.tolist()))
  alarm_of = dict(zip(result.frames.tolist(), result.alarm.tolist()))
  frames = detector.stream(source, batch_size=batch_size, normalisation="causal", keep_frames=True, error_maps=True)
  with annotation.AnnotatedOutput(output, video_sources.frame_rate(source), detector.heat_scale()) as drawn:
    for r in frames:
      drawn.add(r, level=level_of.get(r.index), alarm=alarm_of.get(r.index, False))


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
    output = pathlib.Path(f.output) if f.output else None
    if output is not None:
      if batch_of_videos:
        raise ValueError("--output needs a single source; for a folder of videos use --output_dir")
      check_output(output)
    if f.normalisation == "video" and video_sources.is_stream(source):
      raise ValueError(f"{source}: --normalisation=video needs the whole video; a stream takes calibrated or causal")
    output_dir = pathlib.Path(f.output_dir) if f.output_dir else None
    if output_dir is not None:
      output_dir.mkdir(parents=True, exist_ok=True)
    detector = Detector.load(f.checkpoint)
    if batch_of_videos:
      detect_folder(detector, pathlib.Path(source), output_dir, f)
      return
    if f.normalisation != "video":
      run_stream(detector, source, output, f)
      return
    result = detector.score(source, batch_size=f.batch, threshold=f.threshold, normalisation=f.normalisation)
    _print_result(result, f.min_frames)
    if output is not None:
      write_output(output, detector, source, result, f.batch)
      print(f"wrote {output}", file=sys.stderr)
  except (checkpointing.CheckpointError, FileNotFoundError, ValueError, video_lib.VideoDecodeError) as error:
    raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
  define_flags()
  app.run(main)
