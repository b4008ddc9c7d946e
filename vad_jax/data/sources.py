"""Random-access frame sources and their per-video index.

A *source* is anything with ``__len__`` and ``__getitem__`` returning one frame record
(a dict following ``docs/conventions.md``); an optional ``__getitems__(indices)`` is
used for batched reads. ``tfds.data_source`` objects (ArrayRecord) qualify, and so does
a plain list of dicts, which is what the tests use.

The *video index* is a list, in record order, of
``{"name": str, "start": int, "length": int, "label": int}``: video ``i`` occupies
records ``start .. start + length - 1``. Prepared builders store it in
``info.metadata["videos"][split]``; when that is missing it is rebuilt by reading the
``video_index`` key of every record (slow on large splits: every record is read).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

Record = dict[str, Any]
Video = dict[str, Any]

_READ_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class VideoSplit:
  """One split of a frame dataset.

  Attributes:
    source: random-access frame records, videos contiguous and in frame order.
    videos: the video index (see the module docstring).
    clips: ``metadata["clips"][split]`` when the builder provides it (same schema as
      ``videos``, one entry per labelled clip, with an optional ``video_index``), else
      None.
  """

  source: Any
  videos: tuple[Video, ...]
  clips: tuple[Video, ...] | None = None


def open_split(
  name: str,
  split: str,
  *,
  builder_config: str | None = None,
  data_dir: str | None = None,
) -> VideoSplit:
  """Opens a prepared TFDS dataset as a random-access source plus its video index.

  Args:
    name: registered builder name (``"ucsd_ped2"``) or a name that only exists as a
      prepared dataset under ``data_dir`` (TFDS then reads it without the builder
      class). May carry a version (``"ucsd_ped2:1.0.0"``).
    split: a split name (``"train"``, ``"test"``). Sub-split syntax (``"test[:10%]"``)
      is not supported because the video index is per whole split.
    builder_config: builder config name, or None for the default config.
    data_dir: TFDS data directory, or None for TFDS's default.
  """
  full_name = name
  if builder_config:
    base, _, version = name.partition(":")
    full_name = f"{base}/{builder_config}" + (f":{version}" if version else "")
  builder = tfds.builder(full_name, data_dir=data_dir)
  source = builder.as_data_source(split)
  metadata = builder.info.metadata or {}
  videos = (metadata.get("videos") or {}).get(split)
  if videos is None:
    logging.warning(
      "%s has no metadata['videos'][%r]; rebuilding the video index from the records (reads the whole split).",
      full_name,
      split,
    )
    videos = videos_from_records(source)
  clips = (metadata.get("clips") or {}).get(split)
  videos = tuple(_normalise_video(v) for v in videos)
  check_videos(videos, len(source))
  return VideoSplit(
    source=source,
    videos=videos,
    clips=None if clips is None else tuple(dict(c) for c in clips),
  )


def select_videos(split: VideoSplit, spec: str, exclude: bool = False) -> VideoSplit:
  """A subset of the videos of ``split`` (records are shared, not copied).

  ``spec``: ``""`` keeps all videos; ``"fold:i/k"`` keeps the videos whose name hashes
  (CRC-32) to ``i`` modulo ``k``, a split by video that does not depend on video order;
  ``"part:i/k"`` keeps every ``k``-th video from the ``i``-th in name order (parts of
  equal size, differing by at most one video: the folds of a cross-validation over a
  few videos). ``exclude`` or a leading ``~`` (``"~part:0/3"``): keep the other videos
  instead. Clip metadata is dropped (clips refer to the full video list).
  """
  if not spec:
    return split
  if spec.startswith("~"):
    spec, exclude = spec[1:], not exclude
  kind, _, arg = spec.partition(":")
  fold, _, count = arg.partition("/")
  if kind not in ("fold", "part") or not fold.isdigit() or not count.isdigit() or not int(fold) < int(count):
    raise ValueError(f"video subset must be '', 'fold:i/k' or 'part:i/k' with 0 <= i < k, got {spec!r}")
  fold, count = int(fold), int(count)
  if kind == "fold":
    chosen = {i for i, v in enumerate(split.videos) if zlib.crc32(str(v["name"]).encode("utf-8")) % count == fold}
  else:
    if count > len(split.videos):
      raise ValueError(f"video subset {spec!r}: {count} parts of only {len(split.videos)} videos")
    by_name = sorted(range(len(split.videos)), key=lambda i: str(split.videos[i]["name"]))
    chosen = set(by_name[fold::count])
  keep = tuple(v for i, v in enumerate(split.videos) if (i in chosen) != exclude)
  if not keep:
    what = "leaves" if exclude else "selects"
    raise ValueError(f"video subset {spec!r} {what} none of the {len(split.videos)} videos")
  return VideoSplit(source=split.source, videos=keep, clips=None)


@dataclasses.dataclass(frozen=True)
class ConcatSource:
  """The records of several sources one after the other (picklable when they are)."""

  parts: tuple[Any, ...]

  @functools.cached_property
  def offsets(self) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(p) for p in self.parts])]).astype(np.int64)

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def __getitem__(self, index: int) -> Record:
    return self.__getitems__([index])[0]

  def __getitems__(self, indices: Sequence[int]) -> list[Record]:
    offsets = self.offsets
    indices = np.asarray([int(i) for i in indices], np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= offsets[-1]):
      raise IndexError(f"record indices out of range [0, {offsets[-1]})")
    part = np.searchsorted(offsets, indices, side="right") - 1
    out: list[Record | None] = [None] * len(indices)
    for p in np.unique(part):
      where = np.flatnonzero(part == p)
      for i, record in zip(where, read_records(self.parts[p], indices[where] - offsets[p])):
        out[i] = record
    return out


def concat_splits(splits: Sequence[VideoSplit]) -> VideoSplit:
  """The videos of several splits as one split (for training on videos of two splits,
  e.g. the normal training videos and some labelled test videos). Video names must be
  unique across the splits; each split's ``videos`` may be a subset of its records."""
  if len(splits) == 1:
    return splits[0]
  names = [str(v["name"]) for s in splits for v in s.videos]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"cannot join splits that share video names: {repeated[:5]}")
  source = ConcatSource(tuple(s.source for s in splits))
  offsets = source.offsets
  videos = tuple({**v, "start": int(v["start"] + offsets[i])} for i, s in enumerate(splits) for v in s.videos)
  return VideoSplit(source=source, videos=videos, clips=None)


def read_records(source: Any, indices: Sequence[int]) -> list[Record]:
  """Reads several records, batched when the source supports ``__getitems__``."""
  indices = [int(i) for i in indices]
  getitems = getattr(source, "__getitems__", None)
  if getitems is not None:
    return list(getitems(indices))
  return [source[i] for i in indices]


def as_str(value: Any) -> str:
  """TFDS text features come back as ``bytes``; the tests use ``str``."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8")
  return str(value)


def videos_from_records(source: Any) -> list[Video]:
  """Rebuilds the video index from the ``video_index`` key of every record.

  The label of a video is its ``video_label`` key when records have one, else 1 if any
  frame is anomalous, 0 if all frames are labelled normal, -1 if labels are undefined.
  """
  videos: list[Video] = []
  n = len(source)
  for chunk_start in range(0, n, _READ_CHUNK):
    records = read_records(source, range(chunk_start, min(n, chunk_start + _READ_CHUNK)))
    for offset, record in enumerate(records):
      index = chunk_start + offset
      video_index = int(record["video_index"])
      label = int(record.get("label", -1))
      if not videos or video_index != videos[-1]["_video_index"]:
        if video_index != len(videos):
          raise ValueError(
            f"Record {index} starts video_index {video_index}, expected "
            f"{len(videos)}: records of a video must be contiguous and in order."
          )
        videos.append(
          {
            "name": as_str(record.get("video", str(video_index))),
            "start": index,
            "length": 0,
            "_video_index": video_index,
            "_labels": set(),
            "_video_label": record.get("video_label"),
          }
        )
      videos[-1]["length"] += 1
      videos[-1]["_labels"].add(label)
  out = []
  for v in videos:
    if v["_video_label"] is not None:
      label = int(v["_video_label"])
    elif 1 in v["_labels"]:
      label = 1
    elif v["_labels"] and min(v["_labels"]) >= 0:
      label = 0
    else:
      label = -1
    out.append({"name": v["name"], "start": v["start"], "length": v["length"], "label": label})
  return out


def check_videos(videos: Sequence[Video], num_records: int) -> None:
  """Raises ``ValueError`` unless the videos tile ``[0, num_records)`` in order."""
  expected_start = 0
  for i, v in enumerate(videos):
    if v["start"] != expected_start or v["length"] < 0:
      raise ValueError(
        f"Video {i} ({v.get('name')}) starts at record {v['start']} with length "
        f"{v['length']}; expected a start of {expected_start}."
      )
    expected_start += v["length"]
  if expected_start != num_records:
    raise ValueError(f"The video index covers {expected_start} records but the source has {num_records}.")


def _normalise_video(v: Video) -> Video:
  return {
    "name": as_str(v["name"]),
    "start": int(v["start"]),
    "length": int(v["length"]),
    "label": int(v.get("label", -1)),
  }
