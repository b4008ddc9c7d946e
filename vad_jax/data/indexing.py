"""Which records make up each example: pure index arithmetic over the video index.

Nothing here reads pixels. Two kinds of example:

* ``ClipIndex``: every run of ``T`` frames, ``frame_stride`` apart, that lies inside one
  video (the prediction models' clips). A video of ``L`` frames has
  ``L - (T - 1) * frame_stride`` of them (none when that is not positive), starting at
  frames ``0 .. L - 1 - (T - 1) * frame_stride``. The same set, read in order, is the
  evaluation set: clip ``i`` predicts its last frame, so every frame with ``T - 1``
  predecessors is the target of exactly one clip.
* ``ClipTable``: labelled clips for the supervised models, either DCSASS clips (records
  sharing a ``clip_index``/``clip_id``) or fixed windows of a video (UCF-Crime
  segments), together with the frame offsets sampled from each.

Batch layout across hosts (``input_pipeline``): global batch ``k`` holds the examples at
positions ``k * B .. (k + 1) * B - 1`` of the (shuffled or ordered) example sequence,
and host ``p`` of ``P`` reads positions ``k * B + p * b .. k * B + (p + 1) * b - 1``
with ``b = B / P``: the hosts' shards are disjoint, their union is the global batch, and
the global batch does not depend on the number of hosts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vad_jax.data import sources

SAMPLINGS = ("uniform", "contiguous")
SHORT_CLIP_POLICIES = ("drop", "pad")


@dataclasses.dataclass(frozen=True)
class ClipIndex:
  """All clips of ``sequence_length`` frames inside single videos, numbered in order.

  Stored per video (O(number of videos) memory), so that it pickles cheaply into worker
  processes even for splits with millions of frames.
  """

  video_start: np.ndarray  # int64 [V]: first record of each video.
  clip_offsets: np.ndarray  # int64 [V + 1]: clip ids of video v are offsets[v]..offsets[v+1]-1.
  sequence_length: int
  frame_stride: int = 1

  @classmethod
  def from_videos(cls, videos: Sequence[sources.Video], sequence_length: int, frame_stride: int = 1) -> ClipIndex:
    if sequence_length < 1 or frame_stride < 1:
      raise ValueError(f"sequence_length ({sequence_length}) and frame_stride ({frame_stride}) must be positive.")
    span = (sequence_length - 1) * frame_stride + 1
    starts = np.array([v["start"] for v in videos], dtype=np.int64)
    lengths = np.array([v["length"] for v in videos], dtype=np.int64)
    counts = np.maximum(lengths - span + 1, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return cls(starts, offsets, sequence_length, frame_stride)

  def __len__(self) -> int:
    return int(self.clip_offsets[-1])

  @property
  def target_offset(self) -> int:
    """Frame distance from a clip's first frame to its last (target) frame."""
    return (self.sequence_length - 1) * self.frame_stride

  def locate(self, clip_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(video_index, first frame index within the video)`` of each clip id."""
    clip_ids = np.asarray(clip_ids, dtype=np.int64)
    if clip_ids.size and (clip_ids.min() < 0 or clip_ids.max() >= len(self)):
      raise IndexError(f"clip ids out of range [0, {len(self)})")
    video = np.searchsorted(self.clip_offsets, clip_ids, side="right") - 1
    return video, clip_ids - self.clip_offsets[video]

  def records(self, clip_ids: np.ndarray) -> np.ndarray:
    """Record indices ``[n, sequence_length]`` of the frames of each clip."""
    video, first = self.locate(clip_ids)
    steps = np.arange(self.sequence_length, dtype=np.int64) * self.frame_stride
    return (self.video_start[video] + first)[:, None] + steps[None, :]


@dataclasses.dataclass(frozen=True)
class ClipTable:
  """Labelled clips for clip-level models, after the short-clip policy was applied.

  Attributes:
    start: int64 [M], first record of each clip.
    length: int64 [M], frames in each clip.
    video_index: int32 [M].
    first_frame: int64 [M], frame index (within its video) of the clip's first frame.
    label: int32 [M], the clip label, or None when it must be derived from the frame
      labels at load time (windows of a video).
    num_dropped: clips shorter than the number of sampled frames that were dropped.
    num_padded: clips shorter than the number of sampled frames that will be padded.
  """

  start: np.ndarray
  length: np.ndarray
  video_index: np.ndarray
  first_frame: np.ndarray
  label: np.ndarray | None
  num_dropped: int = 0
  num_padded: int = 0

  def __len__(self) -> int:
    return len(self.start)

  def apply_short_policy(self, num_frames: int, policy: str) -> ClipTable:
    """Drops or keeps (to be padded) the clips with fewer than ``num_frames`` frames."""
    if policy not in SHORT_CLIP_POLICIES:
      raise ValueError(f"short-clip policy must be one of {SHORT_CLIP_POLICIES}, got {policy!r}")
    short = self.length < num_frames
    if policy == "pad":
      return dataclasses.replace(self, num_padded=int(short.sum()))
    keep = ~short
    return ClipTable(
      start=self.start[keep],
      length=self.length[keep],
      video_index=self.video_index[keep],
      first_frame=self.first_frame[keep],
      label=None if self.label is None else self.label[keep],
      num_dropped=int(short.sum()),
    )


def window_clips(videos: Sequence[sources.Video], window: int) -> ClipTable:
  """Cuts every video into consecutive non-overlapping windows of ``window`` frames.

  The last window of a video keeps the remaining frames and may be shorter.
  ``window <= 0`` makes every whole video one clip, labelled with the video's label;
  window labels are left to the loader (``label=None``), which derives them from the
  labels of all frames of the window.
  """
  starts, lengths, vids, firsts = [], [], [], []
  for vi, v in enumerate(videos):
    size = v["length"] if window <= 0 else window
    for first in range(0, v["length"], max(size, 1)):
      starts.append(v["start"] + first)
      lengths.append(min(size, v["length"] - first))
      vids.append(vi)
      firsts.append(first)
  return ClipTable(
    start=np.array(starts, dtype=np.int64),
    length=np.array(lengths, dtype=np.int64),
    video_index=np.array(vids, dtype=np.int32),
    first_frame=np.array(firsts, dtype=np.int64),
    label=(np.array([videos[v]["label"] for v in vids], dtype=np.int32) if window <= 0 else None),
  )


def clips_from_metadata(clips: Sequence[dict[str, Any]], videos: Sequence[sources.Video]) -> ClipTable:
  """Builds the table from ``metadata["clips"][split]`` entries.

  Each entry has ``start``, ``length`` and ``label``; ``video_index`` is taken from
  the entry when present, else found from ``start`` in the video index.
  """
  video_start = np.array([v["start"] for v in videos], dtype=np.int64)
  start = np.array([c["start"] for c in clips], dtype=np.int64)
  if "video_index" in (clips[0] if clips else {}):
    vids = np.array([c["video_index"] for c in clips], dtype=np.int32)
  else:
    vids = (np.searchsorted(video_start, start, side="right") - 1).astype(np.int32)
  return ClipTable(
    start=start,
    length=np.array([c["length"] for c in clips], dtype=np.int64),
    video_index=vids,
    first_frame=start - video_start[vids],
    label=np.array([c.get("label", -1) for c in clips], dtype=np.int32),
  )


def clips_from_records(source: Any, videos: Sequence[sources.Video]) -> ClipTable:
  """Groups consecutive records sharing a video and a clip key into clips.

  The clip key is ``clip_index`` when records have it, else ``clip_id``. The clip label
  is the ``clip_label`` key of the clip's records when present, else 1 if any frame is
  anomalous, 0 if all are normal, -1 if undefined. Reads every record of the split.
  """
  video_start = np.array([v["start"] for v in videos], dtype=np.int64)
  starts, lengths, vids, labels = [], [], [], []
  current = None
  frame_labels: list[int] = []
  clip_label = None
  n = len(source)
  chunk = 1024
  for chunk_start in range(0, n, chunk):
    records = sources.read_records(source, range(chunk_start, min(n, chunk_start + chunk)))
    for offset, record in enumerate(records):
      index = chunk_start + offset
      if "clip_index" in record:
        clip_key = int(record["clip_index"])
      elif "clip_id" in record:
        clip_key = sources.as_str(record["clip_id"])
      else:
        raise KeyError("records have neither 'clip_index' nor 'clip_id'")
      key = (int(record["video_index"]), clip_key)
      if key != current:
        if current is not None:
          labels.append(_clip_label(clip_label, frame_labels))
        current = key
        starts.append(index)
        lengths.append(0)
        vids.append(key[0])
        frame_labels = []
        clip_label = record.get("clip_label")
      lengths[-1] += 1
      frame_labels.append(int(record.get("label", -1)))
  if current is not None:
    labels.append(_clip_label(clip_label, frame_labels))
  start = np.array(starts, dtype=np.int64)
  vids_arr = np.array(vids, dtype=np.int32)
  return ClipTable(
    start=start,
    length=np.array(lengths, dtype=np.int64),
    video_index=vids_arr,
    first_frame=start - video_start[vids_arr] if len(start) else start,
    label=np.array(labels, dtype=np.int32),
  )


def _clip_label(clip_label: Any, frame_labels: Sequence[int]) -> int:
  if clip_label is not None:
    return int(clip_label)
  return frame_labels_to_clip_label(np.asarray(frame_labels))


def frame_labels_to_clip_label(frame_labels: np.ndarray) -> int:
  """1 if any frame is anomalous, else 0 if every frame is labelled, else -1."""
  if np.any(frame_labels == 1):
    return 1
  if frame_labels.size and np.all(frame_labels >= 0):
    return 0
  return -1


def sample_offsets(length: int, num_frames: int, sampling: str) -> tuple[np.ndarray, np.ndarray]:
  """Frame offsets (within a clip) to read, and which of them are padding.

  ``"uniform"``: stride ``max(length // num_frames, 1)`` from the first frame, as in
  the authors' ConvLSTM code. ``"contiguous"``: ``num_frames`` consecutive frames
  centred in the clip. A clip shorter than ``num_frames`` gives all its frames followed
  by copies of its last frame, flagged as padding.

  Returns:
    ``(offsets int64 [num_frames], padding bool [num_frames])``.
  """
  if sampling not in SAMPLINGS:
    raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
  if length <= 0:
    raise ValueError("cannot sample from an empty clip")
  steps = np.arange(num_frames, dtype=np.int64)
  if length < num_frames:
    return np.minimum(steps, length - 1), steps >= length
  if sampling == "uniform":
    offsets = steps * max(length // num_frames, 1)
  else:
    offsets = (length - num_frames) // 2 + steps
  return offsets, np.zeros(num_frames, dtype=bool)


def round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def eval_global_batch_size(batch_size: int, num_devices: int, process_count: int) -> int:
  """Smallest multiple of both the device and the host count that is >= ``batch_size``."""
  return round_up(max(batch_size, 1), math.lcm(num_devices, process_count))


def num_batches(num_examples: int, global_batch_size: int) -> int:
  """Global batches needed to visit ``num_examples`` once, the last one padded."""
  return -(-num_examples // global_batch_size)


def log_short_clips(table: ClipTable, num_frames: int, split: str) -> None:
  if table.num_dropped or table.num_padded:
    logging.info(
      "%s: %d clips shorter than %d frames dropped, %d padded.",
      split,
      table.num_dropped,
      num_frames,
      table.num_padded,
    )
