"""Writes the miniature UCSD trees next to this script.

  official/      UCSD_Anomaly_Dataset.v1p2/UCSDped{1,2}/... as in the official archive:
                 1-based grayscale TIFF frames, TestNNN_gt BMP masks (all Ped2 test
                 videos, Test002's named frameNNN.bmp; one of the two Ped1 ones), the .m ground truth (one line
                 with two ranges), and junk (._ files, .DS_Store, a backup ``.m~``).
  jpeg_release/  ped2/{training,testing}/frames/NN/NNN.jpg (0-based, 3-channel) with
                 UCSDped2.m beside them, as the frame-prediction release.
  release_masks/ the Ped2 JPEG release directly in the manual dir, as in
                 ../shared/data/ucsd_ped2: training/frames/NN/, testing/frames/NN/ (NNN.jpg,
                 0-based), UCSDped2.m, and the archive's pixel masks copied beside them in
                 masks/TestNNN_gt/: 8-bit BMPs, 0/255, 1-based, named 001.bmp (Test001) or
                 frame001.bmp (Test003, as Ped2's Test006/009/012); Test002 has no _gt folder.
  ped1_release/  the Ped1 JPEG release as distributed: ped1/training/frames/ped1_train_NN/
                 and ped1/testing/frames/ped1_test_NN/ (NNN.jpg, 0-based), labels in
                 ped1/ped1.mat (``gt``: per test video a 2 x K double array of 1-based
                 inclusive intervals, the ranges of UCSDped1.m), no .m file.

Run: .venv/bin/python tfds_builders/ucsd_ped/dummy_data/make_fixtures.py [NAME ...]
The expected counts are in ucsd_ped_dataset_builder_test.py.
"""

import pathlib
import shutil
import sys

import numpy as np
import scipy.io
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent

# name -> (frames, ground-truth ranges or None for training, has masks)
PED2 = {
  "Train": {"Train001": (4, None, False), "Train002": (3, None, False)},
  "Test": {"Test001": (5, "[1:2, 4:5]", True), "Test002": (4, "[3:4]", True)},
}
PED1 = {
  "Train": {"Train001": (3, None, False)},
  "Test": {"Test001": (4, "[2:3]", True), "Test002": (3, "[1:1,3:3]", False)},
}
# The JPEG release with masks/: Test001 masks named 001.bmp, Test002 none, Test003 frame001.bmp.
RELEASE_MASKS = {
  "Train": {"Train001": (3, None, False)},
  "Test": {"Test001": (5, "[1:2, 4:5]", True), "Test002": (4, "[3:4]", False), "Test003": (4, "[2:4]", True)},
}
FRAME_FORM = {"Test003"}  # mask files frame001.bmp ...
SIZES = {"UCSDped1": (16, 24), "UCSDped2": (24, 36)}  # (height, width), as 158x238 / 240x360


def _frame(rng, size, value):
  base = rng.integers(0, 60, size=size, dtype=np.uint8)
  return np.clip(base.astype(int) + value, 0, 255).astype(np.uint8)


def _mask(size, anomalous, i=0):
  """0/255; an anomalous frame has a moving block, and every third frame a second one."""
  mask = np.zeros(size, np.uint8)
  if anomalous:
    mask[2:8, 3 + i : 10 + i] = 255
    if i % 3 == 2:
      mask[14:18, 20:30] = 255
  return mask


def _ranges_to_labels(ranges, n):
  labels = np.zeros(n, int)
  for token in ranges.strip("[]").replace(" ", "").split(","):
    first, last = (token.split(":") * 2)[:2]
    labels[int(first) - 1 : int(last)] = 1
  return labels


def _gt_file(test_videos):
  lines = ["TestVideoFile = {};"]
  lines += [f"TestVideoFile{{end+1}}.gt_frame = {r};" for _, r, _ in test_videos.values()]
  return "\n".join(lines) + "\n"


def write_official(root):
  rng = np.random.default_rng(0)
  for official, spec in (("UCSDped1", PED1), ("UCSDped2", PED2)):
    size = SIZES[official]
    subset = root / "UCSD_Anomaly_Dataset.v1p2" / official
    for folder, videos in spec.items():
      for v, (name, (n, ranges, masks)) in enumerate(videos.items()):
        labels = _ranges_to_labels(ranges, n) if ranges else np.zeros(n, int)
        video_dir = subset / folder / name
        video_dir.mkdir(parents=True)
        for i in range(n):
          image = Image.fromarray(_frame(rng, size, 40 * v + 20 * i), mode="L")
          image.save(video_dir / f"{i + 1:03d}.tif", format="TIFF")
          if masks:
            gt_dir = subset / folder / f"{name}_gt"
            gt_dir.mkdir(exist_ok=True)
            prefix = "frame" if (official, name) == ("UCSDped2", "Test002") else ""
            Image.fromarray(_mask(size, labels[i]), mode="L").save(gt_dir / f"{prefix}{i + 1:03d}.bmp")
      (subset / folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    # An AppleDouble resource fork next to a real frame, and one for a folder.
    (subset / "Train" / "Train001" / "._001.tif").write_bytes(b"\x00\x05\x16\x07junk")
    (subset / "Test" / "._Test001").write_bytes(b"\x00\x05\x16\x07junk")
    (subset / "Test" / f"{official}.m").write_text(_gt_file(spec["Test"]))
    (subset / "Test" / f"{official}.m~").write_text("TestVideoFile{end+1}.gt_frame = [1:999];\n")


def write_release(root):
  rng = np.random.default_rng(1)
  size = SIZES["UCSDped2"]
  release = root / "ped2"
  for folder, spec in (("training", PED2["Train"]), ("testing", PED2["Test"])):
    for v, (n, _, _) in enumerate(spec.values()):
      video_dir = release / folder / "frames" / f"{v + 1:02d}"
      video_dir.mkdir(parents=True)
      for i in range(n):
        gray = _frame(rng, size, 40 * v + 20 * i + (0 if folder == "training" else 100))
        Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), mode="RGB").save(video_dir / f"{i:03d}.jpg", quality=90)
  (release / "testing" / "frames" / "01" / "._000.jpg").write_bytes(b"\x00\x05\x16\x07junk")
  (release / "UCSDped2.m").write_text(_gt_file(PED2["Test"]))


def write_release_masks(root):
  rng = np.random.default_rng(3)
  size = SIZES["UCSDped2"]
  for folder, spec in (("training", RELEASE_MASKS["Train"]), ("testing", RELEASE_MASKS["Test"])):
    for v, (name, (n, ranges, masks)) in enumerate(spec.items()):
      labels = _ranges_to_labels(ranges, n) if ranges else np.zeros(n, int)
      video_dir = root / folder / "frames" / f"{v + 1:02d}"
      video_dir.mkdir(parents=True)
      for i in range(n):
        gray = _frame(rng, size, 40 * v + 20 * i)
        Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), mode="RGB").save(video_dir / f"{i:03d}.jpg", quality=90)
        if masks:
          gt_dir = root / "masks" / f"{name}_gt"
          gt_dir.mkdir(parents=True, exist_ok=True)
          prefix = "frame" if name in FRAME_FORM else ""
          Image.fromarray(_mask(size, labels[i], i), mode="L").save(gt_dir / f"{prefix}{i + 1:03d}.bmp")
  (root / "masks" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
  (root / "masks" / "Test001_gt" / "._001.bmp").write_bytes(b"\x00\x05\x16\x07junk")
  (root / "UCSDped2.m").write_text(_gt_file(RELEASE_MASKS["Test"]))


def _intervals(ranges):
  """``"[1:1,3:3]"`` -> 2 x K float array of [first; last]."""
  pairs = [(token.split(":") * 2)[:2] for token in ranges.strip("[]").replace(" ", "").split(",")]
  return np.array([[float(a) for a, _ in pairs], [float(b) for _, b in pairs]])


def write_ped1_release(root):
  rng = np.random.default_rng(2)
  size = SIZES["UCSDped1"]
  release = root / "ped1"
  for folder, kind, spec in (("training", "train", PED1["Train"]), ("testing", "test", PED1["Test"])):
    for v, (n, _, _) in enumerate(spec.values()):
      video_dir = release / folder / "frames" / f"ped1_{kind}_{v + 1:02d}"
      video_dir.mkdir(parents=True)
      for i in range(n):
        gray = _frame(rng, size, 40 * v + 20 * i)
        Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), mode="RGB").save(video_dir / f"{i:03d}.jpg", quality=90)
  gt = np.empty((1, len(PED1["Test"])), dtype=object)
  for v, (_, ranges, _) in enumerate(PED1["Test"].values()):
    gt[0, v] = _intervals(ranges)
  scipy.io.savemat(release / "ped1.mat", {"gt": gt}, format="5")


FIXTURES = {
  "official": write_official,
  "jpeg_release": write_release,
  "ped1_release": write_ped1_release,
  "release_masks": write_release_masks,
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
