"""Preparing a long video takes no more memory than a short one.

A video is decoded into a temporary file one frame at a time and the split is written
through an append-only file (``common.SplitRecords``, ``common.FrameBuilder``), so peak
memory does not grow with a video's length. Measured as the peak resident set size
(``VmHWM``) of a fresh process preparing ``ucf_crime/default`` from a generated manual dir whose training
video has 500 or 5,000 noisy 160x120 frames (about 12 kB per stored JPEG frame: the
5,000-frame video's records are about 60 MB). Before this, the process held every
encoded frame of a video, and TFDS's writer held the split, and peaked at 2.4 times the
short video's memory (137 MB vs 332 MB).
"""

import pathlib
import subprocess
import sys
import textwrap

import av
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent(
  """
  import os, resource, sys
  os.environ.setdefault("TFDS_DISABLE_TF", "1")
  from vad_jax.tfds_builders import testing
  from vad_jax.tfds_builders.ucf_crime import ucf_crime_dataset_builder as ucf

  builder = testing.prepare(ucf.Builder, sys.argv[2], sys.argv[1], "default")
  assert builder.info.splits["train"].num_examples == int(sys.argv[3])
  # VmHWM: the peak of this process's own memory. (ru_maxrss also counts the parent's
  # pages this process was forked with before exec: the test runner's, with JAX loaded.)
  try:
    with open("/proc/self/status") as f:
      peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
  except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print("MAXRSS_KB", peak)
  """
)


def _write_video(path: pathlib.Path, num_frames: int, seed: int) -> None:
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
  with av.open(str(path), mode="w") as container:
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "18"}
    for t in range(num_frames):
      frame = np.roll(base, 3 * t, axis=1) ^ rng.integers(0, 64, (120, 160, 3), dtype=np.uint8)
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def _manual_dir(root: pathlib.Path, num_frames: int) -> pathlib.Path:
  for folder in ("Abuse", "Arson"):
    (root / folder).mkdir(parents=True)
  _write_video(root / "Abuse/Abuse001_x264.mp4", num_frames, seed=0)
  _write_video(root / "Arson/Arson011_x264.mp4", 10, seed=1)
  (root / "Anomaly_Train.txt").write_text("Abuse/Abuse001_x264.mp4\n")
  (root / "Anomaly_Test.txt").write_text("Arson/Arson011_x264.mp4\n")
  (root / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text("Arson011_x264.mp4  Arson  2  4  -1  -1  \n")
  return root


def _peak_rss_kb(tmp_path: pathlib.Path, num_frames: int) -> int:
  manual = _manual_dir(tmp_path / f"manual_{num_frames}", num_frames)
  result = subprocess.run(
    [sys.executable, "-c", _CHILD, str(manual), str(tmp_path / f"data_{num_frames}"), str(num_frames)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-4000:]
  line = next(x for x in result.stdout.splitlines() if x.startswith("MAXRSS_KB"))
  return int(line.split()[1])


def test_peak_memory_does_not_grow_with_the_video(tmp_path):
  short = _peak_rss_kb(tmp_path, 500)
  long = _peak_rss_kb(tmp_path, 5000)
  print(f"peak RSS: 500 frames {short / 1024:.1f} MiB, 5000 frames {long / 1024:.1f} MiB ({long / short - 1:+.1%})")
  assert long <= 1.10 * short, (short, long)
