"""What every builder in ``tfds_builders/`` shares.

The record schema lives in ``docs/conventions.md``; this module is its single
implementation, so that all builders write the same keys with the same types:

* ``frame_features(...)``: the ``FeaturesDict`` of one frame record (plus optional keys).
* ``VideoConfig`` / ``variant(...)``: builder configs with ``frame_size`` and ``frame_stride``.
* ``encode_frame``, ``encode_mask``, ``resize_frame``, ``resize_mask``, ``image_file_frame``:
  how pixels become the ``frame`` / ``mask`` bytes.
* ``SplitRecords``: numbers the records of one split, writes ``metadata["videos"]`` in
  step with them and counts every skipped input in ``metadata["skipped"]``.
* ``find_layout``, ``require_path``, ``ManualDataError``, ``extract_archive``, ``list_visible``:
  reading what the user put in the manual dir, with errors that say exactly what was
  expected where.

Everything here works without TensorFlow. Two TFDS details shape it (both checked
against tensorflow-datasets 4.9.10 with TF absent, see ``docs/datasets.md``):

* Bytes are stored as a scalar ``Tensor(dtype=np.object_)`` and names as ``Text``; both
  encode and decode without TF and come back from ``as_data_source()`` as ``bytes``.
* With ``disable_shuffling=True`` TFDS sorts records by their integer key, and once a
  split passes 1 GB it spills to temporary bucket files through ``tf.io.gfile``, which
  fails without TF. ``install_tf_free_spill()`` (run on import) points that code at
  ``etils.epath`` instead, and ``SplitRecords`` spreads keys over the key space so the
  spilled records land in many small buckets instead of one split-sized one.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import itertools
import os
import resource
import shutil
import sys
import tarfile
import types
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from tensorflow_datasets.core import shuffle as tfds_shuffle

JPEG_QUALITY = 95

# Random access (``as_data_source()``, grain) without TF; pass as the builder's
# default ``file_format``.
FILE_FORMAT = "array_record"


# ------------------------------------------------------------------------ features


def _bytes_feature(doc: str) -> tfds.features.Tensor:
  return tfds.features.Tensor(shape=(), dtype=np.object_, doc=doc)


def _int_feature(doc: str) -> tfds.features.Scalar:
  return tfds.features.Scalar(dtype=np.int32, doc=doc)


# Factories rather than instances: a feature object must not be shared between
# two FeaturesDicts.
_REQUIRED_FEATURES: dict[str, Callable[[], tfds.features.FeatureConnector]] = {
  "video": lambda: tfds.features.Text(doc="Video name."),
  "video_index": lambda: _int_feature("0-based index of the video in its split."),
  "frame_index": lambda: _int_feature("0-based index of the frame in its (strided) video."),
  "frame": lambda: _bytes_feature("Encoded frame: JPEG if RGB, PNG if grayscale."),
  "label": lambda: _int_feature("1 anomalous, 0 normal, -1 not defined."),
}

OPTIONAL_FEATURES: dict[str, Callable[[], tfds.features.FeatureConnector]] = {
  "mask": lambda: _bytes_feature("PNG pixel mask (255 = anomalous), b'' if none."),
  "has_mask": lambda: tfds.features.Scalar(dtype=np.bool_, doc="Frame has a pixel mask."),
  "class_name": lambda: tfds.features.Text(doc="Class of the video."),
  "video_label": lambda: _int_feature("Label of the whole video."),
  "clip_id": lambda: tfds.features.Text(doc="Clip name."),
  "clip_label": lambda: _int_feature("Label of the whole clip."),
  "clip_index": lambda: _int_feature("0-based index of the clip in its video."),
}

REQUIRED_KEYS = tuple(_REQUIRED_FEATURES)


def frame_features(*optional: str) -> tfds.features.FeaturesDict:
  """The features of one frame record: the required keys plus the ``optional`` ones.

  Example: ``frame_features("mask", "has_mask")`` for a dataset with pixel masks.
  """
  unknown = sorted(set(optional) - set(OPTIONAL_FEATURES))
  if unknown:
    raise ValueError(f"Unknown optional keys {unknown}; known: {sorted(OPTIONAL_FEATURES)}.")
  features = {key: make() for key, make in _REQUIRED_FEATURES.items()}
  features.update({key: OPTIONAL_FEATURES[key]() for key in optional})
  return tfds.features.FeaturesDict(features)


# -------------------------------------------------------------------------- config


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """A builder config with the two settings every video builder offers.

  Attributes:
    frame_size: ``(height, width)`` every frame (and mask) is resized to, or None to
      keep the native resolution (the default, as in the literature).
    frame_stride: keep every ``frame_stride``-th frame, starting with the first; 1 keeps
      all frames (the default). Labels and masks follow the kept frames.
  """

  frame_size: tuple[int, int] | None = None
  frame_stride: int = 1

  def __post_init__(self):
    if self.frame_size is not None:
      size = tuple(int(s) for s in self.frame_size)
      if len(size) != 2 or min(size) < 1:
        raise ValueError(f"frame_size must be (height, width) > 0, got {self.frame_size!r}.")
      self.frame_size = size
    if int(self.frame_stride) < 1:
      raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride!r}.")


def variant(
  config: VideoConfig,
  *,
  frame_size: tuple[int, int] | None = None,
  frame_stride: int = 1,
  name: str | None = None,
) -> VideoConfig:
  """A copy of ``config`` with another frame size / stride, and a name that says so.

  The name (``ped2_256x256``, ``official_s2``, ...) is the folder the prepared data go
  to, so two variants never overwrite each other. Pass the result as
  ``Builder(config=...)`` both to prepare and to read.
  """
  if name is None:
    name = config.name
    if frame_size is not None:
      name += f"_{frame_size[0]}x{frame_size[1]}"
    if frame_stride != 1:
      name += f"_s{frame_stride}"
  if name == config.name and (frame_size, frame_stride) != (config.frame_size, config.frame_stride):
    raise ValueError(f"A variant of {config.name!r} needs a name of its own.")
  description = (
    (config.description or "")
    + (f" Frames resized to {frame_size}." if frame_size else "")
    + (f" Every {frame_stride}th frame." if frame_stride != 1 else "")
  )
  return dataclasses.replace(
    config,
    name=name,
    frame_size=frame_size,
    frame_stride=frame_stride,
    description=description.strip(),
  )


# ------------------------------------------------------------------------ encoding


def _as_image(array: np.ndarray) -> Image.Image:
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f"Frames must be uint8, got {array.dtype}.")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim == 2:
    return Image.fromarray(array, mode="L")
  if array.ndim == 3 and array.shape[-1] == 3:
    return Image.fromarray(array, mode="RGB")
  raise ValueError(f"Frames must be HxW or HxWx3 (or HxWx1), got shape {array.shape}.")


def encode_frame(array: np.ndarray) -> bytes:
  """uint8 HxWx3 -> JPEG (quality 95); uint8 HxW or HxWx1 -> PNG."""
  image = _as_image(array)
  buffer = io.BytesIO()
  if image.mode == "RGB":
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
  else:
    image.save(buffer, format="PNG")
  return buffer.getvalue()


def encode_mask(mask: np.ndarray) -> bytes:
  """A 2-D pixel mask (any dtype; nonzero = anomalous) -> single-channel PNG in {0, 255}."""
  mask = np.asarray(mask)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.ndim != 2:
    raise ValueError(f"A mask must be 2-D, got shape {mask.shape}.")
  image = Image.fromarray(np.where(mask != 0, 255, 0).astype(np.uint8), mode="L")
  buffer = io.BytesIO()
  image.save(buffer, format="PNG", optimize=False)
  return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
  """Encoded frame or mask -> uint8 HxW (grayscale) or HxWx3 array."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("L" if image.mode in ("L", "1", "P", "I;16") else "RGB"))


def resize_frame(array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  """Bilinear (antialiased when shrinking) resize of a uint8 frame to ``(height, width)``."""
  if size is None:
    return np.asarray(array)
  height, width = size
  array = np.asarray(array)
  if array.shape[:2] == (height, width):
    return array
  image = _as_image(array).resize((width, height), Image.Resampling.BILINEAR)
  return np.asarray(image)


def resize_mask(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  """Nearest-neighbour resize of a 2-D mask to ``(height, width)``, as uint8 {0, 1}."""
  mask = (np.asarray(mask) != 0).astype(np.uint8)
  if size is None or mask.shape[:2] == tuple(size):
    return mask
  height, width = size
  image = Image.fromarray(mask, mode="L").resize((width, height), Image.Resampling.NEAREST)
  return np.asarray(image)


class LabelCountError(ValueError):
  """The labels of a video do not cover exactly its frames."""

  def __init__(self, video: str, num_frames: int, num_labels: int, source: str):
    super().__init__(f"Video {video}: {num_frames} frames but {num_labels} frame labels in {source}.")
    self.video, self.num_frames, self.num_labels = video, num_frames, num_labels


class DecodeError(RuntimeError):
  """An input file that cannot be decoded: what ``skip_undecodable`` may skip.

  ``path`` is the file. Subclasses: ``FrameDecodeError`` (images),
  ``video.VideoDecodeError`` (videos, including frame-count mismatches).
  """

  def __init__(self, path: os.PathLike | str, message: str):
    super().__init__(message)
    self.path = os.fspath(path)


class FrameDecodeError(DecodeError):
  """An image file that cannot be read; the message names the file."""

  def __init__(self, path: os.PathLike | str, detail: str):
    super().__init__(path, f"Cannot decode image {os.fspath(path)}: {detail}")


def read_image(path: epath.PathLike) -> np.ndarray:
  """An image file (JPEG, PNG, TIFF, BMP, ...) as uint8 HxW or HxWx3."""
  try:
    with Image.open(os.fspath(path)) as image:
      image.load()
      if image.mode in ("L", "1", "P", "I;16", "I", "F"):
        if image.mode in ("I;16", "I", "F"):
          raise FrameDecodeError(path, f"unsupported {image.mode} pixels")
        return np.asarray(image.convert("L"))
      return np.asarray(image.convert("RGB"))
  except FrameDecodeError:
    raise
  except (OSError, ValueError, SyntaxError) as error:
    raise FrameDecodeError(path, str(error)) from error


def image_file_frame(path: epath.PathLike, frame_size: tuple[int, int] | None) -> tuple[bytes, tuple[int, ...]]:
  """The ``frame`` bytes for an image file, and the shape they decode to.

  An RGB JPEG kept at its native size is stored as the original bytes (no second
  lossy encoding); anything else is decoded, resized and encoded with ``encode_frame``.
  Only the header is read in the first case, so a truncated JPEG body goes unnoticed
  here and fails when the frame is decoded.
  """
  path = os.fspath(path)
  if frame_size is None:
    try:
      with Image.open(path) as image:
        if image.format == "JPEG" and image.mode == "RGB":
          width, height = image.size
          with open(path, "rb") as f:
            return f.read(), (height, width, 3)
    except (OSError, ValueError, SyntaxError) as error:
      raise FrameDecodeError(path, str(error)) from error
  array = resize_frame(read_image(path), frame_size)
  return encode_frame(array), array.shape


# -------------------------------------------------------------------- manual dir


class ManualDataError(FileNotFoundError):
  """The manual dir lacks what the builder needs; the message lists what and where."""


def is_junk(name: str) -> bool:
  """Resource forks (``._x``), ``.DS_Store`` and other dot files, backups (``x~``)."""
  return name.startswith(".") or name.endswith("~")


def list_visible(folder: epath.PathLike, *, suffixes: Sequence[str] = (), dirs: bool | None = None) -> list[epath.Path]:
  """Entries of ``folder`` sorted by name, without junk.

  Args:
    folder: the folder to list.
    suffixes: keep only names ending in one of these (case-insensitive).
    dirs: True keeps only folders, False only files, None both.
  """
  folder = epath.Path(folder)
  entries = []
  for entry in folder.iterdir():
    if is_junk(entry.name):
      continue
    if suffixes and not entry.name.lower().endswith(tuple(s.lower() for s in suffixes)):
      continue
    if dirs is not None and entry.is_dir() != dirs:
      continue
    entries.append(entry)
  return sorted(entries, key=lambda p: p.name)


def numbered_files(folder: epath.PathLike, suffixes: Sequence[str], *, first: int) -> list[epath.Path]:
  """Files named by frame number (``000.jpg``, ``001.tif``, ...) in frame order.

  Raises ``ValueError`` naming the folder when a name is not a number or the numbers
  do not run ``first, first + 1, ...`` without gaps.
  """
  files = list_visible(folder, suffixes=suffixes, dirs=False)
  numbers = []
  for path in files:
    stem = path.name.rsplit(".", 1)[0]
    if not stem.isdigit():
      raise ValueError(f"{folder}: frame file {path.name!r} is not named by a number.")
    numbers.append(int(stem))
  order = np.argsort(numbers, kind="stable")
  numbers = [numbers[i] for i in order]
  expected = list(range(first, first + len(numbers)))
  if numbers != expected:
    missing = sorted(set(expected) - set(numbers))[:10]
    raise ValueError(
      f"{folder}: frame files are not numbered {first}..{first + len(numbers) - 1} "
      f"without gaps (first missing: {missing}, found {numbers[:3]}...{numbers[-3:]})."
    )
  return [files[i] for i in order]


def require_path(path: epath.PathLike, what: str, instructions: str = "") -> epath.Path:
  """``path`` if it exists, else a ``ManualDataError`` naming ``what`` and where it belongs."""
  path = epath.Path(path)
  if not path.exists():
    message = f"Missing {what}: expected {path}"
    if instructions:
      message += "\n\n" + instructions.strip()
    raise ManualDataError(message)
  return path


def find_layout(
  root: epath.PathLike,
  layouts: Mapping[str, Sequence[str]],
  instructions: str,
) -> str:
  """The first of ``layouts`` whose paths all exist under ``root``.

  Args:
    root: usually ``dl_manager.manual_dir``.
    layouts: layout name -> paths (relative to ``root``) that layout needs.
    instructions: the builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``, repeated in the error.

  Raises:
    ManualDataError: none matches; the message lists, per layout, every path it
      needs and whether it was found.
  """
  root = epath.Path(root)
  report = []
  for name, paths in layouts.items():
    found = [(root / p).exists() for p in paths]
    if all(found):
      return name
    report.append(f"  {name}:")
    report.extend(f"    [{'found' if ok else 'MISSING'}] {root / p}" for p, ok in zip(paths, found))
  raise ManualDataError(
    f"No usable data in the manual dir {root}. One of these layouts is needed:\n"
    + "\n".join(report)
    + "\n\n"
    + instructions.strip()
  )


def extract_archive(archive: epath.PathLike, destination: epath.PathLike) -> epath.Path:
  """Extracts a zip or tar(.gz) archive into ``destination`` once, with the stdlib.

  TFDS's own extractor goes through ``tf.io.gfile``, hence this. A marker file makes a
  second call free; an interrupted extraction is redone from scratch.
  """
  archive = epath.Path(archive)
  destination = epath.Path(destination)
  marker = destination / ".extracted"
  if marker.exists():
    return destination
  if destination.exists():
    shutil.rmtree(destination)
  destination.mkdir(parents=True)
  name = archive.name.lower()
  if name.endswith(".zip"):
    with zipfile.ZipFile(os.fspath(archive)) as zf:
      zf.extractall(os.fspath(destination))
  elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
    with tarfile.open(os.fspath(archive)) as tf_archive:
      tf_archive.extractall(os.fspath(destination), filter="data")
  else:
    raise ValueError(f"Unknown archive type: {archive}")
  marker.write_text(archive.name)
  return destination


# ------------------------------------------------------------------------ records

SKIP_REASON_UNDECODABLE = "undecodable"


def empty_metadata(metadata: dict, splits: Iterable[str]) -> None:
  """Resets ``metadata["videos"]`` / ``metadata["skipped"]`` before a split is generated."""
  metadata["videos"] = {split: [] for split in splits}
  metadata["skipped"] = {"count": 0, "counts": {}, "items": []}


def record_skip(metadata: dict, split: str, name: str, reason: str, detail: str = "") -> None:
  """Adds one skipped input to ``metadata["skipped"]`` (total, count per reason, item)."""
  skipped = metadata.setdefault("skipped", {"count": 0, "counts": {}, "items": []})
  skipped["count"] += 1
  skipped["counts"][reason] = skipped["counts"].get(reason, 0) + 1
  skipped["items"].append({"split": split, "name": name, "reason": reason, "detail": detail})


def labels_from_ranges(
  ranges: Iterable[tuple[int, int]],
  num_frames: int,
  *,
  first_frame: int,
  video: str,
  source: str,
) -> np.ndarray:
  """int32 ``[num_frames]`` frame labels, 1 inside the inclusive ``ranges``.

  Args:
    ranges: ``(first, last)`` pairs, inclusive, numbered from ``first_frame``.
    num_frames: frames in the video.
    first_frame: number of the first frame in ``ranges``' numbering: 1 for MATLAB
      style (UCSD ``.m``, Avenue ``avenue.mat``), 0 for 0-based (UCF-Crime).
    video, source: named in the error.

  Raises:
    ValueError: a range is empty, starts before the first frame or ends after the
      last one; the message names the video, the range and the frame count.
  """
  labels = np.zeros(num_frames, np.int32)
  for first, last in ranges:
    first, last = int(first), int(last)
    if not first_frame <= first <= last:
      raise ValueError(f"{source}: labels for video {video} have an invalid range [{first}, {last}].")
    if last - first_frame >= num_frames:
      raise ValueError(
        f"{source}: labels for video {video} reach frame {last} (numbered from "
        f"{first_frame}) but the video has {num_frames} frames."
      )
    labels[first - first_frame : last - first_frame + 1] = 1
  return labels


def video_label(labels: Sequence[int]) -> int:
  """1 if any frame is anomalous, 0 if all are normal, -1 if none is defined."""
  labels = np.asarray(labels)
  if labels.size == 0 or np.all(labels < 0):
    return -1
  return int(np.any(labels == 1))


class SplitRecords:
  """Numbers the records of one split and keeps ``metadata["videos"][split]`` in step.

  Usage, inside ``_generate_examples``:

      records = SplitRecords(self.info.metadata, "test", num_videos=len(videos))
      for video in videos:
        yield from records.add_video(video.name, lambda: load(video),
                                     skip_undecodable=self._skip_undecodable)
      records.finish()

  ``load`` returns the frames of one video as dicts with at least ``frame`` and
  ``label`` (and any optional keys); ``add_video`` fills in ``video``, ``video_index`` and
  ``frame_index``. Frames are buffered per video so that a video that fails to
  decode half-way can be skipped whole: with ``skip_undecodable``, any ``DecodeError``
  (``video.VideoDecodeError``, ``FrameDecodeError``) is recorded in
  ``metadata["skipped"]`` and the video gets no index; otherwise it propagates.
  ``buffer=False`` streams the records of a long video instead (see ``add_video``).

  Keys: TFDS writes records sorted by key when shuffling is disabled, so the key of
  frame f of video v is ``v * spacing + f`` with ``spacing = 2**128 // num_videos``
  (order = generation order). Spreading keys over the whole 128-bit space makes
  TFDS's spill-to-disk path use one bucket per few videos instead of one bucket for
  the whole split (which it then sorts in memory).
  """

  def __init__(self, metadata: dict, split: str, *, num_videos: int):
    if "videos" not in metadata or "skipped" not in metadata:
      raise ValueError("Call empty_metadata(self.info.metadata, splits) in _split_generators.")
    self._metadata = metadata
    self._split = split
    self._videos = metadata["videos"].setdefault(split, [])
    if self._videos:
      raise ValueError(f"metadata['videos'][{split!r}] is not empty: split generated twice?")
    self._spacing = 2**128 // max(int(num_videos), 1)
    self._num_videos = max(int(num_videos), 1)
    self._num_records = 0

  @property
  def num_records(self) -> int:
    return self._num_records

  def finish(self) -> None:
    """Call after the last video: fails clearly if every video of the split was skipped.

    (TFDS would otherwise stop with a bare "No examples were yielded".)
    """
    if not self._videos:
      skipped = [i for i in self._metadata["skipped"]["items"] if i["split"] == self._split]
      raise ValueError(
        f"No video of split {self._split!r} could be used; skipped: "
        + "; ".join(f"{i['name']} ({i['reason']}: {i['detail']})" for i in skipped[:5])
      )

  def skip(self, name: str, reason: str, detail: str = "") -> None:
    record_skip(self._metadata, self._split, name, reason, detail)

  def add_video(
    self,
    name: str,
    load: Callable[[], Iterable[dict[str, Any]]],
    *,
    label: int | None = None,
    skip_undecodable: bool = False,
    buffer: bool = True,
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(key, record)`` for every frame ``load()`` gives; see the class doc.

    Args:
      name: the video name stored in ``video`` and in the metadata.
      load: returns the frame dicts (``frame``, ``label``, optional keys) in order.
      label: the video label for the metadata; by default derived from the frame
        labels with ``video_label``.
      skip_undecodable: skip (and record) a video whose frames cannot be decoded.
      buffer: hold the video's records until its last frame decoded (so that a video
        failing half-way can be skipped whole). False streams them instead, for videos
        too long to hold in memory (hours of camera footage); then only a video that
        fails before its first frame can be skipped, a later ``DecodeError`` propagates.
    """
    if not buffer:
      yield from self._stream_video(name, load, label=label, skip_undecodable=skip_undecodable)
      return
    try:
      frames = list(load())
    except DecodeError as error:
      if not skip_undecodable:
        raise
      self.skip(name, SKIP_REASON_UNDECODABLE, str(error))
      return
    if not frames:
      raise ValueError(f"Video {name!r} has no frames.")
    video_index = len(self._videos)
    if video_index >= self._num_videos:
      raise ValueError(f"More videos than the {self._num_videos} announced for {self._split!r}.")
    labels = [int(f["label"]) for f in frames]
    self._videos.append(
      {
        "name": name,
        "start": self._num_records,
        "length": len(frames),
        "label": video_label(labels) if label is None else int(label),
      }
    )
    self._num_records += len(frames)
    for frame_index, frame in enumerate(frames):
      record = {"video": name, "video_index": video_index, "frame_index": frame_index}
      record.update(frame)
      yield video_index * self._spacing + frame_index, record

  def _stream_video(
    self,
    name: str,
    load: Callable[[], Iterable[dict[str, Any]]],
    *,
    label: int | None,
    skip_undecodable: bool,
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``add_video(..., buffer=False)``: records leave as they are decoded; the video's
    metadata entry is completed after its last frame."""
    try:
      frames = iter(load())
      first = next(frames, None)
    except DecodeError as error:
      if not skip_undecodable:
        raise
      self.skip(name, SKIP_REASON_UNDECODABLE, str(error))
      return
    if first is None:
      raise ValueError(f"Video {name!r} has no frames.")
    video_index = len(self._videos)
    if video_index >= self._num_videos:
      raise ValueError(f"More videos than the {self._num_videos} announced for {self._split!r}.")
    entry = {"name": name, "start": self._num_records, "length": 0, "label": -1}
    self._videos.append(entry)
    labels = []
    for frame_index, frame in enumerate(itertools.chain([first], frames)):
      labels.append(int(frame["label"]))
      record = {"video": name, "video_index": video_index, "frame_index": frame_index}
      record.update(frame)
      yield video_index * self._spacing + frame_index, record
    entry["length"] = len(labels)
    entry["label"] = video_label(labels) if label is None else int(label)
    self._num_records += len(labels)


# --------------------------------------------------------- TF-free spill to disk


class _ResourceExhaustedError(OSError):
  """Stands in for ``tf.errors.ResourceExhaustedError`` ("Too many open files")."""


_limit_raised = False


def _open_bucket(path: epath.PathLike, mode: str):
  # TFDS keeps one file open per bucket (up to 1000); make room once.
  global _limit_raised
  if not _limit_raised:
    _limit_raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < wanted:
      resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
  try:
    return epath.Path(path).open(mode)
  except OSError as error:
    if error.errno == errno.EMFILE:
      raise _ResourceExhaustedError(str(error)) from error
    raise


_EPATH_GFILE = types.SimpleNamespace(
  io=types.SimpleNamespace(
    gfile=types.SimpleNamespace(
      GFile=_open_bucket,
      exists=lambda path: epath.Path(path).exists(),
      remove=lambda path: epath.Path(path).unlink(),
    )
  ),
  errors=types.SimpleNamespace(ResourceExhaustedError=_ResourceExhaustedError),
)


def install_tf_free_spill() -> None:
  """Makes TFDS's record shuffler spill to disk through ``etils.epath``, not TF.

  ``tensorflow_datasets.core.shuffle`` writes its temporary buckets (used once a split
  passes 1 GB) with ``tf.io.gfile``; without TensorFlow that raises
  ``ModuleNotFoundError`` half-way through a native-resolution ShanghaiTech or
  UCF-Crime build. ``epath`` opens the same paths (local, or remote through its own
  backends), so the replacement is installed whether TF is there or not.
  """
  tfds_shuffle.tf = _EPATH_GFILE


install_tf_free_spill()


# -------------------------------------------------------------------------- builder base


class FrameBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the frame-record builders: the schema of docs/conventions.md, ArrayRecord
  files, record order kept, an empty ``MetadataDict`` for ``videos``/``skipped``.

  Subclasses set ``OPTIONAL_KEYS`` (extra record keys, see ``frame_features``) and
  ``HOMEPAGE``. ``skip_undecodable``: skip (and count in ``metadata["skipped"]``)
  unreadable videos instead of stopping the build.
  """

  OPTIONAL_KEYS: tuple[str, ...] = ()
  HOMEPAGE: str | None = None

  # TFDS finds a builder's files (README.md, CITATIONS.bib, checksums, dummy_data) from
  # its module name under the top-level package's folder, which points nowhere when these
  # builders are mapped into another package (the repository's ``tfds_builders/``
  # installs as ``vad_jax.tfds_builders``). Both are taken from the module's own file.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(sys.modules[cls.__module__].__file__)

  @classmethod
  def _get_pkg_dir_path(cls) -> epath.Path:
    if cls.__dict__.get("pkg_dir_path") is None:
      cls.pkg_dir_path = cls.code_path.parent
    return cls.pkg_dir_path

  def __init__(self, *, skip_undecodable: bool = False, **kwargs):
    self._skip_undecodable = skip_undecodable
    kwargs["file_format"] = kwargs.get("file_format") or FILE_FORMAT
    super().__init__(**kwargs)

  def check_prepared_source(self, manual_dir: epath.PathLike) -> None:
    """Called on an already prepared dataset with the manual dir of the current run.

    A builder whose manual dir is the user's own (``own_videos``) raises here when the
    prepared data came from another folder; the published datasets never change, so
    the default does nothing.
    """
    del manual_dir

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=frame_features(*self.OPTIONAL_KEYS),
      homepage=self.HOMEPAGE,
      disable_shuffling=True,
      metadata=tfds.core.MetadataDict(),
    )
