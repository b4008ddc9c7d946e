"""Run a trained model over a video and report anomalies.

  python -m vad_jax.detect VIDEO --checkpoint RUN/checkpoints/300 [--threshold 0.6]
      [--streaming] [--output annotated.mp4 | strip.png]

``VIDEO`` is a video file (anything PyAV decodes: mp4, avi, ...) or a folder of frames
(jpg/png/tif/bmp, sorted by name). Frames are decoded and scored in batches as they are
read, so long videos never sit in memory. Each frame with ``T - 1`` predecessors gets the
fused score of Eq. (16):

* offline (default): min-max normalisation over the whole video, as in evaluation;
* ``--streaming``: causal normalisation by the running minimum and maximum of what was
  seen so far, usable on a live stream (the first frames are less reliable).

Prints one line per scored frame and the alarm intervals (score above ``--threshold``
for at least ``--min_frames`` consecutive frames), and optionally writes an annotated
video (score bar, red border while alarmed) or an image strip.

Checkpoints of the supervised classifiers (HybridModel-1, ConvLSTM, EfficientNet+HOG)
work too: the video is cut into consecutive windows of ``data.clip_frames`` frames (the
last one padded by repeating its final frame), each frame's score is the model's anomaly
probability (a ConvLSTM frame takes its window's probability), object boxes come from
the configured box source, and the alarm is the moving average of the last
``alarm.window`` probabilities above ``--threshold`` (default ``alarm.threshold``), as
in the authors' code. This is causal up to one window, so ``--streaming`` changes
nothing for them.
"""

import collections
import pathlib
import sys
from typing import Iterator

import jax
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from vad_jax import checkpointing, classification, evaluate, metrics, scoring
from vad_jax import sharding as sharding_lib
from vad_jax.data import preprocessing
from vad_jax.models.build import build_model, is_classifier

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def frame_files(folder: pathlib.Path) -> list[pathlib.Path]:
  files = sorted(p for p in folder.iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))
  if not files:
    raise FileNotFoundError(f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
  return files


def read_video(path: pathlib.Path) -> Iterator[np.ndarray]:
  """uint8 ``[H, W, 3]`` frames of a video file or frame folder, in order."""
  if path.is_dir():
    for f in frame_files(path):
      try:
        with Image.open(f) as image:
          yield np.asarray(image.convert("RGB"))
      except OSError as error:
        raise ValueError(f"cannot decode frame image {f}: {error}") from error
    return
  if not path.exists():
    raise FileNotFoundError(f"no video file or frame folder at {path}")
  from tfds_builders import video  # noqa: PLC0415  (PyAV import only when needed)

  yield from video.iter_frames(path, check_count=False)


def prepare_frame(frame: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
  """Channel conversion then bilinear resize, as the input pipeline does for records."""
  image = Image.fromarray(frame).convert("L" if channels == 1 else "RGB")
  if image.size != (size[1], size[0]):
    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
  array = np.asarray(image, dtype=np.uint8)
  return array[:, :, None] if array.ndim == 2 else array


def clip_batches(frames: Iterator[np.ndarray], config, batch_size: int):
  """Yields ``(clips [B, T, h, w, c] in [-1, 1], target frame indices [B], count)``;
  the last batch is padded to ``batch_size`` (``count`` real clips) so one compiled
  program serves the whole video."""
  t = config.model.sequence_length
  size, channels = tuple(config.data.image_size), config.data.channels
  window = collections.deque(maxlen=t)
  clips, targets = [], []
  for index, frame in enumerate(frames):
    window.append(prepare_frame(frame, size, channels))
    if len(window) == t:
      clips.append(np.stack(window))
      targets.append(index)
    if len(clips) == batch_size:
      yield preprocessing.to_signed_unit(np.stack(clips)), np.array(targets), batch_size
      clips, targets = [], []
  if clips:
    count = len(clips)
    clips += [clips[-1]] * (batch_size - count)
    yield preprocessing.to_signed_unit(np.stack(clips)), np.array(targets), count


def causal_minmax(values: np.ndarray) -> np.ndarray:
  """Normalisation by the running min/max of the values so far (0 while constant)."""
  lo, hi = np.minimum.accumulate(values), np.maximum.accumulate(values)
  span = hi - lo
  return np.where(span > 0, (values - lo) / np.where(span > 0, span, 1.0), 0.0)


def fused_scores(stats: dict[str, np.ndarray], lam: float, streaming: bool) -> np.ndarray:
  if not streaming:
    return scoring.fused_score(stats["psnr"], stats["spatial_distance"], stats["temporal_distance"], lam)
  return (lam * (1.0 - causal_minmax(stats["psnr"])) + 0.5 * (1.0 - lam) * causal_minmax(stats["spatial_distance"])
          + 0.5 * (1.0 - lam) * causal_minmax(stats["temporal_distance"]))


def alarm_intervals(frames: np.ndarray, alarm: np.ndarray, min_frames: int = 1) -> list[tuple[int, int]]:
  """Inclusive ``(first, last)`` frame ranges where ``alarm`` holds for at least
  ``min_frames`` consecutive scored frames."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], alarm.astype(int), [0]])))
  return [(int(frames[a]), int(frames[b - 1])) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_frames]


def detect(video_path: pathlib.Path, config, state, batch_size: int = 8, streaming: bool = False):
  """Scores a video: returns ``(frame indices, scores, raw statistics)``."""
  stats_fn = evaluate.model_statistics(config, state)
  parts, targets = [], []
  for clips, index, count in clip_batches(read_video(video_path), config, batch_size):
    parts.append((stats_fn(clips), count))  # stays on the device until the end
    targets.append(index[:count])
  if not parts:
    raise ValueError(f"{video_path} has fewer than {config.model.sequence_length} frames: nothing to score")
  host = jax.device_get([p for p, _ in parts])
  stats = {k: np.concatenate([h[k][:count] for h, (_, count) in zip(host, parts)]).astype(np.float64)
           for k in evaluate.STAT_KEYS}
  return np.concatenate(targets), fused_scores(stats, config.score.lam, streaming), stats


def window_batches(frames: Iterator[np.ndarray], config, batch_size: int):
  """Consecutive windows of ``clip_frames`` frames for the classifiers.

  Yields ``(clips uint8 [B, N, h, w, c], first frame [B], real frames [B], count)``; the
  last window is padded by repeating its final frame, the last batch by repeating its
  last window (``count`` real windows).
  """
  n = config.data.clip_frames
  size, channels = tuple(config.data.image_size), config.data.channels
  window, clips, firsts, lengths = [], [], [], []

  def flush():
    count = len(clips)
    pad = batch_size - count
    return (np.stack(clips + clips[-1:] * pad), np.array(firsts + firsts[-1:] * pad),
            np.array(lengths + [0] * pad), count)

  for index, frame in enumerate(frames):
    window.append(prepare_frame(frame, size, channels))
    if len(window) == n:
      clips.append(np.stack(window))
      firsts.append(index - n + 1)
      lengths.append(n)
      window = []
    if len(clips) == batch_size:
      yield flush()
      clips, firsts, lengths = [], [], []
  if window:
    real = len(window)
    clips.append(np.stack(window + window[-1:] * (n - real)))
    firsts.append(index - real + 1)
    lengths.append(real)
  if clips:
    yield flush()


def detect_classifier(video_path: pathlib.Path, config, state, batch_size: int = 8):
  """Per-frame anomaly probabilities of a classifier: ``(frame indices, probabilities)``."""
  step = jax.jit(classification.bind_steps(build_model(config), config)[1])
  add_boxes = None
  if classification.needs_boxes(config):
    add_boxes = classification.AddBoxes(classification.make_box_source(config), config.boxes.max_boxes,
                                        (video_path.stem,))
  n = config.data.clip_frames
  parts = []
  for clips, firsts, lengths, count in window_batches(read_video(video_path), config, batch_size):
    batch = {"frames": clips, "valid": lengths > 0, "video_index": np.zeros(len(clips), np.int32),
             "frame_index": firsts[:, None] + np.arange(n)}
    if add_boxes is not None:
      batch = add_boxes(batch)  # on the uint8 frames, as in the input pipeline
    batch["frames"] = preprocessing.to_unit(clips)
    parts.append((step(state, batch)["frame_probs"], firsts[:count], lengths[:count]))  # on the device
  if not parts:
    raise ValueError(f"{video_path} has no frame to score")
  host = jax.device_get([p for p, _, _ in parts])
  frames, probs = [], []
  for probs_batch, (_, firsts, lengths) in zip(host, parts):
    for row, (first, length) in enumerate(zip(firsts, lengths)):
      frames.append(first + np.arange(length))
      probs.append(np.asarray(probs_batch[row, :length], np.float64))
  return np.concatenate(frames), np.concatenate(probs)


def annotate(frame: np.ndarray, score: float, alarmed: bool) -> np.ndarray:
  image = Image.fromarray(frame).convert("RGB")
  draw = ImageDraw.Draw(image)
  w, h = image.size
  bar = max(4, h // 30)
  draw.rectangle([0, h - bar, int(w * float(np.clip(score, 0, 1))), h], fill=(230, 40, 40) if alarmed else (40, 160, 230))
  if alarmed:
    draw.rectangle([0, 0, w - 1, h - 1], outline=(230, 40, 40), width=max(2, w // 100))
  draw.text((4, 4), f"{score:.2f}", fill=(255, 255, 0))
  return np.asarray(image)


def write_output(output: pathlib.Path, video_path: pathlib.Path, frames: np.ndarray, scores: np.ndarray,
                 threshold: float) -> None:
  score_of = dict(zip(frames.tolist(), scores.tolist()))
  if output.suffix.lower() in (".mp4", ".avi"):
    from tfds_builders import video  # noqa: PLC0415

    annotated = [annotate(f, score_of.get(i, 0.0), score_of.get(i, 0.0) > threshold)
                 for i, f in enumerate(read_video(video_path))]
    even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in annotated]
    video.write_video(output, np.stack(even))
    return
  picks = set(np.linspace(0, len(frames) - 1, num=min(8, len(frames))).astype(int).tolist())
  picks |= {int(np.argmax(scores))}
  wanted = {int(frames[i]) for i in picks}
  tiles = [annotate(f, score_of[i], score_of[i] > threshold) for i, f in enumerate(read_video(video_path)) if i in wanted]
  h = min(t.shape[0] for t in tiles)
  strip = np.concatenate([t[:h] for t in tiles], axis=1)
  Image.fromarray(strip).save(output)


def define_flags() -> None:
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory, or a training workdir (latest step).",
                      required=True)
  flags.DEFINE_float("threshold", None, "Alarm threshold on the fused score (default 0.6) or, for the "
                     "classifiers, on the moving average of probabilities (default: the config's alarm.threshold).")
  flags.DEFINE_integer("min_frames", 5, "Shortest alarm interval reported, in frames.")
  flags.DEFINE_integer("batch", 8, "Clips scored per device call.")
  flags.DEFINE_bool("streaming", False, "Causal (running) normalisation instead of whole-video min-max.")
  flags.DEFINE_string("output", None, "Write an annotated video (.mp4/.avi) or image strip (.png/.jpg).")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m vad_jax.detect VIDEO --checkpoint PATH")
  f = flags.FLAGS
  path = pathlib.Path(f.checkpoint).absolute()
  checkpoint_dir, step = (path.parent, int(path.name)) if path.name.isdigit() else (path / "checkpoints", None)
  try:
    config, state = evaluate.restore_for_evaluation(checkpoint_dir, step, sharding_lib.make_mesh(jax.devices()[:1]))
    if is_classifier(config):
      threshold = config.alarm.threshold if f.threshold is None else f.threshold
      frames, scores = detect_classifier(pathlib.Path(argv[1]), config, state, f.batch)
      level, alarm = metrics.moving_average_alarm(scores, config.alarm.window, threshold)
      what = f"moving average of {config.alarm.window} probabilities > {threshold}"
    else:
      threshold = 0.6 if f.threshold is None else f.threshold
      frames, scores, _ = detect(pathlib.Path(argv[1]), config, state, f.batch, f.streaming)
      level, alarm = scores, scores > threshold
      what = f"score > {threshold}"
  except (checkpointing.CheckpointError, FileNotFoundError, ValueError) as error:
    raise SystemExit(f"error: {error}") from None
  print("frame,score,alarm")
  for i, s, a in zip(frames, scores, alarm):
    print(f"{i},{s:.4f},{int(a)}")
  intervals = alarm_intervals(frames, alarm, f.min_frames)
  print(f"alarm intervals ({what}, >= {f.min_frames} frames): "
        + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"), file=sys.stderr)
  if f.output:
    write_output(pathlib.Path(f.output), pathlib.Path(argv[1]), frames, level, threshold)
    print(f"wrote {f.output}", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
