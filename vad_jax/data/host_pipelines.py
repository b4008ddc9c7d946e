"""Host-level grain pipelines: ``grain.IterDataset`` s of *host* batches (numpy) for
training, evaluation and clip-level models, from an opened ``sources.VideoSplit``.

Host index and count are parameters (``HostShard``), so tests simulate several hosts in
one process; ``input_pipeline`` reads the config, opens the split and turns these batches
into global arrays. The batch formats, the split of a global batch between hosts and
the resumption contract are those of ``input_pipeline``'s docstring.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import sys
from collections.abc import Callable

import grain
import jax
import numpy as np
from absl import flags

from vad_jax.data import indexing, loaders, sources

FrameSettings = loaders.FrameSettings


@dataclasses.dataclass(frozen=True)
class ReaderSettings:
  """Parallelism and buffering of a pipeline (see the config fields of the same name)."""

  num_workers: int = 0
  num_threads: int = 2
  prefetch_batches: int = 2


@dataclasses.dataclass(frozen=True)
class HostShard:
  """Which part of every global batch this host produces."""

  process_index: int
  process_count: int

  @classmethod
  def current(cls, process_index: int | None = None, process_count: int | None = None) -> HostShard:
    """This process's shard; explicit values override ``jax.process_index/count``."""
    return cls(
      jax.process_index() if process_index is None else process_index,
      jax.process_count() if process_count is None else process_count,
    )

  def __post_init__(self):
    if not 0 <= self.process_index < self.process_count:
      raise ValueError(f"process_index {self.process_index} not in [0, {self.process_count})")

  def local_batch_size(self, global_batch_size: int) -> int:
    if global_batch_size % self.process_count:
      raise ValueError(f"Global batch size {global_batch_size} is not divisible by the {self.process_count} hosts.")
    return global_batch_size // self.process_count


# --------------------------------------------------------------------------------------
# Host-level pipelines (numpy batches).
# --------------------------------------------------------------------------------------


def _position_batches(
  num_examples: int,
  global_batch_size: int,
  host: HostShard,
  *,
  shuffle_seed: int | None = None,
  num_epochs: int | None = 1,
  pad: bool = False,
) -> grain.MapDataset:
  """This host's arrays of example positions, one ``int64 [b]`` array per batch.

  ``pad=True`` (evaluation): the positions run once over ``[0, n)`` in order, extended
  to a whole number of global batches with positions ``>= n`` that the loaders turn into
  padding examples. Otherwise (training): ``num_epochs`` passes (None: endless), each a
  new permutation when ``shuffle_seed`` is set, cut into global batches, the last
  partial one dropped.
  """
  local = host.local_batch_size(global_batch_size)
  if pad:
    total = indexing.num_batches(num_examples, global_batch_size) * global_batch_size
    ds = grain.MapDataset.range(total)
  else:
    if num_examples == 0:
      raise ValueError("No examples: every video is shorter than one clip.")
    ds = grain.MapDataset.range(num_examples)
    if shuffle_seed is not None:
      ds = ds.shuffle(seed=shuffle_seed)
    ds = ds.repeat(num_epochs)
  ds = ds.batch(local, drop_remainder=True)
  # Local batch j belongs to global batch j // P and host j % P; keep whole global
  # batches so that every host yields the same number of batches.
  ds = ds[: len(ds) // host.process_count * host.process_count]
  return ds[host.process_index :: host.process_count]


def end_with_parent(worker_index: int = 0, worker_count: int = 0) -> None:
  """Grain worker set-up: the worker gets SIGKILL when its parent dies (Linux), so a
  killed training run leaves no worker processes behind."""
  del worker_index, worker_count
  if sys.platform.startswith("linux"):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call
      os._exit(0)


def _to_iter_dataset(ds: grain.MapDataset, reader: ReaderSettings, frames: FrameSettings) -> grain.IterDataset:
  """Runs the loaders (in workers when configured), then scales pixels to floats."""
  iter_ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=reader.num_threads, prefetch_buffer_size=reader.prefetch_batches)
  )
  if reader.num_workers > 0:
    # grain 0.2.18 reads one of its absl flags when it starts workers and fails if
    # absl never parsed the command line (pytest, notebooks). Keep the defaults then;
    # under ``absl.app.run`` the flags are already parsed and this does nothing.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    iter_ds = iter_ds.mp_prefetch(
      grain.MultiprocessingOptions(num_workers=reader.num_workers, per_worker_buffer_size=reader.prefetch_batches),
      worker_init_fn=end_with_parent,
    )
  return iter_ds.map(loaders.ScaleFrames(frames.scaling))


def train_dataset(
  split: sources.VideoSplit,
  *,
  sequence_length: int,
  global_batch_size: int,
  frames: FrameSettings,
  frame_stride: int = 1,
  seed: int = 0,
  num_epochs: int | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
  reader: ReaderSettings = ReaderSettings(),
) -> grain.IterDataset:
  """Shuffled training clips, as this host's batches ``{"frames": [b, T, H, W, C]}``."""
  host = HostShard.current(process_index, process_count)
  index = indexing.ClipIndex.from_videos(split.videos, sequence_length, frame_stride)
  ds = _position_batches(len(index), global_batch_size, host, shuffle_seed=seed, num_epochs=num_epochs)
  ds = ds.map(loaders.TrainClipLoader(split.source, index, frames))
  return _to_iter_dataset(ds, reader, frames)


def eval_dataset(
  split: sources.VideoSplit,
  *,
  sequence_length: int,
  global_batch_size: int,
  num_devices: int,
  frames: FrameSettings,
  frame_stride: int = 1,
  process_index: int | None = None,
  process_count: int | None = None,
  reader: ReaderSettings = ReaderSettings(),
  mask_size: tuple[int, int] | None = None,
) -> grain.IterDataset:
  """Every scorable frame once, in order, as this host's padded evaluation batches.

  ``global_batch_size`` is rounded up to a multiple of ``num_devices`` and of the host
  count (``indexing.eval_global_batch_size``). ``mask_size`` ``(height, width)`` adds
  each target frame's pixel mask, ``masks`` ``uint8 [b, height, width]`` and
  ``has_mask`` ``bool [b]`` (``loaders.EvalClipLoader``); None (the default) reads none.
  """
  host = HostShard.current(process_index, process_count)
  index = indexing.ClipIndex.from_videos(split.videos, sequence_length, frame_stride)
  batch = indexing.eval_global_batch_size(global_batch_size, num_devices, host.process_count)
  ds = _position_batches(len(index), batch, host, pad=True)
  ds = ds.map(loaders.EvalClipLoader(split.source, index, frames, None if mask_size is None else tuple(mask_size)))
  return _to_iter_dataset(ds, reader, frames)


def clip_table(
  split: sources.VideoSplit,
  *,
  clip_source: str,
  num_frames: int,
  short_policy: str,
  window: int = 0,
) -> indexing.ClipTable:
  """The labelled clips of a split, with the short-clip policy applied.

  ``clip_source="clip_id"`` uses ``metadata["clips"]`` when the builder wrote it, else
  groups records by their ``clip_index``/``clip_id`` keys (reads the whole split once);
  ``"window"`` cuts videos into windows of ``window`` frames.
  """
  if clip_source == "clip_id":
    if split.clips is not None:
      table = indexing.clips_from_metadata(split.clips, split.videos)
    else:
      table = indexing.clips_from_records(split.source, split.videos)
  elif clip_source == "window":
    table = indexing.window_clips(split.videos, window)
  else:
    raise ValueError(f"clip_source must be 'clip_id' or 'window', got {clip_source!r}")
  return table.apply_short_policy(num_frames, short_policy)


def clip_dataset(
  split: sources.VideoSplit,
  table: indexing.ClipTable,
  *,
  train: bool,
  num_frames: int,
  sampling: str,
  global_batch_size: int,
  frames: FrameSettings,
  num_devices: int = 1,
  seed: int = 0,
  num_epochs: int | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
  reader: ReaderSettings = ReaderSettings(),
  transform: Callable[[dict], dict] | None = None,
  augment: Callable[[dict, np.random.Generator], dict] | None = None,
) -> grain.IterDataset:
  """Clip-level batches: shuffled and endless when ``train``, else ordered and padded.

  ``transform`` (picklable) maps each host batch after loading, on uint8 frames and in
  the worker processes when there are any (the hybrid model's box proposals).
  ``augment`` (picklable; training only) maps each loaded batch before ``transform``
  with a generator derived from ``seed``, the host and the batch's position
  (``augment.py``).
  """
  host = HostShard.current(process_index, process_count)
  if train:
    ds = _position_batches(len(table), global_batch_size, host, shuffle_seed=seed, num_epochs=num_epochs)
  else:
    batch = indexing.eval_global_batch_size(global_batch_size, num_devices, host.process_count)
    ds = _position_batches(len(table), batch, host, pad=True)
  ds = ds.map(loaders.ClipLevelLoader(split.source, table, num_frames, sampling, frames))
  if augment is not None:
    if not train:
      raise ValueError("augmentation is for training batches only")
    # The hosts' batch positions are numbered alike: the host joins the seed.
    ds = ds.random_map(augment, seed=int(np.random.SeedSequence([seed, host.process_index]).generate_state(1)[0]))
  if transform is not None:
    ds = ds.map(transform)
  return _to_iter_dataset(ds, reader, frames)
