"""The classifiers' inputs: which videos train and which evaluate (``data.train_videos``,
``eval_videos``, folds over the evaluation split's videos), and clip-level batches of
them with object boxes where the model takes them.

Batches (``input_pipeline.create_clip_iterator``): ``frames`` ``[B, N, H, W, C]`` in
[0, 1], ``label`` [B], ``frame_labels`` [B, N], ``valid`` [B], ``video_index`` [B],
``frame_index`` [B, N]. For HybridModel-1 with object features the host pipeline adds
``boxes`` [B, N, K, 4], ``box_scores`` and ``box_valid`` [B, N, K] from the configured box
source (motion proposals by default), computed in the grain workers on the uint8 frames,
so the step never waits on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from vad_jax.data import input_pipeline, sources
from vad_jax.hybrid import boxes as boxes_lib

Array = Any
# What a fold trains on: the training split and the evaluation split's other parts, or
# those parts alone (open_split).
FOLD_TRAINING = ("all", "labelled")


def open_split(config: ml_collections.ConfigDict, train: bool) -> sources.VideoSplit:
  """The training or evaluation split, restricted to ``data.train_videos`` / ``eval_videos``.

  With ``data.fold = "i/k"`` the evaluation videos are part ``i`` of ``k`` of the
  evaluation split (``sources.select_videos``'s ``part:i/k``), and the training videos
  are those of the training split plus the evaluation split's other parts
  (``data.fold_training = "all"``) or the other parts alone (``"labelled"``): no video
  is on both sides.
  """
  data = config.data
  fold = data.fold
  labelled_only = _trains_on_labelled_only(data)
  if fold and data.eval_videos:
    raise ValueError(f"data.fold={fold!r} chooses the evaluation videos: data.eval_videos must be empty")
  if not train:
    split = input_pipeline.open_split(data, data.eval_split)
    return sources.select_videos(split, f"part:{fold}" if fold else data.eval_videos)
  split = sources.select_videos(input_pipeline.open_split(data, data.train_split), data.train_videos)
  if not fold:
    return split
  others = sources.select_videos(input_pipeline.open_split(data, data.eval_split), f"part:{fold}", exclude=True)
  return others if labelled_only else sources.concat_splits([split, others])


def _trains_on_labelled_only(data: ml_collections.ConfigDict) -> bool:
  """Whether a fold trains on the evaluation split's other parts alone
  (``data.fold_training``); raises on an unknown value, or on ``"labelled"`` without a
  fold."""
  fold_training = data.fold_training
  if fold_training not in FOLD_TRAINING:
    raise ValueError(f"data.fold_training must be one of {FOLD_TRAINING}, got {fold_training!r}")
  if fold_training == "labelled" and not data.fold:
    raise ValueError("data.fold_training='labelled' needs a fold (data.fold = 'i/k')")
  return fold_training == "labelled"


def split_names(config: ml_collections.ConfigDict, train: bool) -> str:
  """The dataset splits the videos of ``open_split(config, train)`` come from, as
  ``"a"`` or ``"a+b"`` (a fold trains on both splits)."""
  data = config.data
  if not train:
    return data.eval_split
  if not data.fold:
    return data.train_split
  return data.eval_split if _trains_on_labelled_only(data) else f"{data.train_split}+{data.eval_split}"


def create_iterator(config, mesh, *, train: bool, split: sources.VideoSplit | None = None):
  """``(iterator of global batches, clip table)`` for training (endless, shuffled) or
  evaluation (ordered, padded), boxes included when the model needs them."""
  split = split or open_split(config, train)
  transform = None
  if boxes_lib.needs_boxes(config):
    transform = boxes_lib.AddBoxes(
      boxes_lib.make_box_source(config), config.boxes.max_boxes, tuple(str(v["name"]) for v in split.videos)
    )
  return input_pipeline.create_clip_iterator(config, mesh, train=train, split=split, transform=transform)


def example_batch(config: ml_collections.ConfigDict, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
  """A labelled batch of zero clips with the shapes of the real inputs; every frame of
  a clip is scored."""
  h, w = config.data.image_size
  n = config.data.clip_frames
  batch = {
    "frames": np.zeros((batch_size, n, h, w, config.data.channels), np.float32),
    "label": np.arange(batch_size, dtype=np.int32) % 2,
    "frame_labels": np.broadcast_to(np.arange(batch_size, dtype=np.int32)[:, None] % 2, (batch_size, n)),
    "valid": np.ones((batch_size,), bool),
    "video_index": np.zeros((batch_size,), np.int32),
    "frame_index": np.broadcast_to(np.arange(n, dtype=np.int32), (batch_size, n)),
  }
  if boxes_lib.needs_boxes(config):
    k = config.boxes.max_boxes
    batch.update(
      boxes=np.zeros((batch_size, n, k, 4), np.float32),
      box_scores=np.zeros((batch_size, n, k), np.float32),
      box_valid=np.zeros((batch_size, n, k), bool),
    )
  return batch, batch_size * n


def model_inputs(config: ml_collections.ConfigDict, batch: Mapping[str, Array]) -> tuple:
  """Positional model arguments from a batch."""
  if boxes_lib.needs_boxes(config):
    return batch["frames"], batch["boxes"], batch["box_scores"], batch["box_valid"]
  return (batch["frames"],)
