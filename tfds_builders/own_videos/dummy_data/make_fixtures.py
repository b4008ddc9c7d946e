"""Writes the miniature footage folder (``train/``, ``test/``) next to this script.

  train/corridor_0800.mp4       6 frames, H.264
  train/corridor_0900.avi       5 frames, MPEG-4 Part 2
  train/yard/frame_8.png ...    4 grayscale PNG frames named 8..11 (natural order)
  train/notes.txt               not a video: skipped and recorded
  train/._corridor_0800.mp4     a resource fork: ignored
  test/corridor_1400.mp4        6 frames; labels.csv labels frames 0-3 (0 0 1 1), 4-5 unknown
  test/lobby.mkv                4 frames, no labels (-1)
  test/yard_night/0001.jpg ...  5 JPEG frames; intervals.csv: frames 2-3 anomalous
  test/labels.csv, test/intervals.csv

Frames are 24x32. Run: .venv/bin/python tfds_builders/own_videos/dummy_data/make_fixtures.py
"""

import pathlib
import shutil
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from vad_jax.tfds_builders import video  # noqa: E402

SIZE = (24, 32)  # (height, width)


def _frames(n, seed):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 120, size=(*SIZE, 3), dtype=np.uint8)
  return np.stack([np.clip(base.astype(int) + 15 * i, 0, 255).astype(np.uint8) for i in range(n)])


def write(root):
  train, test = root / "train", root / "test"
  train.mkdir(parents=True)
  test.mkdir()
  video.write_video(train / "corridor_0800.mp4", _frames(6, 0))
  video.write_video(train / "corridor_0900.avi", _frames(5, 1))
  (train / "yard").mkdir()
  for i, frame in enumerate(_frames(4, 2)):
    Image.fromarray(frame[..., 0]).save(train / "yard" / f"frame_{8 + i}.png")
  (train / "notes.txt").write_text("camera 1, corridor\n")
  (train / "._corridor_0800.mp4").write_bytes(b"\x00\x05\x16\x07junk")
  video.write_video(test / "corridor_1400.mp4", _frames(6, 3))
  video.write_video(test / "lobby.mkv", _frames(4, 4))
  (test / "yard_night").mkdir()
  for i, frame in enumerate(_frames(5, 5)):
    Image.fromarray(frame).save(test / "yard_night" / f"{i + 1:04d}.jpg", quality=90)
  (test / "labels.csv").write_text(
    "video,frame,label\ncorridor_1400.mp4,0,0\ncorridor_1400,1,0\ncorridor_1400,2,1\ncorridor_1400,3,1\n"
  )
  (test / "intervals.csv").write_text("video,first_frame,last_frame\nyard_night,2,3\n")


def main():
  for name in ("train", "test"):
    if (HERE / name).exists():
      shutil.rmtree(HERE / name)
  write(HERE)


if __name__ == "__main__":
  main()
