"""What every builder in ``tfds_builders/`` shares.

The record schema lives in ``docs/conventions.md``; this module is its single
implementation, so that all builders write the same keys with the same types:

* ``frame_features(...)``: the ``FeaturesDict`` of one frame record (plus optional keys).
* ``VideoConfig`` / ``variant(...)``: builder configs with ``frame_size`` and ``frame_stride``.
* ``encode_frame``, ``encode_mask``, ``resize_frame``, ``resize_mask``, ``image_file_frame``:
  how pixels become the ``frame`` / ``mask`` bytes (every input frame fully decoded, so
  a damaged one fails while preparing, ``FrameDecodeError`` naming file, video, frame).
* ``VideoJob`` / ``SplitRecords``: turn videos into the records of one split with one
  frame in memory at a time, in this process or in ``num_workers`` worker processes,
  keep ``metadata["videos"]`` in step with them, count every skipped input in
  ``metadata["skipped"]`` and per split in ``metadata["counts"]``; an all-skipped split
  is an ``EmptySplitError``.
* ``FrameBuilder``: the base of the builders; writes splits through an append-only
  spool (constant memory), locally or on Apache Beam.
* ``find_layout``, ``require_path``, ``ManualDataError``, ``extract_archive``
  (``ArchiveError``), ``list_visible``, ``read_interval_mat``: reading what the user put
  in the manual dir, with errors that say exactly what was expected where.

Everything here works without TensorFlow. Two TFDS details shape it (both checked
against tensorflow-datasets 4.9.10 with TF absent, see ``docs/datasets.md``):

* Bytes are stored as a scalar ``Tensor(dtype=np.object_)`` and names as ``Text``; both
  encode and decode without TF and come back from ``as_data_source()`` as ``bytes``.
* TFDS's own writer keeps a split in memory up to 1 GB and then spills it to bucket
  files through ``tf.io.gfile``, which fails without TF. The frame builders do not use
  it (``FrameBuilder._write_split``); ``install_tf_free_spill()`` (run on import) still
  points that code at ``etils.epath`` for any other builder in the process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import errno
import io
import itertools
import json
import lzma
import multiprocessing
import os
import pickle
import resource
import shutil
import signal
import sys
import tarfile
import tempfile
import types
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from tensorflow_datasets.core import example_serializer
from tensorflow_datasets.core import shuffle as tfds_shuffle
from tensorflow_datasets.core import split_builder as split_builder_lib
from tensorflow_datasets.core import writer as writer_lib
from tensorflow_datasets.core.utils import shard_utils
from tensorflow_datasets.core.utils.lazy_imports_utils import apache_beam as beam

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


def _rebuild_error(cls: type, args: tuple, state: dict) -> BaseException:
  error = cls.__new__(cls, *args)
  error.args = args
  error.__dict__.update(state)
  return error


class _PicklableError:
  """Exceptions with their own ``__init__`` signature that still cross process boundaries.

  ``pickle`` rebuilds an exception as ``cls(*args)``, which fails for the classes below;
  a worker process of the parallel preparation (``SplitRecords.add_videos``) sends them
  to the parent, so they pickle their ``args`` and attributes instead.
  """

  def __reduce__(self):
    return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class LabelCountError(_PicklableError, ValueError):
  """The labels of a video do not cover exactly its frames."""

  def __init__(self, video: str, num_frames: int, num_labels: int, source: str):
    super().__init__(f"Video {video}: {num_frames} frames but {num_labels} frame labels in {source}.")
    self.video, self.num_frames, self.num_labels = video, num_frames, num_labels


class DecodeError(_PicklableError, RuntimeError):
  """An input file that cannot be decoded: what ``skip_undecodable`` may skip.

  ``path`` is the file. Subclasses: ``FrameDecodeError`` (images),
  ``video.VideoDecodeError`` (videos, including frame-count mismatches).
  """

  def __init__(self, path: os.PathLike | str, message: str):
    super().__init__(message)
    self.path = os.fspath(path)


class FrameDecodeError(DecodeError):
  """An image file that cannot be read; the message names the file (and its video and
  frame index when the caller gives them)."""

  def __init__(self, path: os.PathLike | str, detail: str, *, video: str | None = None, index: int | None = None):
    parts = [f"video {video}"] if video is not None else []
    if index is not None:
      parts.append(f"frame {index}")
    where = f" ({', '.join(parts)})" if parts else ""
    super().__init__(path, f"Cannot decode image {os.fspath(path)}{where}: {detail}")
    self.detail, self.video, self.index = detail, video, index


class FrameSizeError(_PicklableError, ValueError):
  """A video whose frames change size part-way: ``where`` is the video file (with the
  frame's index) or the frame file, ``size`` and ``first_size`` are ``(width, height)``."""

  def __init__(self, where: str, size: tuple[int, int], first_size: tuple[int, int], remedy: str):
    super().__init__(
      f"{where} is {size[0]}x{size[1]} pixels (width x height) but the frames before it are "
      f"{first_size[0]}x{first_size[1]}: every frame of a video must have one size ({remedy})"
    )
    self.where, self.size, self.first_size = where, size, first_size


def check_frame_size(
  first_size: tuple[int, int] | None, size: tuple[int, int], where: str, remedy: str
) -> tuple[int, int]:
  """``first_size`` (or ``size`` for a video's first frame); ``FrameSizeError`` when a
  later frame's ``(width, height)`` differs."""
  if first_size is not None and tuple(size) != tuple(first_size):
    raise FrameSizeError(where, tuple(size), tuple(first_size), remedy)
  return tuple(first_size or size)


def image_size(path: epath.PathLike) -> tuple[int, int] | None:
  """``(width, height)`` from an image file's header (nothing decoded); ``None`` when it
  does not open (decoding it reports why)."""
  try:
    with Image.open(os.fspath(path)) as image:
      return image.size
  except _PIL_ERRORS:
    return None


_PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def read_image(path: epath.PathLike, *, video: str | None = None, index: int | None = None) -> np.ndarray:
  """An image file (JPEG, PNG, TIFF, BMP, ...) as uint8 HxW or HxWx3, fully decoded.

  ``video`` and ``index`` (the frame's index in its video) are only named in the error.
  """
  try:
    with Image.open(os.fspath(path)) as image:
      image.load()
      if image.mode in ("L", "1", "P", "I;16", "I", "F"):
        if image.mode in ("I;16", "I", "F"):
          raise FrameDecodeError(path, f"unsupported {image.mode} pixels", video=video, index=index)
        return np.asarray(image.convert("L"))
      return np.asarray(image.convert("RGB"))
  except FrameDecodeError:
    raise
  except _PIL_ERRORS as error:
    raise FrameDecodeError(path, str(error), video=video, index=index) from error


def image_file_frame(
  path: epath.PathLike,
  frame_size: tuple[int, int] | None,
  *,
  video: str | None = None,
  index: int | None = None,
) -> tuple[bytes, tuple[int, ...]]:
  """The ``frame`` bytes for an image file, and the shape they decode to.

  An RGB JPEG kept at its native size is stored as the original bytes (no second
  lossy encoding); anything else is decoded, resized and encoded with ``encode_frame``.
  Either way the file is decoded completely first, so a truncated or damaged file fails
  here, while the dataset is prepared, with a ``FrameDecodeError`` naming the file and
  (when given) its ``video`` and frame ``index``, and not later in training.
  """
  path = os.fspath(path)
  if frame_size is None:
    try:
      with Image.open(path) as image:
        if image.format == "JPEG" and image.mode == "RGB":
          width, height = image.size
          image.load()  # Decodes every scan: a truncated body raises here.
          with open(path, "rb") as f:
            return f.read(), (height, width, 3)
    except _PIL_ERRORS as error:
      raise FrameDecodeError(path, str(error), video=video, index=index) from error
  array = resize_frame(read_image(path, video=video, index=index), frame_size)
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


class ArchiveError(ValueError):
  """An archive in the manual dir that cannot be read or extracted; names the file."""

  def __init__(self, archive: os.PathLike | str, detail: str):
    archive = os.fspath(archive)
    try:
      size = f"{os.path.getsize(archive):,} bytes"
    except OSError:
      size = "size unknown"
    super().__init__(
      f"Cannot extract the archive {archive} ({size}): {detail}. The file is damaged or was not downloaded "
      "completely; download it again, or extract it yourself and put the extracted folder in the manual dir."
    )
    self.archive = archive


def extract_archive(archive: epath.PathLike, destination: epath.PathLike) -> epath.Path:
  """Extracts a zip or tar(.gz) archive into ``destination`` once, with the stdlib.

  TFDS's own extractor goes through ``tf.io.gfile``, hence this. A marker file makes a
  second call free; an interrupted extraction is redone from scratch. A damaged archive
  (not a zip, truncated, bad CRC, ...) raises ``ArchiveError`` naming the file, and the
  partial extraction is removed.
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
  try:
    if name.endswith(".zip"):
      with zipfile.ZipFile(os.fspath(archive)) as zf:
        zf.extractall(os.fspath(destination))
    elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
      with tarfile.open(os.fspath(archive)) as tf_archive:
        tf_archive.extractall(os.fspath(destination), filter="data")
    else:
      raise ValueError(f"Unknown archive type: {archive}")
  except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as error:
    shutil.rmtree(destination, ignore_errors=True)
    if isinstance(error, OSError) and not isinstance(error, (EOFError, zipfile.BadZipFile)):
      if error.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS):
        raise  # The destination, not the archive, is the problem.
    raise ArchiveError(archive, f"{type(error).__name__}: {error}") from error
  marker.write_text(archive.name)
  return destination


# ------------------------------------------------------------------------ records

SKIP_REASON_UNDECODABLE = "undecodable"


def empty_metadata(metadata: dict, splits: Iterable[str]) -> None:
  """Resets ``metadata["videos"]`` / ``metadata["skipped"]`` / ``metadata["counts"]`` before
  the splits are generated."""
  metadata["videos"] = {split: [] for split in splits}
  metadata["skipped"] = {"count": 0, "counts": {}, "items": []}
  metadata["counts"] = {"splits": {}, "inputs": {}}


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


def read_interval_mat(path: epath.PathLike, variable: str = "gt") -> list[np.ndarray]:
  """Per test video, the ``(2, K)`` int array of 1-based inclusive ``[start; end]``
  intervals in the cell array ``variable`` of a ``.mat`` file.

  The format of the pre-extracted frame releases' ``avenue.mat`` / ``ped1.mat`` /
  ``ped2.mat`` (cells of ``2 x K`` doubles; a ``2``-vector is one interval). Anything
  else is a ``ValueError`` naming the file, the video and what was found.
  """
  path = os.fspath(path)
  data = scipy.io.loadmat(path)
  if variable not in data:
    found = sorted(k for k in data if not k.startswith("__"))
    raise ValueError(f"{path}: no variable {variable!r} (variables: {found}).")
  cells = np.asarray(data[variable])
  if cells.dtype != object:
    raise ValueError(f"{path}: {variable} should be a cell array, got {cells.dtype} {cells.shape}.")
  intervals = []
  for v, cell in enumerate(cells.ravel()):
    cell = np.asarray(cell, dtype=np.float64)
    if cell.size == 0:
      cell = np.zeros((2, 0))
    if cell.ndim == 1 and cell.shape[0] == 2:
      cell = cell[:, None]
    if cell.ndim != 2 or cell.shape[0] != 2 or np.any(cell != np.round(cell)):
      raise ValueError(f"{path}: {variable} of video {v + 1} should be 2 x K integers, got {cell.shape}.")
    intervals.append(cell.astype(np.int64))
  return intervals


def video_label(labels: Sequence[int]) -> int:
  """1 if any frame is anomalous, 0 if all are normal, -1 if none is defined."""
  labels = np.asarray(labels)
  if labels.size == 0 or np.all(labels < 0):
    return -1
  return int(np.any(labels == 1))


@dataclasses.dataclass(frozen=True)
class VideoJob:
  """One video to turn into records.

  Attributes:
    name: the video name stored in ``video`` and in the metadata.
    load: returns (or yields) the frame dicts of the video in order: ``frame``,
      ``label`` and any optional keys. For ``num_workers > 1`` it must pickle: a
      module-level function or a ``functools.partial`` of one (not a lambda).
    label: the video label for the metadata; None derives it from the frame labels
      with ``video_label``.
  """

  name: str
  load: Callable[[], Iterable[dict[str, Any]]]
  label: int | None = None


class EmptySplitError(ValueError):
  """A split ended up without a single record; the message names what was skipped."""


class _FrameSpool:
  """The frame dicts of one video in a temporary file, written and read one at a time.

  A video is decoded completely into its spool before any of its records is handed to
  TFDS, so that a video failing half-way can still be skipped whole, while memory holds
  one frame at a time however long the video is.
  """

  def __init__(self, path: epath.PathLike):
    self.path = epath.Path(path)

  def fill(self, frames: Iterable[dict[str, Any]]) -> tuple[int, np.ndarray]:
    """Writes ``frames``; returns their number and their labels (int8)."""
    labels = bytearray()
    with self.path.open("wb") as f:
      for frame in frames:
        pickle.dump(frame, f, protocol=pickle.HIGHEST_PROTOCOL)
        labels.append(int(frame["label"]) & 0xFF)
    return len(labels), np.frombuffer(bytes(labels), np.int8).copy()

  def __iter__(self) -> Iterator[dict[str, Any]]:
    with self.path.open("rb") as f:
      while True:
        try:
          yield pickle.load(f)
        except EOFError:
          return

  def delete(self) -> None:
    with contextlib.suppress(FileNotFoundError):
      self.path.unlink()


@dataclasses.dataclass
class _Spooled:
  num_frames: int
  labels: np.ndarray  # int8 frame labels


def _spool_video(load: Callable[[], Iterable[dict[str, Any]]], path: epath.PathLike) -> _Spooled:
  """Decodes one video into the spool at ``path`` (in this process or a worker)."""
  num_frames, labels = _FrameSpool(path).fill(load())
  return _Spooled(num_frames, labels)


def _worker_init() -> None:
  # A worker that outlives a parent killed without cleanup would keep decoding: let the
  # kernel end it with its parent (Linux only; elsewhere the executor's own checks do).
  with contextlib.suppress(Exception):
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_pool(num_workers: int) -> concurrent.futures.ProcessPoolExecutor:
  """Worker processes for ``SplitRecords.add_videos``, started with ``spawn`` (safe in a
  process that has started threads, e.g. JAX's)."""
  return concurrent.futures.ProcessPoolExecutor(
    max_workers=num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
  )


class SplitRecords:
  """Numbers the records of one split and keeps ``metadata["videos"][split]`` in step.

  Usage, inside ``_generate_examples`` (``FrameBuilder.split_records`` does this):

      records = SplitRecords(self.info.metadata, "test", num_videos=len(videos))
      jobs = [VideoJob(v.name, functools.partial(load, v, config)) for v in videos]
      yield from records.add_videos(jobs, skip_undecodable=..., num_workers=...)

  ``load`` returns the frames of one video as dicts with at least ``frame`` and
  ``label`` (and any optional keys); the records get ``video``, ``video_index`` and
  ``frame_index`` added. Each video is first decoded into a temporary file (one frame in
  memory at a time), then its records are handed on: so a video that fails to decode
  half-way can be skipped whole. With ``skip_undecodable``, any ``DecodeError``
  (``video.VideoDecodeError``, ``FrameDecodeError``) is recorded in
  ``metadata["skipped"]`` and the video gets no index; otherwise it propagates.

  ``num_workers > 1`` decodes videos in that many worker processes (at most two videos
  ahead per worker); records, keys and metadata are exactly those of ``num_workers=1``,
  because the parent hands them on in video order.

  Keys: records are written in key order, so the key of frame f of video v is
  ``v * spacing + f`` with ``spacing = 2**128 // num_videos`` (order = generation
  order). Spreading keys over the whole 128-bit space also spreads videos over the
  shards of TFDS's Beam writer, which assigns shards by key range.

  ``metadata["counts"]["splits"][split]`` counts videos, frames, anomalous (label 1),
  normal (0) and unlabelled (-1) frames, and videos skipped as undecodable here (inputs
  skipped before decoding, e.g. missing files, are counted by the builders).
  """

  def __init__(self, metadata: dict, split: str, *, num_videos: int, spool_dir: str | None = None):
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
    self._spool_dir = spool_dir
    counts = metadata.setdefault("counts", {}).setdefault("splits", {})
    self._counts = counts[split] = {
      "videos": 0,
      "frames": 0,
      "anomalous_frames": 0,
      "normal_frames": 0,
      "unlabelled_frames": 0,
      "skipped_undecodable": 0,
    }

  @property
  def num_records(self) -> int:
    return self._num_records

  def finish(self) -> None:
    """Call after the last video (``add_videos`` does): fails clearly if every video of the
    split was skipped. (TFDS would otherwise stop with a bare "No examples were yielded".)
    """
    if not self._videos:
      raise EmptySplitError(empty_split_message(self._metadata, self._split))

  def skip(self, name: str, reason: str, detail: str = "") -> None:
    record_skip(self._metadata, self._split, name, reason, detail)
    self._counts["skipped_undecodable"] += 1

  def add_video(
    self,
    name: str,
    load: Callable[[], Iterable[dict[str, Any]]],
    *,
    label: int | None = None,
    skip_undecodable: bool = False,
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields ``(key, record)`` for every frame ``load()`` gives; see the class doc.

    Args:
      name: the video name stored in ``video`` and in the metadata.
      load: returns the frame dicts (``frame``, ``label``, optional keys) in order.
      label: the video label for the metadata; by default derived from the frame
        labels with ``video_label``.
      skip_undecodable: skip (and record) a video whose frames cannot be decoded.
    """
    with tempfile.TemporaryDirectory(prefix="vad_jax_video_", dir=self._spool_dir) as folder:
      path = os.path.join(folder, "frames.pkl")
      try:
        spooled = _spool_video(load, path)
      except DecodeError as error:
        if not skip_undecodable:
          raise
        self.skip(name, SKIP_REASON_UNDECODABLE, str(error))
        return
      yield from self._emit(VideoJob(name, load, label), spooled, _FrameSpool(path))

  def add_videos(
    self,
    jobs: Iterable[VideoJob],
    *,
    skip_undecodable: bool = False,
    num_workers: int = 1,
    pool: concurrent.futures.Executor | None = None,
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``add_video`` for every job in order, then ``finish()``.

    ``num_workers > 1`` decodes in worker processes (``spawn``: nothing of the parent but
    the pickled ``load`` reaches them; ``worker_pool``) and gives the same records as one
    worker. ``pool``: such a pool to use (and leave running), e.g. one per preparation
    shared by its splits; by default one is started and shut down here.
    """
    jobs = list(jobs)
    if num_workers <= 1 or len(jobs) <= 1:
      for job in jobs:
        yield from self.add_video(job.name, job.load, label=job.label, skip_undecodable=skip_undecodable)
    else:
      own = pool is None
      pool = pool or worker_pool(num_workers)
      try:
        yield from self._add_videos_in_parallel(jobs, skip_undecodable, num_workers, pool)
      finally:
        if own:
          pool.shutdown(wait=True, cancel_futures=True)
    self.finish()

  def _add_videos_in_parallel(
    self, jobs: Sequence[VideoJob], skip_undecodable: bool, num_workers: int, pool: concurrent.futures.Executor
  ) -> Iterator[tuple[int, dict[str, Any]]]:
    folder = tempfile.mkdtemp(prefix="vad_jax_videos_", dir=self._spool_dir)
    pending: collections.deque = collections.deque()
    remaining = iter(enumerate(jobs))

    def submit_next() -> None:
      for index, job in remaining:
        path = os.path.join(folder, f"{index:08d}.pkl")
        pending.append((job, path, pool.submit(_spool_video, job.load, path)))
        return

    try:
      for _ in range(2 * num_workers):
        submit_next()
      while pending:
        job, path, future = pending.popleft()
        try:
          spooled = future.result()
        except DecodeError as error:
          if not skip_undecodable:
            raise
          self.skip(job.name, SKIP_REASON_UNDECODABLE, str(error))
          continue
        finally:
          submit_next()
        spool = _FrameSpool(path)
        try:
          yield from self._emit(job, spooled, spool)
        finally:
          spool.delete()
    finally:
      for _, _, future in pending:
        future.cancel()
      concurrent.futures.wait([future for _, _, future in pending])
      shutil.rmtree(folder, ignore_errors=True)

  def _emit(self, job: VideoJob, spooled: _Spooled, spool: _FrameSpool) -> Iterator[tuple[int, dict[str, Any]]]:
    video_index = self.add_kept(job.name, job.label, spooled)
    yield from _spooled_records(job.name, video_index, self._spacing, spool)

  def add_kept(self, name: str, label: int | None, spooled: _Spooled) -> int:
    """Enters one decoded video in the metadata and counts; returns its ``video_index``."""
    if not spooled.num_frames:
      raise ValueError(f"Video {name!r} has no frames.")
    video_index = len(self._videos)
    if video_index >= self._num_videos:
      raise ValueError(f"More videos than the {self._num_videos} announced for {self._split!r}.")
    labels = spooled.labels
    self._videos.append(
      {
        "name": name,
        "start": self._num_records,
        "length": spooled.num_frames,
        "label": video_label(labels) if label is None else int(label),
      }
    )
    self._num_records += spooled.num_frames
    self._counts["videos"] += 1
    self._counts["frames"] += spooled.num_frames
    self._counts["anomalous_frames"] += int(np.sum(labels == 1))
    self._counts["normal_frames"] += int(np.sum(labels == 0))
    self._counts["unlabelled_frames"] += int(np.sum(labels < 0))
    return video_index


def _spooled_records(
  name: str, video_index: int, spacing: int, spool: _FrameSpool
) -> Iterator[tuple[int, dict[str, Any]]]:
  for frame_index, frame in enumerate(spool):
    record = {"video": name, "video_index": video_index, "frame_index": frame_index}
    record.update(frame)
    yield video_index * spacing + frame_index, record


class SplitJobs:
  """The video jobs of one split (``FrameBuilder.split_records``).

  Iterating gives the ``(key, record)`` pairs (``SplitRecords.add_videos`` in this process
  and its workers); an Apache Beam preparation reads ``jobs`` and decodes them on the
  pipeline's workers instead (``FrameBuilder._generate_splits_with_beam``).
  """

  def __init__(self, builder: FrameBuilder, split: str, jobs: Iterable[VideoJob]):
    self.builder, self.split, self.jobs = builder, split, list(jobs)

  def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
    builder = self.builder
    records = SplitRecords(builder.info.metadata, self.split, num_videos=len(self.jobs))
    yield from records.add_videos(
      self.jobs,
      skip_undecodable=builder._skip_undecodable,
      num_workers=builder._num_workers,
      pool=builder._worker_pool(),
    )


# ------------------------------------------------------------------- Apache Beam
#
# A video's ``video_index`` (in every record and in ``metadata["videos"]``) counts the
# videos kept before it, which a worker cannot know while others decode. So a split is
# three steps: every worker decodes its videos into spool files on the (shared) data
# dir and returns a summary; one step orders the summaries and numbers the kept videos
# (the plan, also written as JSON for the driver's metadata); then the spool files are
# turned into records with their final keys for TFDS's BeamWriter.


def _beam_spool(item: tuple[int, VideoJob], folder: str, skip_undecodable: bool) -> dict[str, Any]:
  index, job = item
  path = epath.Path(folder) / f"{index:08d}.pkl"
  summary = {"index": index, "name": job.name, "label": job.label, "path": os.fspath(path), "error": None}
  try:
    spooled = _spool_video(job.load, path)
  except DecodeError as error:
    if not skip_undecodable:
      raise
    _FrameSpool(path).delete()
    return dict(summary, error=str(error))
  return dict(summary, num_frames=spooled.num_frames, labels=spooled.labels.tobytes())


def _beam_plan(summaries: list[dict[str, Any]], split: str, num_videos: int, folder: str) -> dict[str, Any]:
  """Numbers the kept videos in job order, as ``SplitRecords`` does; writes the plan."""
  metadata: dict[str, Any] = {"videos": {split: []}, "skipped": {"count": 0, "counts": {}, "items": []}}
  records = SplitRecords(metadata, split, num_videos=num_videos)
  indices = {}
  for summary in sorted(summaries, key=lambda s: s["index"]):
    if summary["error"] is not None:
      records.skip(summary["name"], SKIP_REASON_UNDECODABLE, summary["error"])
      continue
    spooled = _Spooled(summary["num_frames"], np.frombuffer(summary["labels"], np.int8))
    indices[summary["index"]] = records.add_kept(summary["name"], summary["label"], spooled)
  plan = {
    "videos": metadata["videos"][split],
    "skipped": metadata["skipped"]["items"],
    "counts": metadata["counts"]["splits"][split],
    "video_index": {str(k): v for k, v in indices.items()},
    "spacing": str(2**128 // max(num_videos, 1)),
  }
  (epath.Path(folder) / "plan.json").write_text(json.dumps(plan))
  if not indices:
    raise EmptySplitError(empty_split_message(metadata, split))
  return plan


def _beam_records(summary: dict[str, Any], plan: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
  if summary["error"] is not None:
    return
  spool = _FrameSpool(summary["path"])
  video_index = plan["video_index"][str(summary["index"])]
  yield from _spooled_records(summary["name"], video_index, int(plan["spacing"]), spool)
  spool.delete()


def _beam_split(pipeline, split: str, jobs: Sequence[VideoJob], folder: epath.Path, skip_undecodable: bool):
  """The ``(key, record)`` PCollection of one split (see the note above)."""
  summaries = (
    pipeline
    | f"{split}_jobs" >> beam.Create(list(enumerate(jobs)))
    | f"{split}_reshuffle" >> beam.Reshuffle()  # spread the videos over the workers
    | f"{split}_decode" >> beam.Map(_beam_spool, folder=os.fspath(folder), skip_undecodable=skip_undecodable)
  )
  plan = (
    summaries
    | f"{split}_summaries" >> beam.combiners.ToList()
    | f"{split}_plan" >> beam.Map(_beam_plan, split=split, num_videos=len(jobs), folder=os.fspath(folder))
  )
  return summaries | f"{split}_records" >> beam.FlatMap(_beam_records, plan=beam.pvalue.AsSingleton(plan))


def empty_split_message(metadata: Mapping[str, Any], split: str) -> str:
  """Why split ``split`` has no record: the inputs skipped for it, by reason and name."""
  skipped = [i for i in metadata.get("skipped", {}).get("items", []) if i["split"] == split]
  if not skipped:
    return f"No video of split {split!r} could be used: none was found or listed."
  reasons = collections.Counter(i["reason"] for i in skipped)
  return (
    f"No video of split {split!r} could be used; skipped: "
    + "; ".join(f"{i['name']} ({i['reason']}: {i['detail']})" for i in skipped[:5])
    + ("; ..." if len(skipped) > 5 else "")
    + f" ({len(skipped)} skipped: "
    + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    + ")."
  )


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


class _OrderedSpool:
  """Serialized records of one split on disk, in the order (and key order) they came.

  TFDS's own writer keeps up to 1 GB of records in memory before spilling them to
  buckets, and then sorts each bucket in memory: a long video's records all land in one
  bucket. The frame builders generate keys in increasing order, so nothing needs
  sorting: records go to one append-only file and are read back sequentially when the
  shards are written. Memory stays at one record whatever the split's size.
  """

  def __init__(self, folder: epath.PathLike):
    folder = epath.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    self._path = os.fspath(folder / f"vad_jax_records_{uuid.uuid4().hex}.tmp")
    self._file = open(self._path, "wb")  # noqa: SIM115  (closed in __iter__ / delete)
    self._last_key: int | None = None
    self.num_examples = 0
    self.total_size = 0

  def add(self, key: int, data: bytes) -> None:
    if not isinstance(key, int) or key < 0 or key >= 2**128:
      raise ValueError(f"Record keys must be ints in [0, 2**128), got {key!r}.")
    if self._last_key is not None and key <= self._last_key:
      raise ValueError(f"Record keys must increase: {key} came after {self._last_key}.")
    self._last_key = key
    self._file.write(key.to_bytes(16, "big") + len(data).to_bytes(8, "big"))
    self._file.write(data)
    self.num_examples += 1
    self.total_size += len(data)

  def __iter__(self) -> Iterator[tuple[int, bytes]]:
    self._file.close()
    with open(self._path, "rb") as f:
      while header := f.read(24):
        yield int.from_bytes(header[:16], "big"), f.read(int.from_bytes(header[16:], "big"))

  def delete(self) -> None:
    self._file.close()
    with contextlib.suppress(FileNotFoundError):
      os.remove(self._path)


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

  def __init__(self, *, skip_undecodable: bool = False, num_workers: int = 1, **kwargs):
    if int(num_workers) < 1:
      raise ValueError(f"num_workers must be >= 1, got {num_workers!r}.")
    self._skip_undecodable = skip_undecodable
    self._num_workers = int(num_workers)
    self._pool: concurrent.futures.ProcessPoolExecutor | None = None
    kwargs["file_format"] = kwargs.get("file_format") or FILE_FORMAT
    super().__init__(**kwargs)

  # ``vad_jax.data.prepare`` says what it prepares, from where, and what was skipped; TFDS's
  # own lines ("Downloading and preparing dataset Unknown size (download: Unknown size,
  # ...)", "Dataset ... downloaded and prepared") say nothing true of a manual dir.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

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

  # ------------------------------------------------------------ helpers for subclasses

  def split_records(self, split: str, jobs: Iterable[VideoJob]) -> SplitJobs:
    """The ``(key, record)`` pairs of ``split`` from its video jobs, with the builder's
    ``skip_undecodable`` and ``num_workers`` (``SplitRecords``), or on Apache Beam's
    workers; an all-skipped split is an ``EmptySplitError`` naming what was skipped.
    Return it from ``_generate_examples`` (``return self.split_records(...)``)."""
    return SplitJobs(self, split, jobs)

  def record_source(self, *, layout: str, labels: str) -> None:
    """Records which layout and which labels were read, in ``metadata["layout"]`` /
    ``metadata["labels"]`` and at the end of the dataset description."""
    self.info.metadata["layout"] = layout
    self.info.metadata["labels"] = labels
    proto = self.info.as_proto
    base = proto.description.split(_SOURCE_MARKER)[0].rstrip()
    proto.description = f"{base}{_SOURCE_MARKER}layout: {layout}; labels: {labels}."

  # -------------------------------------------------------------------- split writing

  def _generate_splits(
    self, dl_manager: tfds.download.DownloadManager, download_config: tfds.download.DownloadConfig
  ) -> list[tfds.core.SplitInfo]:
    """Writes every split with constant memory (``_OrderedSpool``) instead of TFDS's writer.

    The shards are those TFDS's ``Writer`` writes for the same records (same shard count
    and boundaries, same serialization). With Beam options the splits go to
    ``_generate_splits_with_beam``.
    """
    if download_config.beam_runner is not None or download_config.beam_options is not None:
      return self._generate_splits_with_beam(dl_manager, download_config)
    try:
      split_generators = self._split_generators(dl_manager)
      return [self._write_split(name, generator, download_config) for name, generator in split_generators.items()]
    finally:
      if self._pool is not None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

  def _worker_pool(self) -> concurrent.futures.ProcessPoolExecutor | None:
    """The worker processes of this preparation (``num_workers > 1``), shared by its splits."""
    if self._num_workers > 1 and self._pool is None:
      self._pool = worker_pool(self._num_workers)
    return self._pool

  def _generate_splits_with_beam(
    self, dl_manager: tfds.download.DownloadManager, download_config: tfds.download.DownloadConfig
  ) -> list[tfds.core.SplitInfo]:
    """Apache Beam preparation (``DownloadConfig(beam_runner=..., beam_options=...)``): videos
    are decoded on the pipeline's workers, TFDS's ``BeamWriter`` writes the shards, and the
    records and metadata equal those of ``num_workers`` processes on one machine.

    Needs ``apache-beam`` (the optional extra ``vad_jax[beam]``) and a data dir that every
    worker can read and write (the videos are spooled there between two steps).
    """
    split_builder = split_builder_lib.SplitBuilder(
      split_dict=self.info.splits,
      features=self.info.features,
      dataset_size=self.info.dataset_size,
      max_examples_per_split=download_config.max_examples_per_split,
      beam_options=download_config.beam_options,
      beam_runner=download_config.beam_runner,
      shard_config=download_config.get_shard_config(),
      example_writer=self._example_writer(),
      ignore_duplicates=download_config.ignore_duplicates,
    )
    folders, futures = {}, []
    with split_builder.maybe_beam_pipeline():
      for split, generator in self._split_generators(dl_manager).items():
        if not isinstance(generator, SplitJobs):
          raise NotImplementedError(f"{self.name}: split {split!r} is not made of video jobs; prepare it without Beam.")
        template = self._get_filename_template(split_name=split)
        folders[split] = epath.Path(template.data_dir) / f"vad_jax_beam_{split}_{uuid.uuid4().hex}"
        folders[split].mkdir(parents=True)
        records = _beam_split(
          split_builder.beam_pipeline, split, generator.jobs, folders[split], self._skip_undecodable
        )
        futures.append(
          split_builder.submit_split_generation(
            split_name=split,
            generator=records,
            filename_template=template,
            disable_shuffling=True,
            nondeterministic_order=False,
          )
        )
    metadata = self.info.metadata
    for split, folder in folders.items():
      plan = json.loads((folder / "plan.json").read_text())
      metadata["videos"][split] = plan["videos"]
      for item in plan["skipped"]:
        record_skip(metadata, split, item["name"], item["reason"], item["detail"])
      metadata.setdefault("counts", {}).setdefault("splits", {})[split] = plan["counts"]
      folder.rmtree(missing_ok=True)
    return [future.result() for future in futures]

  def _write_split(
    self, split: str, generator: Iterable[tuple[int, dict[str, Any]]], download_config: tfds.download.DownloadConfig
  ) -> tfds.core.SplitInfo:
    template = self._get_filename_template(split_name=split)
    features = self.info.features
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    if download_config.max_examples_per_split is not None:
      generator = itertools.islice(generator, download_config.max_examples_per_split)
    spool = _OrderedSpool(template.data_dir)
    try:
      for key, example in tfds.core.utils.tqdm(
        generator, desc=f"Generating {split} examples...", unit=" examples", leave=False, mininterval=1.0
      ):
        try:
          encoded = features.encode_example(example)
        except Exception as error:  # noqa: BLE001  (re-raised with the example)
          tfds.core.utils.reraise(error, prefix=f"Failed to encode example:\n{example}\n")
        spool.add(key, serializer.serialize_example(encoded))
      if spool.num_examples == 0:
        raise EmptySplitError(empty_split_message(self.info.metadata, split))
      shard_config = download_config.get_shard_config() or shard_utils.ShardConfig()
      num_shards = shard_config.get_number_shards(spool.total_size, spool.num_examples)
      boundaries = shard_utils.get_shard_boundaries(spool.num_examples, num_shards)
      example_writer = self._example_writer()
      records = iter(spool)
      shard_lengths, start = [], 0
      for shard_index, end in enumerate(boundaries):
        path = template.sharded_filepath(shard_index=shard_index, num_shards=num_shards)
        positions = example_writer.write(path, itertools.islice(records, end - start))
        if positions:
          writer_lib._write_index_file(writer_lib._get_index_path(os.fspath(path)), list(positions))  # noqa: SLF001
        shard_lengths.append(end - start)
        start = end
    finally:
      spool.delete()
    return tfds.core.SplitInfo(
      name=split, shard_lengths=shard_lengths, num_bytes=spool.total_size, filename_template=template
    )


_SOURCE_MARKER = "\n\nRead from the manual dir: "
