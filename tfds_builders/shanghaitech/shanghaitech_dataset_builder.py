"""ShanghaiTech Campus, one record per frame (``docs/DATASETS.md``).

* Training: ``shanghaitech/training/videos/<scene>_<NNN>.avi`` (330 videos, normal
  activity only), decoded with PyAV. These AVIs are known to decode badly with some
  decoders, so every video's decoded frame count is checked against its container
  (``video.iter_frames``); failures name the file, and ``skip_undecodable=True`` skips
  such videos and counts them in ``metadata["skipped"]``.
  Releases that ship the training videos as pre-extracted frames,
  ``training/frames/<scene>_<NNN>/NNN.jpg`` (0-based), are read from those (JPEG kept
  as is); the official videos are preferred when both are there.
* Test: ``testing/frames/<scene>_<NNNN>/NNN.jpg`` (0-based), frame labels from
  ``testing/test_frame_mask/<video>.npy`` (a 1-D uint8 array in {0, 1}, one entry per
  frame) and pixel masks from ``testing/test_pixel_mask/<video>.npy`` when that folder
  exists. The shape of every mask array is checked against the frames of its video
  (``(T,)`` and ``(T, H, W)``); a mismatch names the file and both shapes.
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

from .. import common
from .. import video as video_lib

_ARCHIVE = "shanghaitech.tar.gz"
_ROOT = "shanghaitech"

_INSTRUCTIONS = f"""\
Download {_ARCHIVE} (ShanghaiTech Campus, https://svip-lab.github.io/dataset/campus_dataset.html)
and put it in the manual dir. Accepted layouts: the archive, or extracted (in
<manual_dir>/{_ROOT}/ or directly in <manual_dir>):

  <manual_dir>/{_ARCHIVE}
  or
  <manual_dir>/{_ROOT}/training/videos/01_001.avi ...
      (or pre-extracted training frames: <manual_dir>/{_ROOT}/training/frames/01_001/000.jpg ...)
  <manual_dir>/{_ROOT}/testing/frames/01_0014/000.jpg ...
  <manual_dir>/{_ROOT}/testing/test_frame_mask/01_0014.npy ...
  <manual_dir>/{_ROOT}/testing/test_pixel_mask/01_0014.npy ...   (optional: pixel masks)
"""

_TRAIN_NAME = re.compile(r"\d+_\d+")


@dataclasses.dataclass(frozen=True)
class _Video:
  name: str
  path: epath.Path  # .avi (training) or frame folder (test)
  frame_mask: epath.Path | None = None  # test_frame_mask/<video>.npy
  pixel_mask: epath.Path | None = None  # test_pixel_mask/<video>.npy


class Builder(common.FrameBuilder):
  """ShanghaiTech Campus: 330 training videos, 107 test videos, 856x480."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  BUILDER_CONFIGS = [
    common.VideoConfig(
      name="default",
      description="Native resolution, every frame; test pixel masks where present.",
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  OPTIONAL_KEYS = ("mask", "has_mask")
  HOMEPAGE = "https://svip-lab.github.io/dataset/campus_dataset.html"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = dl_manager.manual_dir
    test = ["testing/frames", "testing/test_frame_mask"]
    layout = common.find_layout(
      manual_dir,
      {
        "extracted folder": [f"{_ROOT}/{n}" for n in ("training/videos", *test)],
        "extracted folder with training frames": [f"{_ROOT}/{n}" for n in ("training/frames", *test)],
        "archive": [_ARCHIVE],
        "extracted folder (the manual dir itself)": ["training/videos", *test],
        "extracted folder with training frames (the manual dir itself)": ["training/frames", *test],
      },
      _INSTRUCTIONS,
    )
    if layout == "archive":
      extracted = common.extract_archive(manual_dir / _ARCHIVE, dl_manager.download_dir / "extracted" / "shanghaitech")
      root = common.require_path(extracted / _ROOT, f"{_ROOT}/ inside {_ARCHIVE}", _INSTRUCTIONS)
    elif layout.endswith("(the manual dir itself)"):
      root = manual_dir
    else:
      root = manual_dir / _ROOT
    if (root / "training" / "videos").is_dir():
      train = _training_videos(root)
    else:
      train = _training_frame_folders(root)
      if "training frames" not in layout:  # An archive holding frames instead of videos.
        layout += " with training frames"
    test_videos = _test_videos(root)
    videos = {"train": train, "test": test_videos}
    common.empty_metadata(self.info.metadata, videos)
    pixel_masks = any(v.pixel_mask is not None for v in test_videos)
    self.record_source(
      layout=layout,
      labels=(
        "official test_frame_mask (frame labels)"
        + (" and test_pixel_mask (pixel masks)" if pixel_masks else "; no pixel masks (test_pixel_mask/ absent)")
      ),
    )
    return {split: self._generate_examples(split, v) for split, v in videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[_Video]):
    config: common.VideoConfig = self.builder_config
    jobs = []
    for video in videos:
      if split == "test":
        load = _test_records
      elif video.path.is_dir():
        load = _frame_folder_records
      else:
        load = _video_file_records
      jobs.append(common.VideoJob(video.name, functools.partial(load, video, config)))
    return self.split_records(split, jobs)


def _training_videos(root: epath.Path) -> list[_Video]:
  folder = root / "training" / "videos"
  videos = []
  for path in common.list_visible(folder, suffixes=(".avi",), dirs=False):
    name = path.name[: -len(".avi")]
    if not _TRAIN_NAME.fullmatch(name):
      raise ValueError(f"{path}: training videos are named <scene>_<NNN>.avi.")
    videos.append(_Video(name, path))
  if not videos:
    raise common.ManualDataError(f"No .avi videos in {folder}.")
  return videos


def _training_frame_folders(root: epath.Path) -> list[_Video]:
  folder = root / "training" / "frames"
  videos = []
  for path in common.list_visible(folder, dirs=True):
    if not _TRAIN_NAME.fullmatch(path.name):
      raise ValueError(f"{path}: training frame folders are named <scene>_<NNN>.")
    videos.append(_Video(path.name, path))
  if not videos:
    raise common.ManualDataError(f"No <scene>_<NNN> frame folders in {folder}.")
  return videos


def _test_videos(root: epath.Path) -> list[_Video]:
  testing = root / "testing"
  frame_dirs = common.list_visible(testing / "frames", dirs=True)
  if not frame_dirs:
    raise common.ManualDataError(f"No video folders in {testing / 'frames'}.")
  pixel_dir = testing / "test_pixel_mask"
  has_pixel_masks = pixel_dir.is_dir()
  videos = []
  for frame_dir in frame_dirs:
    name = frame_dir.name
    frame_mask = common.require_path(
      testing / "test_frame_mask" / f"{name}.npy", f"the frame labels of test video {name}"
    )
    pixel_mask = None
    if has_pixel_masks:
      pixel_mask = common.require_path(pixel_dir / f"{name}.npy", f"the pixel masks of test video {name}")
    videos.append(_Video(name, frame_dir, frame_mask, pixel_mask))
  names = {v.name for v in videos}
  extra = sorted(
    p.name
    for p in common.list_visible(testing / "test_frame_mask", suffixes=(".npy",))
    if p.name[: -len(".npy")] not in names
  )
  if extra:
    raise ValueError(f"{testing / 'test_frame_mask'} has labels without frames: {extra}.")
  return videos


def read_frame_labels(path: epath.PathLike, num_frames: int, video: str) -> np.ndarray:
  """``test_frame_mask/<video>.npy`` as int32 ``[num_frames]``; checks shape and values."""
  labels = np.load(os.fspath(path))
  if labels.ndim != 1:
    raise ValueError(f"{path}: frame labels should be 1-D, got shape {labels.shape}.")
  if labels.shape[0] != num_frames:
    raise common.LabelCountError(video, num_frames, labels.shape[0], os.fspath(path))
  if not np.isin(labels, (0, 1)).all():
    raise ValueError(f"{path}: frame labels should be 0 or 1, got {np.unique(labels)[:10]}.")
  return labels.astype(np.int32)


def _video_file_records(video: _Video, config: common.VideoConfig) -> Iterator[dict]:
  frames = video_lib.iter_frames(video.path, stride=config.frame_stride, size=config.frame_size)
  for frame in frames:
    yield {"frame": common.encode_frame(frame), "label": 0, "mask": b"", "has_mask": False}


def _frame_folder_records(video: _Video, config: common.VideoConfig) -> Iterator[dict]:
  files = common.numbered_files(video.path, (".jpg",), first=0)
  for i in range(0, len(files), config.frame_stride):
    frame, _ = common.image_file_frame(files[i], config.frame_size, video=video.name, index=i)
    yield {"frame": frame, "label": 0, "mask": b"", "has_mask": False}


def _test_records(video: _Video, config: common.VideoConfig) -> Iterator[dict]:
  files = common.numbered_files(video.path, (".jpg",), first=0)
  labels = read_frame_labels(video.frame_mask, len(files), video.name)
  pixel_masks = None
  if video.pixel_mask is not None:
    pixel_masks = np.load(os.fspath(video.pixel_mask), mmap_mode="r")
    _, native_shape = common.image_file_frame(files[0], None, video=video.name, index=0)
    expected = (len(files), *native_shape[:2])
    if pixel_masks.shape != expected:
      raise ValueError(
        f"{video.pixel_mask}: pixel masks of video {video.name} have shape "
        f"{pixel_masks.shape}, expected {expected} (frames, height, width)."
      )
  for i in range(0, len(files), config.frame_stride):
    frame, _ = common.image_file_frame(files[i], config.frame_size, video=video.name, index=i)
    record = {"frame": frame, "label": int(labels[i]), "mask": b"", "has_mask": False}
    if pixel_masks is not None:
      mask = common.resize_mask(np.asarray(pixel_masks[i]), config.frame_size)
      record.update(mask=common.encode_mask(mask), has_mask=True)
    yield record
