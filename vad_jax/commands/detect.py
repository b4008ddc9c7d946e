"""Run a trained model over a video and report anomalies.

  vad-jax detect VIDEO --checkpoint RUN[/checkpoints/300] [--threshold T]
      [--normalisation calibrated|video|causal] [--output annotated.mp4 | strip.png]

VIDEO is a video file (anything PyAV decodes: mp4, avi, ...), a folder of frames
(jpg/png/tif/bmp, sorted by name), a folder of videos (--output_dir: one CSV each and
a summary), or a URL or device PyAV opens (rtsp://, udp://, /dev/video0). Frames are
decoded once and scored in batches as they are read, results printed as they come
(Ctrl-C ends a live stream). The prediction network scores each frame with its T - 1
predecessors:

* calibrated (the default when the checkpoint has a calibration, see vad-jax
  calibrate): the deployment score, comparable between videos, alarm at the calibrated
  false-alarm rate;
* video: Eq. (16) with min-max over the whole video, as in evaluation;
* causal: running min/max of what was seen so far.

Without a calibration the prediction network asks for one of the last two explicitly.
Classifier checkpoints (HybridModel-1, ConvLSTM, EfficientNet+HOG) give each frame the
model's anomaly probability over consecutive windows of data.clip_frames frames and
alarm on the moving average of the last alarm.window probabilities, as in the authors'
code.

Prints one line per scored frame (frame,score,alarm,boxes: with the calibrated score,
the boxes x0 y0 x1 y1;... of the regions that raised an alarm, in the source's pixels),
each alarm interval (at least --min_frames consecutive alarmed frames) as it starts and
ends, and optionally writes an annotated video at the source's frame rate (the
prediction error as a heat map over the frame, the alarm's boxes, frame number, time,
score, score bar, red border while alarmed) or an image strip. The input and --output
are checked before the model is loaded.
"""

import pathlib
import sys

from absl import flags

from vad_jax import cli, precision
from vad_jax.detector import Detector
from vad_jax.video import report, sources


def define_flags() -> None:
  cli.define_precision_flag()
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


def main(argv) -> None:
  (source,) = argv
  f = flags.FLAGS
  options = report.Options(f.batch, f.threshold, f.normalisation, f.min_frames)
  # Everything about the input and the outputs is checked before the model is loaded.
  sources.check_source(source)
  batch_of_videos = not sources.is_stream(source) and pathlib.Path(source).is_dir()
  batch_of_videos = batch_of_videos and bool(sources.video_files(pathlib.Path(source)))
  output = pathlib.Path(f.output) if f.output else None
  if output is not None:
    if batch_of_videos:
      raise ValueError("--output needs a single source; for a folder of videos use --output_dir")
    report.check_output(output)
  if f.normalisation == "video" and sources.is_stream(source):
    raise ValueError(f"{source}: --normalisation=video needs the whole video; a stream takes calibrated or causal")
  output_dir = pathlib.Path(f.output_dir) if f.output_dir else None
  if output_dir is not None:
    output_dir.mkdir(parents=True, exist_ok=True)
  detector = Detector.load(f.checkpoint, precision=f.precision)
  print(precision.of_config(detector.config).describe(), file=sys.stderr, flush=True)  # stdout: the CSV
  if batch_of_videos:
    report.folder(detector, pathlib.Path(source), output_dir, options)
  elif f.normalisation != "video":
    report.stream(detector, source, output, options)
  else:
    result = detector.score(source, batch_size=f.batch, threshold=f.threshold, normalisation=f.normalisation)
    report.print_detection(result, f.min_frames)
    if output is not None:
      report.write_output(output, detector, source, result, f.batch)
      print(f"wrote {output}", file=sys.stderr)


COMMAND = cli.Command("detect", __doc__, define_flags, main, positional=("VIDEO",))

if __name__ == "__main__":
  cli.run(COMMAND)
