"""UCSD Pedestrian anomaly dataset (Ped1, Ped2), one record per frame.

Two on-disk layouts are read (``docs/DATASETS.md``):

* the official archive ``UCSD_Anomaly_Dataset.tar.gz`` (or its extracted
  ``UCSD_Anomaly_Dataset.v1p2/`` folder): grayscale TIFF frames named from 1,
  ``TestNNN_gt`` BMP pixel masks where the archive has them, and the frame ground
  truth ``UCSDpedN.m``;
  The manual dir may also be ``UCSD_Anomaly_Dataset.v1p2/`` itself.
* the pre-extracted JPEG release of the frame-prediction literature,
  ``pedN/{training,testing}/frames/NN/NNN.jpg`` (3-channel JPEG), with the official
  ``UCSDpedN.m`` placed beside it, or with the ``pedN.mat`` the release is distributed
  with (``gt``: per test video a ``2 x K`` array of 1-based inclusive intervals; for
  Ped1 these equal ``UCSDped1.m``). Video folders may be named ``NN`` or, as in the
  distributed Ped1 release, ``ped1_train_NN`` / ``ped1_test_NN``; frame files may be
  numbered from 0 or 1. The release has no pixel masks; the archive's ``TestNNN_gt``
  folders, copied beside it, are read (``mask_folders`` lists the accepted places).

Mask files are one 8-bit BMP per frame, 0 normal / 255 anomalous (any nonzero pixel is
anomalous), named ``001.bmp`` or ``frame001.bmp`` (Ped2's Test006, Test009, Test012),
numbered from 1 against the video's frames; they must cover every frame and have the
frame's size. ``metadata["masks"]`` records the folder of each video's masks and the
test videos without any (Ped1 ships masks for 10 of its 36).

All give the same videos under the official names (``Train001``, ``Test001``, ...) and
the same frame labels. Frames differ in encoding: the TIFFs are stored as grayscale
PNG, the release's JPEGs are kept as they are (RGB). ``metadata["layout"]`` says which
layout was read, ``metadata["labels"]`` which label file (the official ``.m`` when
both are there).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from .. import common

_ARCHIVE = "UCSD_Anomaly_Dataset.tar.gz"
_ROOT = "UCSD_Anomaly_Dataset.v1p2"

_INSTRUCTIONS = f"""\
Download {_ARCHIVE} from http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm and
put it in the manual dir, either as the archive itself or extracted:

  <manual_dir>/{_ARCHIVE}
  or
  <manual_dir>/{_ROOT}/UCSDped1/{{Train,Test}}/...
  <manual_dir>/{_ROOT}/UCSDped2/{{Train,Test}}/...   (with Test/UCSDped2.m)

  (or <manual_dir> = UCSD_Anomaly_Dataset.v1p2/ itself, holding UCSDped1/, UCSDped2/)

The pre-extracted JPEG release (Frame-Pred / MNAD) is accepted too, with the official
ground truth file copied beside it, or with the release's own ped1.mat / ped2.mat:

  <manual_dir>/ped2/training/frames/01/000.jpg ...   (or .../frames/ped2_train_01/...)
  <manual_dir>/ped2/testing/frames/01/000.jpg ...    (or .../frames/ped2_test_01/...)
  <manual_dir>/ped2/UCSDped2.m   or   <manual_dir>/ped2/ped2.mat   or   <manual_dir>/ped2.mat
  (or the frame folders and the label file directly in <manual_dir>)

Pixel masks for the JPEG release: copy the archive's UCSDped2/Test/TestNNN_gt/ folders
(one BMP per frame, 001.bmp or frame001.bmp) into one of these, beside the frames
(<release> is the folder holding training/ and testing/):

  <release>/masks/TestNNN_gt/   <release>/TestNNN_gt/   <release>/testing/TestNNN_gt/
  <manual_dir>/masks/TestNNN_gt/   <manual_dir>/TestNNN_gt/   (when <release> is <manual_dir>/ped2)

Video N of testing/frames/NN pairs with TestNNN_gt; a test video without a _gt folder
keeps its frame labels only.
"""

# ``TestVideoFile{end+1}.gt_frame = [61:180];`` and ``[5:90, 140:200]``.
_GT_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def parse_ground_truth(text: str, source: str = "ground truth") -> list[list[tuple[int, int]]]:
  """Frame ranges of every test video, in file order, from a ``UCSDpedN.m`` text.

  Each range is ``(first, last)``, 1-based and inclusive, as written. MATLAB comments
  (``% ...``) are ignored. Raises ``ValueError`` naming ``source`` and the line for a
  range that is not ``a:b`` / ``a`` with ``1 <= a <= b``.
  """
  videos = []
  for line_number, line in enumerate(text.splitlines(), start=1):
    match = _GT_LINE.search(line.split("%", 1)[0])
    if not match:
      continue
    body = re.sub(r"\s*:\s*", ":", match.group(1).strip())
    ranges = []
    for token in re.split(r"[,;\s]+", body):
      if not token:
        continue
      parts = token.split(":")
      if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ValueError(f"{source}, line {line_number}: cannot read range {token!r}.")
      first, last = int(parts[0]), int(parts[-1])
      if not 1 <= first <= last:
        raise ValueError(f"{source}, line {line_number}: empty or 0-based range {token!r}.")
      ranges.append((first, last))
    videos.append(ranges)
  return videos


@dataclasses.dataclass(eq=False)
class UcsdConfig(common.VideoConfig):
  """``subset`` is ``"ped1"`` or ``"ped2"``."""

  subset: str = "ped2"


@dataclasses.dataclass(frozen=True)
class _Video:
  name: str
  frames: tuple[epath.Path, ...]
  labels: np.ndarray
  masks: tuple[epath.Path, ...] = ()
  mask_dir: epath.Path | None = None


class Builder(common.FrameBuilder):
  """UCSD Ped1 / Ped2: one record per frame, frame labels from the official ``.m``."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": (
      "Pixel masks (TestNNN_gt) also read beside the JPEG release; mask files named "
      "frameNNN.bmp read (Ped2 Test006, Test009, Test012); metadata['masks']."
    ),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  BUILDER_CONFIGS = [
    UcsdConfig(
      name="ped1",
      subset="ped1",
      description="Ped1: 34 training and 36 test videos of 200 frames, 238x158.",
    ),
    UcsdConfig(
      name="ped2",
      subset="ped2",
      description=("Ped2: 16 training videos (2,550 frames), 12 test videos (2,010 frames), 360x240."),
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "ped2"

  OPTIONAL_KEYS = ("mask", "has_mask")
  HOMEPAGE = "http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config: UcsdConfig = self.builder_config
    subset = config.subset
    official = f"UCSD{subset}"  # UCSDped1 / UCSDped2
    manual_dir = dl_manager.manual_dir
    mat = f"{subset}.mat"  # ped1.mat / ped2.mat
    frames = [f"{subset}/training/frames", f"{subset}/testing/frames"]
    layout = common.find_layout(
      manual_dir,
      {
        "official folders": [
          f"{_ROOT}/{official}/Train",
          f"{_ROOT}/{official}/Test",
          f"{_ROOT}/{official}/Test/{official}.m",
        ],
        f"official folders (the manual dir is {_ROOT}/)": [
          f"{official}/Train",
          f"{official}/Test",
          f"{official}/Test/{official}.m",
        ],
        "official archive": [_ARCHIVE],
        "JPEG release": [*frames, f"{subset}/{official}.m"],
        "JPEG release (in the manual dir itself)": ["training/frames", "testing/frames", f"{official}.m"],
        f"JPEG release with {mat}": [*frames, f"{subset}/{mat}"],
        f"JPEG release with {mat} beside it": [*frames, mat],
        f"JPEG release with {mat} (in the manual dir itself)": ["training/frames", "testing/frames", mat],
      },
      _INSTRUCTIONS,
    )
    if layout == "official archive":
      extracted = common.extract_archive(
        manual_dir / _ARCHIVE, dl_manager.download_dir / "extracted" / "UCSD_Anomaly_Dataset"
      )
      subset_dir = common.require_path(extracted / _ROOT / official, f"{official} inside {_ARCHIVE}", _INSTRUCTIONS)
      videos = _official_videos(subset_dir, official)
      labels = f"official {official}.m frame ranges"
    elif layout.startswith("official folders"):
      videos = _official_videos(manual_dir / (_ROOT if layout == "official folders" else "") / official, official)
      labels = f"official {official}.m frame ranges"
    else:
      root = manual_dir if "in the manual dir itself" in layout else manual_dir / subset
      if layout.startswith(f"JPEG release with {mat}"):
        gt_path = manual_dir / mat if layout.endswith("beside it") else root / mat
        labels = f"{mat} gt intervals of the JPEG release (for Ped1 equal to the official {official}.m)"
      else:
        gt_path = root / f"{official}.m"
        labels = f"official {official}.m frame ranges"
      videos = _release_videos(root, gt_path, subset, mask_folders(root, manual_dir))

    common.empty_metadata(self.info.metadata, videos)
    self.info.metadata["masks"] = mask_metadata(videos["test"])
    self.record_source(layout=layout, labels=labels + _masks_note(self.info.metadata["masks"]))
    return {split: self._generate_examples(split, v) for split, v in videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[_Video]):
    config: UcsdConfig = self.builder_config
    jobs = [common.VideoJob(video.name, functools.partial(_frame_records, video, config)) for video in videos]
    return self.split_records(split, jobs)


def _frame_records(video: _Video, config: UcsdConfig) -> Iterator[dict]:
  for i in range(0, len(video.frames), config.frame_stride):
    frame, shape = common.image_file_frame(video.frames[i], config.frame_size, video=video.name, index=i)
    record = {"frame": frame, "label": int(video.labels[i]), "mask": b"", "has_mask": False}
    if video.masks:
      mask = common.read_image(video.masks[i], video=video.name, index=i)
      if mask.ndim == 3:
        mask = mask.max(axis=-1)
      native = shape[:2] if config.frame_size is None else _image_size(video.frames[i])
      if mask.shape != tuple(native):
        raise ValueError(
          f"Video {video.name}: mask {video.masks[i]} is {mask.shape[0]}x{mask.shape[1]} (height x width) "
          f"but its frame {video.frames[i]} is {native[0]}x{native[1]}."
        )
      mask = common.resize_mask(mask, config.frame_size)
      record.update(mask=common.encode_mask(mask), has_mask=True)
    yield record


def _image_size(path: epath.Path) -> tuple[int, int]:
  """``(height, width)`` of an image file from its header (the frame is decoded in full
  by ``common.image_file_frame``)."""
  with Image.open(os.fspath(path)) as image:
    width, height = image.size
  return height, width


# ---------------------------------------------------------------------------- masks

# ``TestNNN_gt`` folders; files ``001.bmp`` (most videos) or ``frame001.bmp`` (Ped2
# Test006, Test009, Test012), numbered from 1.
_MASK_DIR = re.compile(r"Test(\d+)_gt", re.IGNORECASE)
_MASK_FILE = re.compile(r"(?:frame)?(\d+)\.bmp", re.IGNORECASE)


def mask_files(mask_dir: epath.Path, num_frames: int, video: str) -> tuple[epath.Path, ...]:
  """The masks of a video's ``num_frames`` frames, in frame order, from ``TestNNN_gt/``.

  Files are ``NNN.bmp`` or ``frameNNN.bmp``, sorted by their number, which counts from 1
  (the first frame, 0 of the JPEG release). Other files are ignored, junk too. Raises
  ``ValueError`` naming the file for a ``.bmp`` named otherwise, two files with one
  number, a frame without a mask and a mask past the last frame.
  """
  numbered: dict[int, epath.Path] = {}
  for path in common.list_visible(mask_dir, suffixes=(".bmp",), dirs=False):
    match = _MASK_FILE.fullmatch(path.name)
    if not match:
      raise ValueError(f"{path}: a mask file of video {video} must be named NNN.bmp or frameNNN.bmp.")
    number = int(match.group(1))
    if number in numbered:
      raise ValueError(f"{path} and {numbered[number]} are both the mask of frame {number} of video {video}.")
    numbered[number] = path
  missing = [n for n in range(1, num_frames + 1) if n not in numbered]
  if missing:
    example = next(iter(numbered.values()), None)
    prefix = "frame" if example is not None and example.name.lower().startswith("frame") else ""
    raise ValueError(
      f"{mask_dir / f'{prefix}{missing[0]:03d}.bmp'} is missing: video {video} has {num_frames} frames "
      f"(masks numbered from 1), {len(missing)} have no mask (first: {missing[:5]})."
    )
  extra = sorted(n for n in numbered if not 1 <= n <= num_frames)
  if extra:
    raise ValueError(
      f"{numbered[extra[0]]} is the mask of frame {extra[0]} (numbered from 1) but video {video} has "
      f"{num_frames} frames."
    )
  return tuple(numbered[n] for n in range(1, num_frames + 1))


def mask_folders(root: epath.Path, manual_dir: epath.Path) -> list[epath.Path]:
  """Where ``TestNNN_gt`` folders are looked for beside the JPEG release in ``root``
  (which holds ``training/`` and ``testing/``), in this order."""
  folders = [root / "masks", root, root / "testing"]
  if root != manual_dir:
    folders += [manual_dir / "masks", manual_dir]
  return folders


def find_mask_dirs(folders: Sequence[epath.Path]) -> dict[int, epath.Path]:
  """``{video number: TestNNN_gt folder}`` from the one of ``folders`` holding them.

  ``ValueError`` naming the folders when ``TestNNN_gt`` folders are in more than one,
  or when two are for one video number.
  """
  found: dict[epath.Path, dict[int, epath.Path]] = {}
  for folder in folders:
    if not folder.is_dir():
      continue
    dirs: dict[int, epath.Path] = {}
    for path in common.list_visible(folder, dirs=True):
      match = _MASK_DIR.fullmatch(path.name)
      if match:
        number = int(match.group(1))
        if number in dirs:
          raise ValueError(f"{dirs[number]} and {path} are both the masks of test video {number}.")
        dirs[number] = path
    if dirs:
      found[folder] = dirs
  if len(found) > 1:
    raise ValueError(
      f"TestNNN_gt mask folders are in more than one place: {', '.join(map(str, found))}; keep them in one."
    )
  return next(iter(found.values()), {})


def mask_metadata(test_videos: Sequence[_Video]) -> dict:
  """``metadata["masks"]``: the folder of each test video's masks, the videos without."""
  with_masks = {v.name: os.fspath(v.mask_dir) for v in test_videos if v.mask_dir is not None}
  parents = sorted({os.path.dirname(path) for path in with_masks.values()})
  return {
    "folder": parents[0] if len(parents) == 1 else None,
    "videos": with_masks,
    "without": [v.name for v in test_videos if v.mask_dir is None],
  }


def _masks_note(masks: dict) -> str:
  count, total = len(masks["videos"]), len(masks["videos"]) + len(masks["without"])
  if not count:
    return "; no pixel masks"
  return f"; pixel masks of {count} of {total} test videos (TestNNN_gt BMPs in {masks['folder']})"


# --------------------------------------------------------------------------- videos


def _official_videos(subset_dir: epath.Path, official: str) -> dict[str, list[_Video]]:
  """Train/Test videos of ``UCSDpedN/``, with labels from ``Test/UCSDpedN.m``."""
  gt_path = subset_dir / "Test" / f"{official}.m"
  ranges = parse_ground_truth(gt_path.read_text(), os.fspath(gt_path))
  splits = {}
  for split, folder, prefix in (("train", "Train", "Train"), ("test", "Test", "Test")):
    video_dirs = [
      d for d in common.list_visible(subset_dir / folder, dirs=True) if re.fullmatch(rf"{prefix}\d+", d.name)
    ]
    if not video_dirs:
      raise common.ManualDataError(f"No {prefix}NNN folders in {subset_dir / folder}.")
    if split == "test" and len(ranges) != len(video_dirs):
      raise ValueError(
        f"{gt_path} has ground truth for {len(ranges)} videos but "
        f"{subset_dir / folder} holds {len(video_dirs)} test videos."
      )
    videos = []
    for i, video_dir in enumerate(video_dirs):
      frames = common.numbered_files(video_dir, (".tif", ".tiff"), first=1)
      if split == "train":
        labels = np.zeros(len(frames), np.int32)
      else:
        labels = common.labels_from_ranges(
          ranges[i], len(frames), first_frame=1, video=video_dir.name, source=os.fspath(gt_path)
        )
      mask_dir = video_dir.parent / f"{video_dir.name}_gt"
      if mask_dir.is_dir():
        videos.append(
          _Video(video_dir.name, tuple(frames), labels, mask_files(mask_dir, len(frames), video_dir.name), mask_dir)
        )
      else:
        videos.append(_Video(video_dir.name, tuple(frames), labels))
    splits[split] = videos
  return splits


def _release_ranges(gt_path: epath.Path) -> list[list[tuple[int, int]]]:
  """Per test video, the 1-based inclusive frame ranges of a ``UCSDpedN.m`` or ``pedN.mat``."""
  if gt_path.name.endswith(".mat"):
    return [[(int(a), int(b)) for a, b in cell.T] for cell in common.read_interval_mat(gt_path)]
  return parse_ground_truth(gt_path.read_text(), os.fspath(gt_path))


# `01`, `ped1_train_01`, `ped2_test_12`, `Train001`: the number is the video's.
_RELEASE_VIDEO = re.compile(r"^(?:ped\d_)?(?:train|test|training|testing)?_?(\d+)$", re.IGNORECASE)


def _release_videos(
  root: epath.Path, gt_path: epath.Path, subset: str = "", mask_places: Sequence[epath.Path] = ()
) -> dict[str, list[_Video]]:
  """``{training,testing}/frames/<video>/NNN.jpg`` videos, renamed ``TrainNNN`` / ``TestNNN``.

  Video folders are ``NN`` or ``pedN_train_NN`` / ``pedN_test_NN``; frame files are
  numbered from 0 (the usual release) or 1. Test video N takes its masks from the
  ``TestNNN_gt`` folder in the first of ``mask_places`` that has any (``find_mask_dirs``).
  """
  ranges = _release_ranges(gt_path)
  mask_dirs = find_mask_dirs(mask_places)
  splits = {}
  for split, folder, prefix in (("train", "training", "Train"), ("test", "testing", "Test")):
    frames_dir = root / folder / "frames"
    video_dirs = common.list_visible(frames_dir, dirs=True)
    if not video_dirs:
      raise common.ManualDataError(f"No video folders in {frames_dir}.")
    numbered = []
    for video_dir in video_dirs:
      match = _RELEASE_VIDEO.match(video_dir.name)
      if not match:
        raise ValueError(
          f"{frames_dir}: video folder {video_dir.name!r} is neither a number nor named like "
          f"{subset or 'pedN'}_{folder[:-3] if folder == 'training' else 'test'}_NN."
        )
      numbered.append((int(match.group(1)), video_dir))
    numbered.sort(key=lambda item: item[0])
    if len({n for n, _ in numbered}) != len(numbered):
      raise ValueError(f"{frames_dir}: two video folders have the same number: {[d.name for _, d in numbered]}.")
    if split == "test" and len(ranges) != len(numbered):
      raise ValueError(
        f"{gt_path} has ground truth for {len(ranges)} videos but {frames_dir} holds {len(numbered)} test videos."
      )
    videos = []
    for i, (number, video_dir) in enumerate(numbered):
      name = f"{prefix}{number:03d}"
      suffixes = (".jpg", ".jpeg", ".png")
      names = [p.name.rsplit(".", 1)[0] for p in common.list_visible(video_dir, suffixes=suffixes, dirs=False)]
      digits = [int(n) for n in names if n.isdigit()]
      first = 1 if digits and min(digits) == 1 else 0
      frames = common.numbered_files(video_dir, suffixes, first=first)
      if split == "train":
        labels = np.zeros(len(frames), np.int32)
      else:
        labels = common.labels_from_ranges(ranges[i], len(frames), first_frame=1, video=name, source=os.fspath(gt_path))
      mask_dir = mask_dirs.get(number) if split == "test" else None
      masks = mask_files(mask_dir, len(frames), name) if mask_dir is not None else ()
      videos.append(_Video(name, tuple(frames), labels, masks, mask_dir))
    if split == "test":
      unknown = sorted(set(mask_dirs) - {n for n, _ in numbered})
      if unknown:
        raise ValueError(f"{mask_dirs[unknown[0]]} has no test video: {frames_dir} has no video {unknown[0]}.")
    splits[split] = videos
  return splits
