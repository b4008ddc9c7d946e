"""Your own camera footage, one record per frame (``README.md`` beside this file).

The manual dir is the user's footage folder:

* ``train/``: normal footage, as video files (any container and codec FFmpeg reads, by
  extension: ``VIDEO_SUFFIXES``) and/or frame folders (a folder of images, one folder
  per video, frames in natural name order: ``f2.png`` before ``f10.png``). Every frame is
  labelled 0.
* ``test/`` (optional): footage to evaluate on, in the same forms, with optional labels
  (``labels.py``: ``labels.csv`` per frame, ``intervals.csv`` / ``intervals.txt``
  anomalous intervals). Frames without a label are -1; a test split without any label
  file is allowed (scores without metrics).

Video names are the file names without extension (or the folder names), so two files
that differ only in extension are an error, and so is a video whose frames change size
part-way (``common.FrameSizeError``, naming the file and both sizes). Files with other extensions are skipped and
listed in ``metadata["skipped"]``; a folder without images is an error (videos are not
searched for in subfolders).

Camera recordings are long; each is decoded into a temporary file one frame at a time
(``SplitRecords.add_video``), so memory does not grow with its length. A recording that
stops decoding half-way (a camera that lost power) keeps the frames before the damage,
with a line in ``metadata["notes"]``, as does a decoded frame count that disagrees with
the container's. Labels must still fall inside the frames that decode.

``metadata["source"]`` records the footage folder and a fingerprint of its files (names
and sizes); ``check_prepared_source`` refuses to reuse the prepared data for another
folder (a second camera with the same ``data_dir``) and warns when the folder's files
changed after preparation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence

import tensorflow_datasets as tfds
from etils import epath

from .. import common
from .. import video as video_lib
from . import labels as labels_lib

VIDEO_SUFFIXES = (
  ".mp4",
  ".m4v",
  ".mov",
  ".avi",
  ".mkv",
  ".webm",
  ".mpg",
  ".mpeg",
  ".ts",
  ".mts",
  ".m2ts",
  ".wmv",
  ".flv",
  ".3gp",
  ".ogv",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
SKIP_REASON_NOT_VIDEO = "not a video"

_INSTRUCTIONS = f"""\
Put your footage in the manual dir (--config.data.manual_dir=/path/to/footage):

  <manual_dir>/train/             normal activity only: the model learns what is usual
      entrance_0800.mp4           video files ({", ".join(VIDEO_SUFFIXES)})
      car_park/000001.jpg ...     and/or frame folders ({", ".join(IMAGE_SUFFIXES)}), one per video
  <manual_dir>/test/              optional: footage to evaluate on, in the same forms
      entrance_1400.mp4
      labels.csv                  optional per-frame labels:  video,frame,label
      intervals.csv               optional anomalous intervals:  video,first_frame,last_frame
        (or intervals.txt: 'video first_frame last_frame' per line, no header)

Frames are numbered from 0 in each video; a video is named by its file name, with or
without the extension. Unlabelled test frames get label -1.
"""


@dataclasses.dataclass(frozen=True)
class _Video:
  name: str
  path: epath.Path  # video file or frame folder
  relative: str  # path under the manual dir, for metadata and messages
  frames: tuple[epath.Path, ...] = ()  # a frame folder's images, in order
  labels: labels_lib.VideoLabels | None = None


def _config(name: str, size: int | None, stride: int) -> common.VideoConfig:
  parts = [
    f"{size}x{size} frames" if size else "native resolution",
    "every frame" if stride == 1 else f"one frame in {stride}",
  ]
  return common.VideoConfig(
    name=name, frame_size=(size, size) if size else None, frame_stride=stride, description=", ".join(parts) + "."
  )


class Builder(common.FrameBuilder):
  """A folder of the user's own videos: ``train/`` normal footage, optional ``test/``."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  # Square sizes match the configs' data.image_size (configs/own_videos.py), so that the
  # prepared frames are what the network sees and hours of HD footage stay small;
  # _s2 keeps every second frame (50/60 fps cameras).
  BUILDER_CONFIGS = [
    _config("default", None, 1),
    _config("s2", None, 2),
    _config("256x256", 256, 1),
    _config("256x256_s2", 256, 2),
    _config("128x128", 128, 1),
    _config("128x128_s2", 128, 2),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = _root(dl_manager.manual_dir)
    skipped: list[tuple[str, str, str]] = []
    videos = {"train": _find_videos(root, "train", skipped)}
    if (root / "test").is_dir():
      videos["test"] = _find_videos(root, "test", skipped)
      _attach_labels(root, videos["test"])
    common.empty_metadata(self.info.metadata, videos)
    for split, name, detail in skipped:
      common.record_skip(self.info.metadata, split, name, SKIP_REASON_NOT_VIDEO, detail)
    metadata = self.info.metadata
    metadata["layout"] = "train/ and test/" if "test" in videos else "train/ only"
    metadata["labels"] = _labels_description(videos.get("test", []))
    metadata["files"] = {split: [v.relative for v in split_videos] for split, split_videos in videos.items()}
    metadata["source"] = fingerprint(root)
    metadata["notes"] = []
    return {split: self._generate_examples(split, v) for split, v in videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[_Video]):
    config: common.VideoConfig = self.builder_config
    records = common.SplitRecords(self.info.metadata, split, num_videos=len(videos))
    notes = self.info.metadata["notes"]
    for video in videos:
      if video.frames:
        load = lambda video=video: _frame_folder_records(video, split, config)
      else:
        load = lambda video=video: _video_file_records(video, split, config, notes)
      yield from records.add_video(video.name, load, skip_undecodable=self._skip_undecodable)
    records.finish()

  def check_prepared_source(self, manual_dir: epath.PathLike) -> None:
    """Raises if the prepared data came from another footage folder than ``manual_dir``;
    logs a warning if the same folder's files changed since.

    Compared by fingerprint (file names and sizes), so the same footage copied or moved
    elsewhere, or named by another relative path, is accepted. A ``manual_dir`` without
    ``train/`` cannot be compared and is ignored with a warning: the prepared data are
    all that training and evaluation read.
    """
    recorded = self.info.metadata.get("source")
    if not recorded:
      return
    folder = epath.Path(manual_dir).expanduser()
    if not (folder / "train").is_dir():
      logging.warning(
        "data.manual_dir=%s has no train/ folder to compare with the data prepared in %s; using those as prepared",
        manual_dir,
        self.data_dir,
      )
      return
    current = fingerprint(folder)
    if current["digest"] == recorded["digest"]:
      return
    if current["manual_dir"] == recorded["manual_dir"]:
      logging.warning(
        "the footage in %s changed since it was prepared into %s (%d files then, %d now); training and evaluation "
        "read the data as prepared. To use the footage as it is now, delete %s or set another data.data_dir.",
        folder,
        self.data_dir,
        recorded["files"],
        current["files"],
        self.data_dir,
      )
      return
    raise PreparedFromOtherFootageError(
      f"The data in {self.data_dir} were prepared from the footage in {recorded['manual_dir']} "
      f"({recorded['files']} files), not from data.manual_dir={os.fspath(manual_dir)} ({current['files']} files, "
      f"different ones). Give each footage folder a data directory of its own "
      f"(--config.data.data_dir=/path/to/tfds_cam2), or delete {self.data_dir} to prepare this footage there instead."
    )


class PreparedFromOtherFootageError(ValueError):
  """The prepared data in ``data_dir`` came from another footage folder."""


# --------------------------------------------------------------------- finding videos


def _root(manual_dir: epath.Path) -> epath.Path:
  manual_dir = epath.Path(manual_dir)
  if not (manual_dir / "train").is_dir() and manual_dir.is_dir():
    loose = common.list_visible(manual_dir, suffixes=VIDEO_SUFFIXES, dirs=False)
    if loose:
      raise common.ManualDataError(
        f"No train/ folder in {manual_dir}, but {len(loose)} videos directly in it ({loose[0].name}, ...): "
        f"put normal footage in {manual_dir / 'train'} (and footage to evaluate on in {manual_dir / 'test'}).\n\n"
        + _INSTRUCTIONS
      )
  common.find_layout(manual_dir, {"own footage": ["train"]}, _INSTRUCTIONS)
  return manual_dir


def natural_key(name: str) -> tuple:
  """Sort key that orders embedded numbers by value: ``f2.png`` before ``f10.png``."""
  return tuple((0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name))


def frame_files(folder: epath.Path) -> list[epath.Path]:
  """The images of a frame folder in natural name order."""
  return sorted(common.list_visible(folder, suffixes=IMAGE_SUFFIXES, dirs=False), key=lambda p: natural_key(p.name))


def _find_videos(root: epath.Path, split: str, skipped: list[tuple[str, str, str]]) -> list[_Video]:
  folder = root / split
  videos: dict[str, _Video] = {}
  for entry in common.list_visible(folder):
    relative = f"{split}/{entry.name}"
    if entry.is_dir():
      files = frame_files(entry)
      if not files:
        raise common.ManualDataError(
          f"{entry} holds no frame images ({', '.join(IMAGE_SUFFIXES)}): a folder in {split}/ is one video as a "
          f"folder of frames; video files go directly into {split}/ (subfolders are not searched for videos)."
        )
      video = _Video(entry.name, entry, relative, tuple(files))
    elif entry.name.lower().endswith(VIDEO_SUFFIXES):
      video = _Video(entry.name.rsplit(".", 1)[0], entry, relative)
    else:
      if entry.name in labels_lib.LABEL_FILES and split == "train":
        raise ValueError(
          f"{entry}: training footage is taken as normal throughout; frame labels belong in {root / 'test'}."
        )
      if not (split == "test" and entry.name in labels_lib.LABEL_FILES):
        skipped.append((split, relative, f"not a video file ({', '.join(VIDEO_SUFFIXES)}) or frame folder"))
      continue
    if video.name in videos:
      raise ValueError(
        f"{videos[video.name].path} and {entry} would both be video {video.name!r} of {split}/; rename one."
      )
    videos[video.name] = video
  if not videos:
    others = [r for s, r, _ in skipped if s == split]
    raise common.ManualDataError(
      f"No videos in {folder}"
      + (f" (skipped, not videos: {', '.join(others[:5])})" if others else "")
      + ".\n\n"
      + _INSTRUCTIONS
    )
  return sorted(videos.values(), key=lambda v: v.name)


def _attach_labels(root: epath.Path, videos: list[_Video]) -> None:
  """Reads the label files of ``test/`` into ``videos`` (in place) and checks what can be
  checked before decoding: frame folders' frame counts, video containers' counts."""
  names = {}
  for video in videos:
    names[video.name] = video.name
    names[video.path.name] = video.name
  given = labels_lib.read_test_labels(root / "test", names)
  for i, video in enumerate(videos):
    if video.name not in given:
      continue
    video_labels = given[video.name]
    if video.frames:
      video_labels.check_within(len(video.frames), video.name, "frame images")
    else:
      info = video_lib.probe(video.path)
      if info.num_frames and not info.estimated:
        last, _ = video_labels.last_frame()
        if last >= info.num_frames + video_lib.count_tolerance(info.num_frames):
          video_labels.check_within(info.num_frames, video.name, "frames, as its container reports")
    videos[i] = dataclasses.replace(video, labels=video_labels)


def _labels_description(videos: Sequence[_Video]) -> str:
  files = sorted({os.path.basename(v.labels.path) for v in videos if v.labels})
  labelled = sum(v.labels is not None for v in videos)
  if not videos:
    return "no test split: train/ holds normal footage (label 0)"
  if not labelled:
    return "train/ normal (label 0); test/ unlabelled (-1): scores without metrics"
  return (
    f"train/ normal (label 0); test/: {labelled} of {len(videos)} videos labelled by {', '.join(files)} "
    f"(frames without a label: -1)"
  )


def fingerprint(root: epath.PathLike) -> dict:
  """The footage folder (resolved), its file count and a digest of every file's path
  under ``train/`` and ``test/`` (one level of frame folders) and size."""
  root = epath.Path(root)
  digest = hashlib.sha256()
  count = 0
  for split in ("train", "test"):
    folder = root / split
    if not folder.is_dir():
      continue
    for entry in common.list_visible(folder):
      files = common.list_visible(entry, dirs=False) if entry.is_dir() else [entry]
      for path in files:
        relative = f"{split}/{entry.name}" + (f"/{path.name}" if entry.is_dir() else "")
        digest.update(f"{relative}\0{path.stat().length}\n".encode())
        count += 1
  return {"manual_dir": os.path.realpath(os.fspath(root)), "files": count, "digest": digest.hexdigest()}


# ------------------------------------------------------------------------- records


def _label_of(video: _Video, split: str, frame: int) -> int:
  if split == "train":
    return 0
  return video.labels.label(frame) if video.labels else -1


def _frame_folder_records(video: _Video, split: str, config: common.VideoConfig) -> Iterator[dict]:
  """A frame folder's frames; a frame of another size than the first stops the
  preparation (``common.FrameSizeError`` naming the file and both sizes)."""
  first_size = None
  for i in range(0, len(video.frames), config.frame_stride):
    size = common.image_size(video.frames[i])
    if size is not None:
      first_size = common.check_frame_size(
        first_size, size, str(video.frames[i]), "resize the frames to one size, or split the folder where it changes"
      )
    frame, _ = common.image_file_frame(video.frames[i], config.frame_size, video=video.relative, index=i)
    yield {"frame": frame, "label": _label_of(video, split, i)}


def _video_file_records(video: _Video, split: str, config: common.VideoConfig, notes: list) -> Iterator[dict]:
  """Decodes one video file. A decoding error after the first frame ends the video
  there (noted); a decoded count that disagrees with the container's is noted."""
  stride = config.frame_stride
  frames = video_lib.iter_frames(video.path, stride=stride, size=config.frame_size, one_size=True)
  kept = 0
  try:
    while True:
      try:
        frame = next(frames)
      except StopIteration as stop:
        decoded = stop.value
        break
      yield {"frame": common.encode_frame(frame), "label": _label_of(video, split, kept * stride)}
      kept += 1
  except video_lib.FrameCountError as error:
    decoded = error.decoded
    _note(notes, f"{video.relative}: decoded {error.decoded} frames, its container reports {error.reported}")
  except video_lib.VideoDecodeError as error:
    if kept == 0:
      raise
    decoded = (kept - 1) * stride + 1  # at least
    _note(notes, f"{video.relative}: {error.detail}; kept the {kept} frames before the damage")
  if video.labels is not None:
    video.labels.check_within(decoded, video.name, "decodable frames")


def _note(notes: list, text: str) -> None:
  logging.warning("own_videos: %s", text)
  notes.append(text)
