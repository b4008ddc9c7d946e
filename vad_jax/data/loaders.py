"""Batch loaders: from a batch of example positions to a host batch of numpy arrays.

Each loader is a picklable callable (it travels to grain's worker processes) mapping an
``int64 [b]`` array of example positions to a dict of arrays with leading dimension
``b``. Frames shared by several examples of a batch (overlapping clips) are read and
decoded once.

Loaders return ``frames`` as ``uint8`` pixels; ``ScaleFrames`` turns them into floats
as the last step of a pipeline, in the main process, so that worker processes hand
over a quarter of the bytes.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
from PIL import Image

from vad_jax.data import indexing, preprocessing, sources


@dataclasses.dataclass(frozen=True)
class FrameSettings:
  """How frames are turned into arrays."""

  image_size: tuple[int, int]  # (height, width)
  channels: int  # 1 or 3
  scaling: str = "signed_unit"  # key of preprocessing.SCALINGS
  jpeg_draft: bool = True  # see preprocessing.decode_frame

  def __post_init__(self):
    if self.scaling not in preprocessing.SCALINGS:
      raise ValueError(f"unknown scaling {self.scaling!r}")
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {self.channels}")

  @property
  def frame_shape(self) -> tuple[int, int, int]:
    return (*self.image_size, self.channels)


def read_frames(source: Any, record_indices: np.ndarray, frames: FrameSettings) -> tuple[np.ndarray, np.ndarray]:
  """Decodes the frames at ``record_indices`` (any shape), reading each record once.

  Returns:
    ``(pixels, labels)``: ``uint8 [*record_indices.shape, H, W, C]`` and the records'
    ``label`` values, ``int32 [*record_indices.shape]``.
  """
  unique, inverse = np.unique(record_indices, return_inverse=True)
  inverse = inverse.reshape(record_indices.shape)
  records = sources.read_records(source, unique)
  decoded = np.empty((len(unique), *frames.frame_shape), dtype=np.uint8)
  labels = np.empty((len(unique),), dtype=np.int32)
  for i, record in enumerate(records):
    decoded[i] = preprocessing.decode_frame(record["frame"], frames.image_size, frames.channels, frames.jpeg_draft)
    labels[i] = int(record.get("label", -1))
  return decoded[inverse], labels[inverse]


def read_masks(source: Any, record_indices: np.ndarray, mask_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """The pixel masks of the records at ``record_indices`` ``[n]``.

  Returns:
    ``(masks, has_mask)``: ``uint8 [n, height, width]`` in {0, 1} at ``mask_size``
    (``preprocessing.decode_mask``) and ``bool [n]``; a record without a mask (no
    ``mask`` key, ``has_mask`` False or empty bytes) gives zeros and False.
  """
  records = sources.read_records(source, np.asarray(record_indices).reshape(-1).tolist())
  masks = np.zeros((len(records), *mask_size), dtype=np.uint8)
  has_mask = np.zeros((len(records),), dtype=bool)
  for i, record in enumerate(records):
    data = record.get("mask", b"")
    if bool(record.get("has_mask", bool(data))) and data:
      masks[i], has_mask[i] = preprocessing.decode_mask(data, mask_size), True
  return masks, has_mask


def stored_mask_size(split: sources.VideoSplit) -> tuple[int, int] | None:
  """``(height, width)`` of a split's stored masks: those of the first video whose first
  frame has one (builders store every frame of a video with or without a mask); None
  when no video has masks. Reads one record per video at most."""
  for video in split.videos:
    record = sources.read_records(split.source, [int(video["start"])])[0]
    if record.get("has_mask") and record.get("mask"):
      with Image.open(io.BytesIO(record["mask"])) as img:
        width, height = img.size
      return height, width
  return None


@dataclasses.dataclass(frozen=True)
class ScaleFrames:
  """Batch with ``uint8`` ``frames`` -> the same batch with ``float32`` ``frames``."""

  scaling: str

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**batch, "frames": preprocessing.SCALINGS[self.scaling](batch["frames"])}


@dataclasses.dataclass(frozen=True)
class TrainClipLoader:
  """Clip ids -> ``{"frames": uint8 [b, T, H, W, C]}``."""

  source: Any
  index: indexing.ClipIndex
  frames: FrameSettings

  def __call__(self, clip_ids: np.ndarray) -> dict[str, np.ndarray]:
    pixels, _ = read_frames(self.source, self.index.records(clip_ids), self.frames)
    return {"frames": pixels}


@dataclasses.dataclass(frozen=True)
class EvalClipLoader:
  """Positions in the ordered evaluation sequence -> one evaluation batch.

  Positions ``>= len(index)`` are padding: black frames, ``video_index``,
  ``frame_index`` and ``label`` of -1, ``valid=False``. With ``mask_size`` the batch also
  holds the target frame's pixel mask, ``masks`` ``uint8 [b, height, width]`` in {0, 1}
  (``read_masks``), and ``has_mask`` ``bool [b]`` (zeros and False for a frame without
  one and for padding); without it, nothing more is read.
  """

  source: Any
  index: indexing.ClipIndex
  frames: FrameSettings
  mask_size: tuple[int, int] | None = None

  def __call__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
    positions = np.asarray(positions, dtype=np.int64)
    b, t = len(positions), self.index.sequence_length
    valid = positions < len(self.index)
    ids = positions[valid]
    out = {
      "frames": np.zeros((b, t, *self.frames.frame_shape), dtype=np.uint8),
      "video_index": np.full((b,), -1, dtype=np.int32),
      "frame_index": np.full((b,), -1, dtype=np.int32),
      "label": np.full((b,), -1, dtype=np.int32),
      "valid": valid,
    }
    if ids.size:
      pixels, labels = read_frames(self.source, self.index.records(ids), self.frames)
      video, first = self.index.locate(ids)
      out["frames"][valid] = pixels
      out["video_index"][valid] = video
      out["frame_index"][valid] = first + self.index.target_offset
      out["label"][valid] = labels[:, -1]
    if self.mask_size is not None:
      out["masks"] = np.zeros((b, *self.mask_size), dtype=np.uint8)
      out["has_mask"] = np.zeros((b,), dtype=bool)
      if ids.size:
        out["masks"][valid], out["has_mask"][valid] = read_masks(
          self.source, self.index.records(ids)[:, -1], self.mask_size
        )
    return out


@dataclasses.dataclass(frozen=True)
class ClipLevelLoader:
  """Positions in a ``ClipTable`` -> a clip-level batch for supervised models.

  Output (``b`` examples, ``N`` sampled frames each): ``frames`` uint8
  [b, N, H, W, C], ``label`` int32 [b] (clip label), ``frame_labels`` int32 [b, N]
  (-1 at padded positions), ``valid`` bool [b], ``video_index`` int32 [b] and
  ``frame_index`` int32 [b, N] (frame indices within the video, for frame-level
  metrics). Positions ``>= len(table)`` are padding examples (``valid=False``).
  """

  source: Any
  table: indexing.ClipTable
  num_frames: int
  sampling: str
  frames: FrameSettings

  def __call__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
    positions = np.asarray(positions, dtype=np.int64)
    b, n = len(positions), self.num_frames
    valid = positions < len(self.table)
    out = {
      "frames": np.zeros((b, n, *self.frames.frame_shape), dtype=np.uint8),
      "label": np.full((b,), -1, dtype=np.int32),
      "frame_labels": np.full((b, n), -1, dtype=np.int32),
      "valid": valid,
      "video_index": np.full((b,), -1, dtype=np.int32),
      "frame_index": np.full((b, n), -1, dtype=np.int32),
    }
    rows = np.flatnonzero(valid)
    if not rows.size:
      return out
    clips = positions[rows]
    offsets, padding = zip(*(indexing.sample_offsets(int(self.table.length[c]), n, self.sampling) for c in clips))
    offsets, padding = np.stack(offsets), np.stack(padding)
    records = self.table.start[clips][:, None] + offsets
    pixels, frame_labels = read_frames(self.source, records, self.frames)
    out["frames"][rows] = pixels
    out["frame_labels"][rows] = np.where(padding, -1, frame_labels)
    out["video_index"][rows] = self.table.video_index[clips]
    out["frame_index"][rows] = self.table.first_frame[clips][:, None] + offsets
    if self.table.label is not None:
      out["label"][rows] = self.table.label[clips]
    else:
      out["label"][rows] = [self._label_from_frames(c) for c in clips]
    return out

  def _label_from_frames(self, clip: int) -> int:
    """Clip label from all its frames' labels (reads the clip's records)."""
    start, length = int(self.table.start[clip]), int(self.table.length[clip])
    records = sources.read_records(self.source, range(start, start + length))
    frame_labels = np.array([int(r["label"]) for r in records])
    label = indexing.frame_labels_to_clip_label(frame_labels)
    if label == -1 and records and "video_label" in records[0]:
      label = int(records[0]["video_label"])
    return label
