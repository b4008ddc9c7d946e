"""UCSD Pedestrian anomaly dataset (Ped1, Ped2), one record per frame.

Two on-disk layouts are read (``docs/DATASETS.md``):

* the official archive ``UCSD_Anomaly_Dataset.tar.gz`` (or its extracted
  ``UCSD_Anomaly_Dataset.v1p2/`` folder): grayscale TIFF frames named from 1,
  ``TestNNN_gt`` BMP pixel masks where the archive has them, and the frame ground
  truth ``UCSDpedN.m``;
* the pre-extracted JPEG release of the frame-prediction literature,
  ``pedN/{training,testing}/frames/NN/NNN.jpg`` (named from 0, 3-channel JPEG), with
  the official ``UCSDpedN.m`` placed beside it. It has no pixel masks.

Both give the same videos under the official names (``Train001``, ``Test001``, ...) and
the same frame labels (from the ``.m`` file). Frames differ in encoding: the TIFFs are
stored as grayscale PNG, the release's JPEGs are kept as they are (RGB).
``metadata["layout"]`` says which layout was read.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

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

The pre-extracted JPEG release (Frame-Pred / MNAD) is accepted too, with the official
ground truth file copied beside it:

  <manual_dir>/ped2/training/frames/01/000.jpg ...
  <manual_dir>/ped2/testing/frames/01/000.jpg ...
  <manual_dir>/ped2/UCSDped2.m
  (or the same three entries directly in <manual_dir>)
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


class Builder(common.FrameBuilder):
  """UCSD Ped1 / Ped2: one record per frame, frame labels from the official ``.m``."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
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
    layout = common.find_layout(
      manual_dir,
      {
        "official folders": [
          f"{_ROOT}/{official}/Train",
          f"{_ROOT}/{official}/Test",
          f"{_ROOT}/{official}/Test/{official}.m",
        ],
        "official archive": [_ARCHIVE],
        "JPEG release": [
          f"{subset}/training/frames",
          f"{subset}/testing/frames",
          f"{subset}/{official}.m",
        ],
        "JPEG release (in the manual dir itself)": [
          "training/frames",
          "testing/frames",
          f"{official}.m",
        ],
      },
      _INSTRUCTIONS,
    )
    if layout == "official archive":
      extracted = common.extract_archive(
        manual_dir / _ARCHIVE, dl_manager.download_dir / "extracted" / "UCSD_Anomaly_Dataset"
      )
      subset_dir = common.require_path(extracted / _ROOT / official, f"{official} inside {_ARCHIVE}", _INSTRUCTIONS)
      videos = _official_videos(subset_dir, official)
    elif layout == "official folders":
      videos = _official_videos(manual_dir / _ROOT / official, official)
    else:
      root = manual_dir / subset if layout == "JPEG release" else manual_dir
      videos = _release_videos(root, root / f"{official}.m")

    common.empty_metadata(self.info.metadata, videos)
    self.info.metadata["layout"] = layout
    self.info.metadata["labels"] = f"official {official}.m frame ranges"
    return {split: self._generate_examples(split, v) for split, v in videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[_Video]):
    config: UcsdConfig = self.builder_config
    records = common.SplitRecords(self.info.metadata, split, num_videos=len(videos))
    for video in videos:
      yield from records.add_video(
        video.name,
        lambda video=video: _frame_records(video, config),
        skip_undecodable=self._skip_undecodable,
      )
    records.finish()


def _frame_records(video: _Video, config: UcsdConfig) -> Iterator[dict]:
  for i in range(0, len(video.frames), config.frame_stride):
    frame, shape = common.image_file_frame(video.frames[i], config.frame_size)
    record = {"frame": frame, "label": int(video.labels[i]), "mask": b"", "has_mask": False}
    if video.masks:
      mask = common.read_image(video.masks[i])
      if mask.ndim == 3:
        mask = mask.max(axis=-1)
      if config.frame_size is None and mask.shape != shape[:2]:
        raise ValueError(f"Video {video.name}: mask {video.masks[i]} is {mask.shape} but its frame is {shape[:2]}.")
      mask = common.resize_mask(mask, config.frame_size)
      record.update(mask=common.encode_mask(mask), has_mask=True)
    yield record


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
      masks = ()
      mask_dir = video_dir.parent / f"{video_dir.name}_gt"
      if mask_dir.is_dir():
        masks = common.numbered_files(mask_dir, (".bmp",), first=1)
        if len(masks) != len(frames):
          raise ValueError(f"Video {video_dir.name}: {mask_dir} has {len(masks)} masks for {len(frames)} frames.")
      videos.append(_Video(video_dir.name, tuple(frames), labels, tuple(masks)))
    splits[split] = videos
  return splits


def _release_videos(root: epath.Path, gt_path: epath.Path) -> dict[str, list[_Video]]:
  """``{training,testing}/frames/NN/NNN.jpg`` videos, renamed ``TrainNNN`` / ``TestNNN``."""
  ranges = parse_ground_truth(gt_path.read_text(), os.fspath(gt_path))
  splits = {}
  for split, folder, prefix in (("train", "training", "Train"), ("test", "testing", "Test")):
    frames_dir = root / folder / "frames"
    video_dirs = common.list_visible(frames_dir, dirs=True)
    if not video_dirs:
      raise common.ManualDataError(f"No video folders in {frames_dir}.")
    if split == "test" and len(ranges) != len(video_dirs):
      raise ValueError(
        f"{gt_path} has ground truth for {len(ranges)} videos but {frames_dir} holds {len(video_dirs)} test videos."
      )
    videos = []
    for i, video_dir in enumerate(video_dirs):
      if not video_dir.name.isdigit():
        raise ValueError(f"{frames_dir}: video folder {video_dir.name!r} is not a number.")
      name = f"{prefix}{int(video_dir.name):03d}"
      frames = common.numbered_files(video_dir, (".jpg", ".jpeg", ".png"), first=0)
      if split == "train":
        labels = np.zeros(len(frames), np.int32)
      else:
        labels = common.labels_from_ranges(ranges[i], len(frames), first_frame=1, video=name, source=os.fspath(gt_path))
      videos.append(_Video(name, tuple(frames), labels))
    splits[split] = videos
  return splits
