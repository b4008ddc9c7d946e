"""Writes the miniature Avenue trees next to this script.

  official/          ``Avenue Dataset/{training,testing}_videos/NN.avi`` (MPEG-4 AVI
                     written with PyAV, 64x36 instead of 640x360) and
                     ``ground_truth_demo/testing_label_mask/N_label.mat`` (MATLAB 5,
                     ``volLabel`` a (1, T) cell array of uint8 {0, 1} masks), plus the
                     viewer script, a Readme and a ``._`` resource fork.
  frames_release/    ``avenue/{training,testing}/frames/NN/XXXX.jpg`` (0-based) and
                     ``avenue/avenue.mat`` (``gt``: per video a 2 x K double array of
                     1-based inclusive intervals, one video with two intervals).
  frames_release_label_vectors/   the frames of ``frames_release/`` with the other
                     ``avenue.mat`` in circulation: one per-frame uint8 0/1 vector per
                     test video (variables ``'01'``, ``'02'``), equal to the masks' labels.
  official_mask_dir_at_top/   ``official/`` with ``testing_label_mask/`` directly in the
                     manual dir instead of inside ``ground_truth_demo/``.

Run: .venv/bin/python tfds_builders/avenue/dummy_data/make_fixtures.py [NAME ...]
(all by default; the last two are copies of the first two, so write those first).
"""

import pathlib
import shutil
import sys

import numpy as np
import scipy.io
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from vad_jax.tfds_builders import video  # noqa: E402

SIZE = (36, 64)  # (height, width), as 360x640
TRAIN = {"01": 5, "02": 4}
TEST = {"01": 6, "02": 3}
# Official masks: frames (0-based) with anomalous pixels.
MASKED = {"01": [1, 2, 4], "02": [2]}
# avenue.mat intervals (1-based inclusive), deliberately not equal to the masks.
INTERVALS = {"01": [[2, 5], [3, 6]], "02": [[1], [2]]}


def _frames(n, offset):
  ramp = np.linspace(0, 1, SIZE[1])[None, :, None]
  frames = []
  for i in range(n):
    colour = np.array([40 + 25 * i + offset, 120, 200 - offset], float)[None, None, :]
    frames.append(np.clip(ramp * colour + 10 * i, 0, 255).astype(np.uint8).repeat(SIZE[0], 0))
  return np.stack(frames)


def write_official(root):
  dataset = root / "Avenue Dataset"
  for folder, spec, offset in (("training_videos", TRAIN, 0), ("testing_videos", TEST, 30)):
    (dataset / folder).mkdir(parents=True)
    for v, (name, n) in enumerate(spec.items()):
      video.write_video(dataset / folder / f"{name}.avi", _frames(n, offset + 10 * v), fps=25)
  (dataset / "testing_videos" / "._01.avi").write_bytes(b"\x00\x05\x16\x07junk")
  masks_dir = root / "ground_truth_demo" / "testing_label_mask"
  masks_dir.mkdir(parents=True)
  for name, n in TEST.items():
    cells = np.empty((1, n), dtype=object)
    for t in range(n):
      mask = np.zeros(SIZE, np.uint8)
      if t in MASKED[name]:
        mask[5:15, 10:30] = 1
      cells[0, t] = mask
    # 01.avi pairs with 1_label.mat (no zero padding).
    scipy.io.savemat(masks_dir / f"{int(name)}_label.mat", {"volLabel": cells}, format="5")
  (root / "ground_truth_demo" / "look_label.m").write_text(
    "load('testing_label_mask/1_label.mat'); imshow(volLabel{1});\n"
  )
  (root / "ground_truth_demo" / "Readme.txt").write_text("Label masks of the test videos.\n")


def write_release(root):
  release = root / "avenue"
  for folder, spec, offset in (("training", TRAIN, 5), ("testing", TEST, 35)):
    for v, (name, n) in enumerate(spec.items()):
      frame_dir = release / folder / "frames" / name
      frame_dir.mkdir(parents=True)
      for t, frame in enumerate(_frames(n, offset + 10 * v)):
        Image.fromarray(frame).save(frame_dir / f"{t:04d}.jpg", quality=90)
  gt = np.empty((1, len(TEST)), dtype=object)
  for v, name in enumerate(TEST):
    gt[0, v] = np.array(INTERVALS[name], dtype=np.float64)
  scipy.io.savemat(release / "avenue.mat", {"gt": gt}, format="5")


def write_label_vectors(root):
  shutil.copytree(HERE / "frames_release" / "avenue", root / "avenue", dirs_exist_ok=True)
  vectors = {}
  for name, n in TEST.items():
    labels = np.zeros(n, np.uint8)
    labels[MASKED[name]] = 1
    vectors[name] = labels
  scipy.io.savemat(root / "avenue" / "avenue.mat", vectors, format="5")


def write_mask_dir_at_top(root):
  shutil.copytree(HERE / "official" / "Avenue Dataset", root / "Avenue Dataset", dirs_exist_ok=True)
  shutil.copytree(HERE / "official" / "ground_truth_demo" / "testing_label_mask", root / "testing_label_mask")


FIXTURES = {
  "official": write_official,
  "frames_release": write_release,
  "frames_release_label_vectors": write_label_vectors,
  "official_mask_dir_at_top": write_mask_dir_at_top,
}


def main(names):
  for name in names or FIXTURES:
    target = HERE / name
    if target.exists():
      shutil.rmtree(target)
    target.mkdir()
    FIXTURES[name](target)


if __name__ == "__main__":
  main(sys.argv[1:])
