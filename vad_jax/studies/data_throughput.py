"""Input pipeline benchmark: frames per second delivered by the training pipeline.

Measures the host side only (read, decode, resize, channel conversion, scaling to
[-1, 1], batching, worker hand-over), not the transfer to devices. One "frame" is one
frame of a delivered clip, so a batch counts ``batch_size * sequence_length`` frames.
Besides wall-clock frames/s it reports the CPU time the process and its workers used,
so that frames per core-second can be read off on a shared or busy machine.

  python -m vad_jax.studies.data_throughput                     # generated JPEG dataset
  python -m vad_jax.studies.data_throughput --source_size=360,640 --workers=0,1,2
  python -m vad_jax.studies.data_throughput --name=ucsd_ped/ped2 --data_dir=~/tensorflow_datasets

Without ``--name`` a small dataset is prepared in a temporary directory and deleted
afterwards: ``--generate=jpeg`` (default) writes random-textured RGB JPEG frames (smooth
texture plus sensor-like noise, quality 90) with a minimal TFDS builder;
``--generate=synthetic`` builds the project's ``synthetic_surveillance`` dataset
(grayscale PNG walkway scenes) at ``--source_size``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time

os.environ.setdefault("TFDS_DISABLE_TF", "1")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402

from vad_jax import cli  # noqa: E402
from vad_jax.data import host_pipelines, input_pipeline, sources  # noqa: E402
from vad_jax.tfds_builders.common import frame_features  # noqa: E402
from vad_jax.tfds_builders.synthetic_surveillance import synthetic_surveillance_dataset_builder as ssb  # noqa: E402


def define_flags() -> None:
  flags.DEFINE_string("name", None, "Prepared TFDS dataset; default: generate one.")
  flags.DEFINE_string("builder_config", None, "Builder config of --name.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir of --name.")
  flags.DEFINE_string("split", "train", "Split to read.")
  flags.DEFINE_list("image_size", ["256", "256"], "Output height,width.")
  flags.DEFINE_integer("channels", 3, "Output channels (1 or 3).")
  flags.DEFINE_list("source_size", ["256", "256"], "Generated frames' height,width.")
  flags.DEFINE_integer("source_frames", 600, "Generated frames (4 videos).")
  flags.DEFINE_enum("generate", "jpeg", ["jpeg", "synthetic"], "Dataset to generate when --name is not given.")
  flags.DEFINE_list("workers", ["1", "2"], "Worker process counts to measure.")
  flags.DEFINE_integer("threads", 2, "Reader threads per process.")
  flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
  flags.DEFINE_integer("sequence_length", 5, "Frames per clip.")
  flags.DEFINE_integer("batches", 40, "Timed batches per setting.")
  flags.DEFINE_integer("warmup", 4, "Untimed batches (worker start-up, buffers).")


def _textured_frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """A smooth random texture with fine noise: compresses like a real camera frame."""
  coarse = rng.integers(0, 256, size=(max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
  smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
  noise = rng.normal(0, 6, size=(h, w, 3))
  return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def prepare_generated_dataset(data_dir: str, size: tuple[int, int], num_frames: int) -> str:
  """Writes a 4-video ``train`` split of JPEG frames; returns the dataset name."""
  lengths = [num_frames // 4] * 3 + [num_frames - 3 * (num_frames // 4)]

  class InputPipelineBenchmarkFrames(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=frame_features(),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
      )

    def _split_generators(self, dl_manager):
      starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
      self.info.metadata["videos"] = {
        "train": [
          {"name": f"{v:02d}", "start": int(s), "length": n, "label": 0}
          for v, (s, n) in enumerate(zip(starts, lengths))
        ]
      }
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      rng = np.random.default_rng(0)
      key = 0
      for v, n in enumerate(lengths):
        for f in range(n):
          buf = io.BytesIO()
          Image.fromarray(_textured_frame(rng, *size)).save(buf, format="JPEG", quality=90)
          yield key, {"video": f"{v:02d}", "video_index": v, "frame_index": f, "frame": buf.getvalue(), "label": 0}
          key += 1

  InputPipelineBenchmarkFrames(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return "input_pipeline_benchmark_frames"


def _process_tree_cpu_seconds() -> float | None:
  """User + system CPU seconds of this process and its live descendants (Linux only)."""
  try:
    tick = os.sysconf("SC_CLK_TCK")
  except (ValueError, OSError):
    return None
  total, stack = 0, [os.getpid()]
  while stack:
    pid = stack.pop()
    try:
      with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
      for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
          stack.extend(int(c) for c in f.read().split())
    except (OSError, ValueError, IndexError):
      if pid == os.getpid():
        return None
  return total / tick


def prepare_synthetic_dataset(data_dir: str, size: tuple[int, int], num_frames: int) -> tuple[str, str]:
  """Builds a 4-video ``synthetic_surveillance`` train split; returns (name, config)."""
  config = ssb.SyntheticConfig(
    name="benchmark",
    height=size[0],
    width=size[1],
    num_frames=num_frames // 4,
    train_videos=4,
    test_videos=1,
    description="input pipeline benchmark",
  )
  ssb.Builder(config=config, data_dir=data_dir).download_and_prepare()
  return "synthetic_surveillance", "benchmark"


def measure(split: sources.VideoSplit, num_workers: int) -> tuple[float, float | None, float]:
  """Returns (frames/s, CPU seconds per second, seconds to the first batch)."""
  ds = host_pipelines.train_dataset(
    split,
    sequence_length=flags.FLAGS.sequence_length,
    global_batch_size=flags.FLAGS.batch_size,
    frames=input_pipeline.FrameSettings(
      image_size=tuple(int(s) for s in flags.FLAGS.image_size), channels=flags.FLAGS.channels
    ),
    process_index=0,
    process_count=1,
    reader=host_pipelines.ReaderSettings(num_workers=num_workers, num_threads=flags.FLAGS.threads, prefetch_batches=2),
  )
  start = time.perf_counter()
  it = iter(ds)
  batch = next(it)
  first = time.perf_counter() - start
  for _ in range(flags.FLAGS.warmup - 1):
    batch = next(it)
  cpu_start, start = _process_tree_cpu_seconds(), time.perf_counter()
  for _ in range(flags.FLAGS.batches):
    batch = next(it)
  elapsed = time.perf_counter() - start
  cpu_end = _process_tree_cpu_seconds()
  assert batch["frames"].dtype == np.float32
  del batch
  if hasattr(it, "close"):
    it.close()
  frames = flags.FLAGS.batches * flags.FLAGS.batch_size * flags.FLAGS.sequence_length
  busy = None if cpu_start is None or cpu_end is None else (cpu_end - cpu_start) / elapsed
  return frames / elapsed, busy, first


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    if flags.FLAGS.name:
      name, data_dir, config = flags.FLAGS.name, flags.FLAGS.data_dir, flags.FLAGS.builder_config
    else:
      size = tuple(int(s) for s in flags.FLAGS.source_size)
      print(f"Generating {flags.FLAGS.source_frames} {flags.FLAGS.generate} frames of {size[0]}x{size[1]} ...")
      data_dir = tmp
      if flags.FLAGS.generate == "jpeg":
        name, config = prepare_generated_dataset(tmp, size, flags.FLAGS.source_frames), None
      else:
        name, config = prepare_synthetic_dataset(tmp, size, flags.FLAGS.source_frames)
    split = sources.open_split(name, flags.FLAGS.split, builder_config=config, data_dir=data_dir)
    sample = split.source[0]["frame"]
    with Image.open(io.BytesIO(sample)) as img:
      source_desc = f"{img.format} {img.height}x{img.width} {img.mode}"
    print(
      f"dataset {name} ({flags.FLAGS.split}, {len(split.source)} frames, {source_desc}) -> "
      f"{flags.FLAGS.image_size[0]}x{flags.FLAGS.image_size[1]}x{flags.FLAGS.channels}; batch "
      f"{flags.FLAGS.batch_size} x {flags.FLAGS.sequence_length} frames; {flags.FLAGS.threads} reader threads; "
      f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
      "frames/s: wall clock; cores busy: CPU seconds of this process and its workers "
      "per second; frames/CPU-s: frames per core-second actually used."
    )
    print(f"{'workers':>8} {'frames/s':>10} {'cores busy':>11} {'frames/CPU-s':>13} {'first batch s':>14}")
    for workers in (int(w) for w in flags.FLAGS.workers):
      rate, busy, first = measure(split, workers)
      busy_text = "n/a" if busy is None else f"{busy:.2f}"
      per_core = "n/a" if not busy else f"{rate / busy:.0f}"
      print(f"{workers:>8} {rate:>10.0f} {busy_text:>11} {per_core:>13} {first:>14.2f}")


COMMAND = cli.Command("data_throughput", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
