"""The classifiers' steps: one optimisation step and the per-frame and per-clip anomaly
probabilities of a batch.

Clip probability: the mean frame probability (HybridModel-1, EfficientNet+HOG) or the
softmax output (ConvLSTM); a ConvLSTM frame takes its clip's probability.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vad_jax.hybrid import inputs, loss

Array = Any
MUTABLE = ("batch_stats",)


def train_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict):
  """One optimisation step; dropout keys derive from the seed and the step (resumable)."""
  grads, terms, new_vars = gradients(state, batch, model=model, config=config)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars.get("batch_stats", state.batch_stats))
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def gradients(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict):
  """``(gradients of the loss, loss terms, updated batch statistics)`` of a training step."""
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed + 1), state.step)
  if config.loss.shuffle_labels:
    batch = loss.shuffled_labels(batch, jax.random.fold_in(jax.random.key(config.seed + 2), state.step))

  def loss_fn(params):
    (logits, _), new_vars = model.apply(
      {"params": params, "batch_stats": state.batch_stats},
      *inputs.model_inputs(config, batch),
      train=True,
      mutable=list(MUTABLE),
      rngs={"dropout": dropout_rng},
    )
    value, terms = loss.classification_loss(config.loss, logits, batch)
    return value, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  return grads, terms, new_vars


def probabilities(config: ml_collections.ConfigDict, logits: Array, aux: Mapping[str, Any]) -> dict[str, Array]:
  """``frame_probs [B, N]`` and ``clip_probs [B]`` from a model output."""
  if config.model.name == "convlstm":
    clip = aux["probs"][:, 1]
    return {
      "clip_probs": clip,
      "frame_probs": jnp.broadcast_to(clip[:, None], (clip.shape[0], config.data.clip_frames)),
    }
  frame = jax.nn.sigmoid(logits.astype(jnp.float32))
  return {"frame_probs": frame, "clip_probs": frame.mean(axis=1)}


def eval_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict) -> dict[str, Array]:
  logits, aux = model.apply(
    {"params": state.params, "batch_stats": state.batch_stats}, *inputs.model_inputs(config, batch), train=False
  )
  return probabilities(config, logits, aux)
