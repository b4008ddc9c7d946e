"""The dual-stream network's steps: one optimisation step, and the per-frame statistics
that evaluation, calibration and the detector score.

Memory items and BatchNorm statistics are mutable collections updated in the training
step over the global batch. The statistics of a clip are those of its last frame, the
one it predicts (``scoring.frame_statistics``: PSNRs, worst-block PSNRs, memory
distances); ``video_statistics`` computes them for every frame of a video with ``T - 1``
predecessors, as the frames arrive.
"""

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vad_jax.data import preprocessing
from vad_jax.dual_stream import network, scoring
from vad_jax.dual_stream.loss import dual_stream_loss
from vad_jax.video import windows

Array = Any
MUTABLE = ("batch_stats", "memory")


def train_step(
  state, batch: Mapping[str, Array], *, model, config: ml_collections.ConfigDict
) -> tuple[Any, dict[str, Array]]:
  """One optimisation step on ``batch["frames"]``; returns the new state and loss terms."""
  grads, terms, new_vars = gradients(state, batch, model=model, config=config)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars["batch_stats"], memory=new_vars["memory"])
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def gradients(state, batch: Mapping[str, Array], *, model, config: ml_collections.ConfigDict):
  """``(gradients of the loss, loss terms, updated batch statistics and memory)``."""
  loss_config = config.loss

  def loss_fn(params):
    (_, aux), new_vars = model.apply(
      {**state.variables, "params": params}, batch["frames"], train=True, mutable=list(MUTABLE)
    )
    loss, terms = dual_stream_loss(aux, loss_config.alpha, loss_config.beta, loss_config.gamma_i, loss_config.gamma_x)
    return loss, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  return grads, terms, new_vars


def eval_step(
  state, batch: Mapping[str, Array], *, model, config: ml_collections.ConfigDict, error_maps: bool = False
) -> dict[str, Array]:
  """Per-frame score inputs (``scoring.STAT_KEYS``: PSNR of fused and per-stream frames, their
  worst blocks, memory distances); with ``error_maps`` also ``error_map [batch, h, w]``:
  the fused prediction's squared error per pixel (mean over channels, frames scaled to
  [0, 1] as for the PSNR)."""
  fused, aux = model.apply(state.variables, batch["frames"], train=False)
  stats = scoring.frame_statistics(aux, fused, config.score.memory_level)
  if error_maps:
    stats["error_map"] = jnp.mean(jnp.square((fused - aux["target"]) / 2.0), axis=-1)
  return stats


def model_statistics(
  config: ml_collections.ConfigDict, state, error_maps: bool = False
) -> Callable[[Array], Mapping[str, Array]]:
  """The jitted ``eval_step`` of ``state``'s model as a function of clips."""
  step = jax.jit(functools.partial(eval_step, model=network.from_config(config), config=config, error_maps=error_maps))
  return lambda frames: step(state, {"frames": frames})


def video_statistics(
  config: ml_collections.ConfigDict, state, frames: Iterator[windows.Frame], batch_size: int = 8, name: str = "video"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """``(frame indices, raw statistics per frame)`` of every frame with ``T - 1``
  predecessors; per-batch results stay on the device until the video ends."""
  stats_fn = model_statistics(config, state)
  t = config.model.sequence_length
  parts, targets = [], []
  clips_of = windows.sliding_windows(
    frames, t, tuple(config.data.image_size), config.data.channels, batch_size, config.data.jpeg_draft
  )
  for clips, index, count in clips_of:
    parts.append((stats_fn(preprocessing.to_signed_unit(clips)), count))  # stays on the device
    targets.append(index[:count])
  if not parts:
    raise ValueError(f"{name} has fewer than {t} frames: nothing to score")
  host = jax.device_get([p for p, _ in parts])
  stats = {
    k: np.concatenate([h[k][:count] for h, (_, count) in zip(host, parts)]).astype(np.float64)
    for k in scoring.STAT_KEYS
  }
  return np.concatenate(targets), stats
