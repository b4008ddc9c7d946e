"""Writes the miniature ShanghaiTech tree (``shanghaitech/``) next to this script.

  shanghaitech/training/videos/<scene>_<NNN>.avi      MPEG-4 AVI written with PyAV
  shanghaitech/testing/frames/<scene>_<NNNN>/NNN.jpg  0-based JPEG frames
  shanghaitech/testing/test_frame_mask/<video>.npy    1-D uint8 {0, 1}, one per frame
  shanghaitech/testing/test_pixel_mask/<video>.npy    uint8 (T, H, W) {0, 1}

Frames are 42x24 instead of 856x480. A ``._`` resource fork sits among the videos.

``training_frames/shanghaitech/`` is the layout of releases that ship the training
videos as pre-extracted frames: ``training/frames/<scene>_<NNN>/NNN.jpg`` (0-based; the
frames the videos were written from), and ``testing/`` copied from ``shanghaitech/``.

Run: .venv/bin/python tfds_builders/shanghaitech/dummy_data/make_fixtures.py [NAME ...]
(``shanghaitech`` then ``training_frames`` by default).
"""

import pathlib
import shutil
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from vad_jax.tfds_builders import video  # noqa: E402

SIZE = (24, 42)  # (height, width), as 480x856
TRAIN = {"01_001": 4, "02_001": 3}
TEST_LABELS = {"01_0014": [0, 1, 1, 0, 0], "02_0128": [0, 0, 0, 1]}


def _frames(n, seed):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 120, size=(*SIZE, 3), dtype=np.uint8)
  return np.stack([np.clip(base.astype(int) + 15 * i, 0, 255).astype(np.uint8) for i in range(n)])


def write(root):
  videos = root / "training" / "videos"
  videos.mkdir(parents=True)
  for v, (name, n) in enumerate(TRAIN.items()):
    video.write_video(videos / f"{name}.avi", _frames(n, v), fps=24)
  (videos / "._01_001.avi").write_bytes(b"\x00\x05\x16\x07junk")
  testing = root / "testing"
  for folder in ("test_frame_mask", "test_pixel_mask"):
    (testing / folder).mkdir(parents=True)
  for v, (name, labels) in enumerate(TEST_LABELS.items()):
    frame_dir = testing / "frames" / name
    frame_dir.mkdir(parents=True)
    for t, frame in enumerate(_frames(len(labels), 10 + v)):
      Image.fromarray(frame).save(frame_dir / f"{t:03d}.jpg", quality=90)
    np.save(testing / "test_frame_mask" / f"{name}.npy", np.array(labels, np.uint8))
    pixels = np.zeros((len(labels), *SIZE), np.uint8)
    for t, label in enumerate(labels):
      if label:
        pixels[t, 4:12, 6:20] = 1
    np.save(testing / "test_pixel_mask" / f"{name}.npy", pixels)


def write_training_frames(root):
  for v, (name, n) in enumerate(TRAIN.items()):
    frame_dir = root / "training" / "frames" / name
    frame_dir.mkdir(parents=True)
    for t, frame in enumerate(_frames(n, v)):
      Image.fromarray(frame).save(frame_dir / f"{t:03d}.jpg", quality=90)
  shutil.copytree(HERE / "shanghaitech" / "testing", root / "testing")


FIXTURES = {"shanghaitech": write, "training_frames": write_training_frames}


def main(names):
  for name in names or FIXTURES:
    target = HERE / name
    if target.exists():
      shutil.rmtree(target)
    FIXTURES[name](target / "shanghaitech" if name == "training_frames" else target)


if __name__ == "__main__":
  main(sys.argv[1:])
