"""Writes the UCF-Crime fixtures: two miniature manual dirs in the real layouts.

Run from the repository root: `python tfds_builders/ucf_crime/dummy_data/make_fixtures.py [NAME ...]`
(all fixtures by default; a name rewrites only that one).

* `archives/`: the official archives extracted side by side (`Anomaly-Videos-Part-1/`,
  a doubly nested `Anomaly-Videos-Part-3/Anomaly-Videos-Part-3/`, the normal-video
  folders, `UCF_Crimes-Train-Test-Split/Anomaly_Detection_splits/`), the annotation
  file with two-space separators, two trailing spaces and CRLF line ends, a test list
  with CRLF ends, and one train and one (annotated) test video listed but absent.
* `single_tree/`: the `UCF_Crimes/Videos/<Class>/` distribution, LF line ends.
* `annotation_txt_formate/`: the same videos and training list as `single_tree/`, the
  annotations as `UCF_Crimes/Temporal_Anomaly_Annotation_For_Testing_Videos/Txt_formate/
  Temporal_Anomaly_Annotation.txt` (the name in the authors' repository and in the single
  tree), and no `Anomaly_Test.txt`: the test videos are those the annotations name.

Videos are 32x24 H.264 mp4s of a few frames (the real ones are 320x240, 30 fps).
"""

import pathlib
import shutil
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from vad_jax.tfds_builders import video  # noqa: E402  pylint: disable=g-import-not-at-top

# name -> (path relative to the tree, frames)
ARCHIVE_VIDEOS = {
  "Abuse001_x264": ("Anomaly-Videos-Part-1/Abuse", 6),
  "Arson011_x264": ("Anomaly-Videos-Part-1/Arson", 14),
  "Assault002_x264": ("Anomaly-Videos-Part-1/Assault", 10),
  "Robbery050_x264": ("Anomaly-Videos-Part-3/Anomaly-Videos-Part-3/Robbery", 8),
  "Normal_Videos001_x264": ("Training-Normal-Videos-Part-1", 7),
  "Normal_Videos_003_x264": ("Testing_Normal_Videos_Anomaly", 9),
}
ARCHIVE_TRAIN = [  # Burglary005 is listed but not on disk.
  "Abuse/Abuse001_x264.mp4",
  "Burglary/Burglary005_x264.mp4",
  "Robbery/Robbery050_x264.mp4",
  "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4",
]
ARCHIVE_TEST = [  # Explosion008 is listed and annotated but not on disk.
  "Arson/Arson011_x264.mp4",
  "Assault/Assault002_x264.mp4",
  "Explosion/Explosion008_x264.mp4",
  "Testing_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4",
]
ARCHIVE_ANNOTATIONS = [  # Sorted by class, as in the real file; Arson has two segments.
  ("Arson011_x264.mp4", "Arson", 2, 4, 8, 11),
  ("Assault002_x264.mp4", "Assault", 3, 6, -1, -1),
  ("Explosion008_x264.mp4", "Explosion", 1, 5, -1, -1),
  ("Normal_Videos_003_x264.mp4", "Normal", -1, -1, -1, -1),
]

TREE_VIDEOS = {
  "Fighting003_x264": ("UCF_Crimes/Videos/Fighting", 5),
  "Normal_Videos010_x264": ("UCF_Crimes/Videos/Training_Normal_Videos_Anomaly", 5),
  "Shooting007_x264": ("UCF_Crimes/Videos/Shooting", 8),
  "Normal_Videos_050_x264": ("UCF_Crimes/Videos/Testing_Normal_Videos_Anomaly", 6),
}
TREE_TRAIN = ["Fighting/Fighting003_x264.mp4", "Training_Normal_Videos_Anomaly/Normal_Videos010_x264.mp4"]
TREE_TEST = ["Shooting/Shooting007_x264.mp4", "Testing_Normal_Videos_Anomaly/Normal_Videos_050_x264.mp4"]
TREE_ANNOTATIONS = [
  ("Shooting007_x264.mp4", "Shooting", 0, 3, -1, -1),
  ("Normal_Videos_050_x264.mp4", "Normal", -1, -1, -1, -1),
]


def frames_for(name: str, count: int) -> np.ndarray:
  """A moving colour gradient, different per video and per frame."""
  seed = sum(map(ord, name))
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:24, 0:32]
  base = rng.uniform(40, 200, size=3)
  out = np.empty((count, 24, 32, 3), np.uint8)
  for t in range(count):
    wave = 40 * np.sin((xx + 3 * t) / 5.0) + 20 * np.cos(yy / 4.0)
    out[t] = np.clip(base[None, None, :] + wave[..., None], 0, 255).astype(np.uint8)
  return out


def annotation_text(rows, line_end: str) -> str:
  # Fields separated by two spaces, each line ending in two spaces.
  return "".join("  ".join(str(f) for f in row) + "  " + line_end for row in rows)


def write_tree(
  root: pathlib.Path,
  videos,
  train,
  test,
  annotations,
  *,
  split_dir: str,
  annotation_dir: str,
  test_line_end: str,
  annotation_line_end: str,
):
  if root.exists():
    shutil.rmtree(root)
  for name, (folder, count) in videos.items():
    (root / folder).mkdir(parents=True, exist_ok=True)
    video.write_video(root / folder / f"{name}.mp4", frames_for(name, count), fps=30)
  (root / split_dir).mkdir(parents=True, exist_ok=True)
  (root / split_dir / "Anomaly_Train.txt").write_bytes("".join(f"{x}\n" for x in train).encode())
  (root / split_dir / "Anomaly_Test.txt").write_bytes("".join(f"{x}{test_line_end}" for x in test).encode())
  (root / annotation_dir).mkdir(parents=True, exist_ok=True)
  (root / annotation_dir / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_bytes(
    annotation_text(annotations, annotation_line_end).encode()
  )


def write_annotation_txt_formate(root: pathlib.Path) -> None:
  """`single_tree/` with the other annotation file name and place, and no test list."""
  if root.exists():
    shutil.rmtree(root)
  source = HERE / "single_tree"
  shutil.copytree(source / "UCF_Crimes/Videos", root / "UCF_Crimes/Videos")
  (root / "UCF_Crimes/Anomaly_Detection_splits").mkdir(parents=True)
  shutil.copy(
    source / "UCF_Crimes/Anomaly_Detection_splits/Anomaly_Train.txt", root / "UCF_Crimes/Anomaly_Detection_splits"
  )
  folder = root / "UCF_Crimes/Temporal_Anomaly_Annotation_For_Testing_Videos/Txt_formate"
  folder.mkdir(parents=True)
  (folder / "Temporal_Anomaly_Annotation.txt").write_bytes(annotation_text(TREE_ANNOTATIONS, "\n").encode())


def write_archives():
  write_tree(
    HERE / "archives",
    ARCHIVE_VIDEOS,
    ARCHIVE_TRAIN,
    ARCHIVE_TEST,
    ARCHIVE_ANNOTATIONS,
    split_dir="UCF_Crimes-Train-Test-Split/Anomaly_Detection_splits",
    annotation_dir=".",
    test_line_end="\r\n",
    annotation_line_end="\r\n",
  )


def write_single_tree():
  write_tree(
    HERE / "single_tree",
    TREE_VIDEOS,
    TREE_TRAIN,
    TREE_TEST,
    TREE_ANNOTATIONS,
    split_dir="UCF_Crimes/Anomaly_Detection_splits",
    annotation_dir="UCF_Crimes",
    test_line_end="\n",
    annotation_line_end="\n",
  )


FIXTURES = {
  "archives": write_archives,
  "single_tree": write_single_tree,
  "annotation_txt_formate": lambda: write_annotation_txt_formate(HERE / "annotation_txt_formate"),
}


def main(names):
  for name in names or FIXTURES:
    FIXTURES[name]()


if __name__ == "__main__":
  main(sys.argv[1:])
