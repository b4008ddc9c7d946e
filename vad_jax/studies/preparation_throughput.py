"""Dataset preparation benchmark: frames/s with 1, 2, ... worker processes.

Generates a UCF-Crime-shaped manual dir (H.264 ``*_x264.mp4`` videos of textured,
noisy 320x240 frames, the split lists and the temporal annotations), then prepares
``ucf_crime`` from it with ``Builder(num_workers=N)`` for every N of ``--workers``, each
into a fresh data dir, and reports wall-clock frames/s and the CPU seconds of the process
and its workers. Preparation here is decode (PyAV) + JPEG encode (quality 95) + write, the
work of every video builder. The records of every N are compared with those of the first.

  python -m vad_jax.studies.preparation_throughput                       # 8 videos x 300 frames
  python -m vad_jax.studies.preparation_throughput --videos=16 --frames=600 --workers=1,2,4
  python -m vad_jax.studies.preparation_throughput --beam_workers=2      # also Apache Beam's DirectRunner

``--beam_workers=N`` (needs the extra ``vad_jax[beam]``) adds a run on Apache Beam's
DirectRunner with N worker processes. On a shared machine, read frames per CPU-second
beside wall-clock frames/s (CPU seconds count this process and its reaped workers; Beam's
runner workers are counted too).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import resource
import tempfile
import time

os.environ.setdefault("TFDS_DISABLE_TF", "1")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_datasets.core.utils.lazy_imports_utils import apache_beam as beam  # noqa: E402

from vad_jax import cli  # noqa: E402
from vad_jax.tfds_builders import testing, video  # noqa: E402
from vad_jax.tfds_builders.ucf_crime import ucf_crime_dataset_builder as ucf  # noqa: E402


def define_flags() -> None:
  flags.DEFINE_integer("videos", 8, "Training videos to generate (plus 2 test videos).")
  flags.DEFINE_integer("frames", 300, "Frames per generated video.")
  flags.DEFINE_list("size", ["240", "320"], "Generated frames' height,width (UCF-Crime: 240,320).")
  flags.DEFINE_list("workers", ["1", "2"], "Worker process counts to measure.")
  flags.DEFINE_string("manual_dir", None, "Reuse (or write) the generated manual dir here.")
  flags.DEFINE_integer("beam_workers", 0, "Also prepare on Beam's DirectRunner with N workers (0: no).")


def _frames(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
  """A slowly panning smooth texture with sensor-like noise (compresses like a camera)."""
  coarse = rng.integers(0, 256, size=(height // 16 + 1, 2 * width // 16 + 1, 3), dtype=np.uint8)
  texture = np.asarray(Image.fromarray(coarse).resize((2 * width, height), Image.Resampling.BICUBIC), np.float32)
  out = np.empty((count, height, width, 3), np.uint8)
  for t in range(count):
    shift = (2 * t) % width
    out[t] = np.clip(texture[:, shift : shift + width] + rng.normal(0, 6, (height, width, 3)), 0, 255)
  return out


def write_manual_dir(root: pathlib.Path, num_videos: int, num_frames: int, size: tuple[int, int]) -> int:
  """A UCF-Crime-shaped manual dir; returns the number of frames in it."""
  rng = np.random.default_rng(0)
  train = [f"Abuse/Abuse{v + 1:03d}_x264.mp4" for v in range(num_videos)]
  test = ["Arson/Arson011_x264.mp4", "Testing_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4"]
  for relative in train + test:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
      video.write_video(path, _frames(rng, num_frames, *size), fps=30)
  (root / ucf.TRAIN_LIST).write_text("".join(f"{x}\n" for x in train))
  (root / ucf.TEST_LIST).write_text("".join(f"{x}\n" for x in test))
  (root / ucf.ANNOTATION_FILE).write_text(
    f"Arson011_x264.mp4  Arson  {num_frames // 4}  {num_frames // 2}  -1  -1  \n"
    "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \n"
  )
  return num_frames * (num_videos + len(test))


def _prepare_with_beam(data_dir: str, manual: pathlib.Path, workers: int):
  options = beam.options.pipeline_options.PipelineOptions(
    direct_num_workers=workers, direct_running_mode="multi_processing"
  )
  builder = ucf.Builder(data_dir=data_dir, config="default")
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual), beam_options=options, compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return builder


def _cpu_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once reaped
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _fingerprint(builder) -> str:
  digest = hashlib.sha256()
  for split, source in sorted(builder.as_data_source().items()):
    for i in range(len(source)):
      record = source[i]
      digest.update(repr((split, sorted((k, v) for k, v in record.items()))).encode())
  return digest.hexdigest()


def main(argv):
  del argv
  size = tuple(int(s) for s in flags.FLAGS.size)
  with tempfile.TemporaryDirectory(prefix="vad_jax_prepare_benchmark_") as tmp:
    manual = pathlib.Path(flags.FLAGS.manual_dir or os.path.join(tmp, "manual"))
    start = time.perf_counter()
    total = write_manual_dir(manual, flags.FLAGS.videos, flags.FLAGS.frames, size)
    print(
      f"manual dir {manual}: {flags.FLAGS.videos + 2} videos, {total} frames {size[1]}x{size[0]} "
      f"(written in {time.perf_counter() - start:.1f} s)"
    )
    print(f"{'workers':>7} | {'wall s':>7} | {'frames/s':>8} | {'CPU s':>7} | {'frames/CPU-s':>12} | records")
    reference = None
    runs = [(str(w), int(w)) for w in flags.FLAGS.workers]
    if flags.FLAGS.beam_workers:
      runs.append((f"beam {flags.FLAGS.beam_workers}", -flags.FLAGS.beam_workers))
    for label, workers in runs:
      cpu, start = _cpu_seconds(), time.perf_counter()
      data_dir = os.path.join(tmp, f"data_{label.replace(' ', '_')}")
      if workers > 0:
        builder = testing.prepare(ucf.Builder, data_dir, manual, "default", num_workers=workers)
      else:
        builder = _prepare_with_beam(data_dir, manual, -workers)
      wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
      frames = sum(info.num_examples for info in builder.info.splits.values())
      assert frames == total, (frames, total)
      fingerprint = _fingerprint(builder)
      reference = reference or fingerprint
      same = "identical" if fingerprint == reference else "DIFFER"
      print(f"{label:>7} | {wall:>7.1f} | {frames / wall:>8.0f} | {cpu:>7.1f} | {frames / cpu:>12.0f} | {same}")


COMMAND = cli.Command("preparation_throughput", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
