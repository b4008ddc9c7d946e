"""The classifiers' losses on per-frame or per-clip logits (``loss.name``).

TCR (``tcr.py``) or class-weighted BCE on per-frame logits (HybridModel-1,
EfficientNet+HOG), or the 2-way softmax cross-entropy on clip logits (ConvLSTM, as its
Keras original). Frames whose label is unknown (``-1``: UCF-Crime training videos) take
the clip label (weak supervision); padding examples are masked out.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vad_jax.hybrid import tcr as tcr_lib

Array = Any


def frame_targets(batch: Mapping[str, Array]) -> tuple[Array, Array]:
  """``(targets [B, N] in {0, 1}, mask [B, N])``: frame labels, the clip label where a
  frame's label is unknown; padding examples masked out."""
  frame_labels = batch["frame_labels"]
  clip = batch["label"][:, None]
  targets = jnp.where(frame_labels >= 0, frame_labels, clip)
  mask = (targets >= 0) & batch["valid"][:, None]
  return jnp.clip(targets, 0, 1).astype(jnp.float32), mask.astype(jnp.float32)


def classification_loss(
  loss_config: ml_collections.ConfigDict, logits: Array, batch: Mapping[str, Array]
) -> tuple[Array, dict[str, Array]]:
  """The configured loss (``loss.name``: tcr, bce or softmax) and its terms."""
  if loss_config.name == "softmax":
    valid = (batch["valid"] & (batch["label"] >= 0)).astype(jnp.float32)
    labels = jnp.clip(batch["label"], 0, 1)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    if loss_config.class_weights == "batch":  # the `balanced` ConvLSTM variant
      w = jax.lax.stop_gradient(tcr_lib.class_weights_from_labels(labels, valid))
      valid = valid * jnp.where(labels == 1, w[1], w[0])
    loss = jnp.sum(valid * ce) / jnp.maximum(jnp.sum(valid), 1.0)
    return loss, {"loss": loss}
  targets, mask = frame_targets(batch)
  class_weights = None if loss_config.class_weights == "batch" else jnp.ones(2)
  logits = logits.astype(jnp.float32)
  if loss_config.name == "tcr":
    loss, aux = tcr_lib.tcr_loss(
      logits,
      targets,
      class_weights=class_weights,
      mask=mask,
      gamma=loss_config.gamma,
      lam=loss_config.lam,
      window=loss_config.window,
    )
    return loss, {"loss": loss, "bce": aux["bce"], "smoothness": aux["smoothness"]}
  if loss_config.name == "bce":
    loss = tcr_lib.weighted_bce(logits, targets, class_weights=class_weights, mask=mask)
    return loss, {"loss": loss}
  raise ValueError(f"loss.name must be 'tcr', 'bce' or 'softmax', got {loss_config.name!r}")


def shuffled_labels(batch: dict[str, Array], key: Array) -> dict[str, Array]:
  """``batch`` with the labels of its clips permuted among them (``loss.shuffle_labels``:
  what a model learns when its labels carry no information about its inputs, the same
  class balance kept; a control for the separation tests)."""
  perm = jax.random.permutation(key, batch["label"].shape[0])
  return {**batch, "label": batch["label"][perm], "frame_labels": batch["frame_labels"][perm]}
