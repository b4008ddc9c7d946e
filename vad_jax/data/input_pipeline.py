"""grain pipelines for training, evaluation and clip-level models.

Three pipelines, each in two layers:

* ``host_pipelines.train_dataset`` / ``eval_dataset`` / ``clip_dataset`` build a ``grain.IterDataset``
  of *host* batches (numpy) from an opened ``sources.VideoSplit``; host index and
  count are parameters, so tests simulate several hosts in one process;
* ``create_train_iterator`` / ``create_eval_iterator`` / ``create_clip_iterator`` read
  the config, open the TFDS split and map the host batches to global ``jax.Array`` s
  sharded ``P("data")`` over the mesh (``sharding.global_batch``).

Batch formats are those of ``docs/conventions.md``:

* training: ``{"frames": float32 [B, T, H, W, C] in [-1, 1]}``; clips of ``T`` frames,
  ``frame_stride`` apart, inside one video, shuffled over all valid clips with a new
  permutation every epoch (grain folds the epoch into the shuffle seed). The stream is
  endless by default; batches run across epoch boundaries so that no clip is skipped.
* evaluation: ``frames`` plus ``video_index``, ``frame_index`` (of the target, i.e.
  last, frame), ``label`` and ``valid``; every frame with ``T - 1`` predecessors is
  the target of exactly one example, in order (video by video, frame by frame); the
  global batch is rounded up to a multiple of the device count (and of the host
  count), and the last batch is padded with ``valid=False`` examples (black frames,
  indices and label -1). Every host yields the same number of batches. On request
  (``create_eval_iterator(..., mask_size=(h, w))``) also the target frame's pixel mask,
  ``masks`` uint8 [B, h, w] in {0, 1} (nearest-neighbour resized when stored at another
  size; ``loaders.stored_mask_size`` gives the stored one), and ``has_mask`` [B] (zeros
  and False where a frame has none).
* clip level: ``frames`` float32 [B, N, H, W, C] in [0, 1], ``label`` [B],
  ``frame_labels`` [B, N], ``valid`` [B], plus ``video_index`` [B] and
  ``frame_index`` [B, N] for frame-level metrics.

Hosts: global batch ``k`` is the slice ``[k B, (k + 1) B)`` of the example sequence;
host ``p`` of ``P`` reads the contiguous part ``[k B + p b, k B + (p + 1) b)`` with
``b = B / P`` and nothing else (see ``indexing``). Worker processes
(``data.num_workers``) each produce whole host batches of ``uint8`` pixels (0 keeps
everything in-process); the main process scales them to ``float32``.

Resuming: the iterators are ``grain.DatasetIterator`` s. ``it.get_state()`` is a
JSON-serialisable dict and ``it.set_state(state)`` on a freshly created iterator (same
config, same number of hosts and workers) continues with exactly the next batch. With
orbax, save ``grain.checkpoint.CheckpointSave(it)`` and restore with
``grain.checkpoint.CheckpointRestore(it)`` (one JSON file per process).

Config fields read (``config.data`` unless stated otherwise):

* ``name`` (str): TFDS builder name, e.g. ``"ucsd_ped2"``.
* ``builder_config`` (str): builder config name; ``""`` for the default config.
* ``data_dir`` (str): TFDS data directory; ``""`` for TFDS's default.
* ``train_split`` / ``eval_split`` (str): split names, ``"train"`` / ``"test"``.
* ``image_size`` (tuple[int, int]): ``(height, width)`` frames are resized to.
* ``channels`` (int): 1 (grayscale) or 3 (RGB).
* ``jpeg_draft`` (bool): faster JPEG decoding straight to luma / at 1/2, 1/4, 1/8 scale
  when the target size allows (``preprocessing``); False for exact decode + resize.
* ``frame_stride`` (int): distance in frames between consecutive frames of a clip.
* ``seed`` (int): shuffling seed (0 <= seed < 2**32).
* ``num_epochs`` (int or None): passes over the training clips; None repeats forever.
* ``num_workers`` (int): grain worker processes; 0 reads in the main process.
* ``num_threads`` (int): reader threads per process (0: read synchronously).
* ``prefetch_batches`` (int): batches buffered per process (and per worker).
* ``eval_batch_size`` (int): global evaluation batch; 0 uses ``config.batch_size``.
* ``clip_frames`` (int): N, frames sampled per clip for clip-level models.
* ``clip_sampling`` (str): ``"uniform"`` (stride ``max(len // N, 1)``) or
  ``"contiguous"`` (N consecutive frames centred in the clip).
* ``clip_short`` (str): clips with fewer than N frames are ``"drop"`` -ped or
  ``"pad"`` -ded (last frame repeated, frame label -1); counts are logged.
* ``clip_source`` (str): ``"clip_id"`` (records sharing ``clip_index``/``clip_id``,
  DCSASS) or ``"window"`` (windows of a video, UCF-Crime segments).
* ``clip_window`` (int): window length in frames for ``"window"``; 0 = whole video.
* ``augment`` (ConfigDict with ``flip``, ``max_shift``; optional): clip-level training
  batches mirrored and moved per clip (``augment.FlipAndShift``); off when absent.
* ``config.batch_size`` (int): global training batch size.
* ``config.model.sequence_length`` (int): T, frames per prediction clip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import grain
import jax
import ml_collections

from vad_jax import sharding
from vad_jax.data import augment as augment_lib
from vad_jax.data import host_pipelines, indexing, loaders, sources

FrameSettings = loaders.FrameSettings
ReaderSettings = host_pipelines.ReaderSettings


# --------------------------------------------------------------------------------------
# Config-driven iterators of global arrays.
# --------------------------------------------------------------------------------------


def open_split(data_config: ml_collections.ConfigDict, split: str) -> sources.VideoSplit:
  """Opens ``split`` of the dataset named in ``config.data``; ``"train+test"`` joins the
  videos of several splits (``sources.concat_splits``)."""
  parts = [
    sources.open_split(
      data_config.name,
      name.strip(),
      builder_config=data_config.get("builder_config") or None,
      data_dir=data_config.get("data_dir") or None,
    )
    for name in split.split("+")
  ]
  return sources.concat_splits(parts)


def frame_settings(data_config: ml_collections.ConfigDict, scaling: str) -> FrameSettings:
  return FrameSettings(
    image_size=tuple(int(s) for s in data_config.image_size),
    channels=int(data_config.channels),
    scaling=scaling,
    jpeg_draft=bool(data_config.get("jpeg_draft", True)),
  )


def reader_settings(data_config: ml_collections.ConfigDict) -> ReaderSettings:
  return ReaderSettings(
    num_workers=int(data_config.get("num_workers", 0)),
    num_threads=int(data_config.get("num_threads", 2)),
    prefetch_batches=int(data_config.get("prefetch_batches", 2)),
  )


def _globalise(ds: grain.IterDataset, mesh: jax.sharding.Mesh) -> grain.DatasetIterator:
  return iter(ds.map(functools.partial(sharding.global_batch, mesh)))


def _check_train_batch(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  if batch_size % mesh.devices.size:
    raise ValueError(f"batch_size {batch_size} must be a multiple of the {mesh.devices.size} devices.")


def create_train_iterator(
  config: ml_collections.ConfigDict,
  mesh: jax.sharding.Mesh,
  *,
  split: sources.VideoSplit | None = None,
) -> grain.DatasetIterator:
  """Endless iterator of global training batches for the prediction models.

  ``split`` overrides the dataset named in the config (tests, notebooks).
  """
  data = config.data
  _check_train_batch(config.batch_size, mesh)
  split = split or open_split(data, data.get("train_split", "train"))
  ds = host_pipelines.train_dataset(
    split,
    sequence_length=config.model.sequence_length,
    global_batch_size=config.batch_size,
    frames=frame_settings(data, "signed_unit"),
    frame_stride=data.get("frame_stride", 1),
    seed=data.get("seed", 0),
    num_epochs=data.get("num_epochs", None),
    reader=reader_settings(data),
  )
  return _globalise(ds, mesh)


def create_eval_iterator(
  config: ml_collections.ConfigDict,
  mesh: jax.sharding.Mesh,
  *,
  split: sources.VideoSplit | None = None,
  mask_size: tuple[int, int] | None = None,
) -> grain.DatasetIterator:
  """One ordered pass over every scorable frame, as padded global batches; with
  ``mask_size`` ``(height, width)`` each batch also holds the target frames' ``masks``
  and ``has_mask`` (see the module docstring)."""
  data = config.data
  split = split or open_split(data, data.get("eval_split", "test"))
  ds = host_pipelines.eval_dataset(
    split,
    sequence_length=config.model.sequence_length,
    global_batch_size=data.get("eval_batch_size", 0) or config.batch_size,
    num_devices=mesh.devices.size,
    frames=frame_settings(data, "signed_unit"),
    frame_stride=data.get("frame_stride", 1),
    reader=reader_settings(data),
    mask_size=mask_size,
  )
  return _globalise(ds, mesh)


def create_clip_iterator(
  config: ml_collections.ConfigDict,
  mesh: jax.sharding.Mesh,
  *,
  train: bool,
  split: sources.VideoSplit | None = None,
  transform: Callable[[dict], dict] | None = None,
) -> tuple[grain.DatasetIterator, indexing.ClipTable]:
  """Clip-level iterator (endless and shuffled when ``train``) and its clip table.

  ``transform``: see ``clip_dataset``. Training batches are augmented as
  ``data.augment`` asks (``augment.from_config``).

  The table tells how many clips there are and how many short ones were dropped or
  padded (``table.num_dropped``, ``table.num_padded``).
  """
  data = config.data
  if train:
    _check_train_batch(config.batch_size, mesh)
  split_name = data.get("train_split", "train") if train else data.get("eval_split", "test")
  split = split or open_split(data, split_name)
  num_frames = data.clip_frames
  table = host_pipelines.clip_table(
    split,
    clip_source=data.get("clip_source", "clip_id"),
    num_frames=num_frames,
    short_policy=data.get("clip_short", "drop"),
    window=data.get("clip_window", 0),
  )
  indexing.log_short_clips(table, num_frames, split_name)
  if len(table) == 0:
    raise ValueError(
      f"the {'training' if train else 'evaluation'} split has no clip of data.clip_frames frames "
      f"({num_frames} frames, split {split_name!r} of {data.name})"
    )
  batch_size = config.batch_size if train else (data.get("eval_batch_size", 0) or config.batch_size)
  ds = host_pipelines.clip_dataset(
    split,
    table,
    train=train,
    num_frames=num_frames,
    sampling=data.get("clip_sampling", "uniform"),
    global_batch_size=batch_size,
    frames=frame_settings(data, "unit"),
    num_devices=mesh.devices.size,
    seed=data.get("seed", 0),
    num_epochs=data.get("num_epochs", None),
    reader=reader_settings(data),
    transform=transform,
    augment=augment_lib.from_config(data) if train else None,
  )
  return _globalise(ds, mesh), table


def eval_num_batches(
  split: sources.VideoSplit,
  *,
  sequence_length: int,
  global_batch_size: int,
  num_devices: int,
  frame_stride: int = 1,
  process_count: int | None = None,
) -> int:
  """Number of batches ``eval_dataset`` yields (the same on every host)."""
  process_count = jax.process_count() if process_count is None else process_count
  index = indexing.ClipIndex.from_videos(split.videos, sequence_length, frame_stride)
  batch = indexing.eval_global_batch_size(global_batch_size, num_devices, process_count)
  return indexing.num_batches(len(index), batch)
