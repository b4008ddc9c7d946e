"""Temporal Confidence Reweighting (TCR) loss and class-weighted BCE (HYBRID.md item 4).

For per-frame logits ``z[b, t]``, probabilities ``p = sigmoid(z)`` and labels ``y``:

* class weight ``c_y = n / (2 n_y)`` (``n`` frames, ``n_y`` of class ``y``): the
  "balanced" weighting, so both classes contribute equally in expectation;
* confidence weight ``w_t = (1 - |p_t - pbar_t|) ** gamma`` where ``pbar_t`` is the mean
  prediction over a centred window of ``window`` (5) frames of the same clip (truncated at
  the clip ends and at invalid frames); ``w`` is computed under ``stop_gradient`` and
  renormalised to mean 1 over the valid frames of the batch;
* loss ``= mean_t(c_y w_t BCE(z_t, y_t)) + lambda * mean_t (p_{t+1} - p_t) ** 2``.

With ``tcr=False`` (or ``gamma = 0`` and ``lam = 0``) the loss is exactly the
class-weighted BCE :func:`weighted_bce`. See docs/hybrid.md for the inferred details.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

Array = Any


def _check_rank2(logits: Array, labels: Array, mask: Array | None) -> tuple[Array, Array, Array]:
  logits = jnp.asarray(logits)
  if logits.ndim != 2:
    raise ValueError(f"expected logits of rank 2 [batch, time], got shape {logits.shape}")
  labels = jnp.asarray(labels)
  if labels.shape != logits.shape:
    raise ValueError(f"labels shape {labels.shape} != logits shape {logits.shape}")
  if mask is None:
    mask = jnp.ones(logits.shape, jnp.float32)
  mask = jnp.asarray(mask, jnp.float32)
  if mask.shape != logits.shape:
    raise ValueError(f"mask shape {mask.shape} != logits shape {logits.shape}")
  return logits, labels, mask


def class_weights_from_labels(labels: Array, mask: Array | None = None) -> Array:
  """Balanced class weights ``[w_0, w_1] = n / (2 n_y)`` from 0/1 labels.

  Use it on the training-set labels (host or device) and pass the result to the losses;
  a class that is absent gets weight 0 (it contributes no terms anyway).
  """
  labels = jnp.asarray(labels, jnp.float32)
  mask = jnp.ones_like(labels) if mask is None else jnp.asarray(mask, jnp.float32)
  n = jnp.sum(mask)
  n_pos = jnp.sum(mask * labels)
  n_neg = n - n_pos
  safe = lambda k: jnp.where(k > 0, n / (2.0 * jnp.maximum(k, 1.0)), 0.0)
  return jnp.stack([safe(n_neg), safe(n_pos)])


def _per_frame_class_weight(labels: Array, mask: Array, class_weights: Array | None) -> Array:
  if class_weights is None:
    class_weights = class_weights_from_labels(labels, mask)
  class_weights = jax.lax.stop_gradient(jnp.asarray(class_weights, jnp.float32))
  y = jnp.asarray(labels, jnp.float32)
  return y * class_weights[1] + (1.0 - y) * class_weights[0]


def weighted_bce(
  logits: Array,
  labels: Array,
  *,
  class_weights: Array | None = None,
  mask: Array | None = None,
) -> Array:
  """Class-weighted binary cross-entropy, averaged over valid frames.

  Args:
    logits: ``[batch, time]`` per-frame logits.
    labels: ``[batch, time]`` 0/1 labels.
    class_weights: ``[2]`` weights of class 0 and 1; default: balanced weights of these
      labels (:func:`class_weights_from_labels`).
    mask: ``[batch, time]`` 1 for valid frames (default all valid).

  Returns:
    Scalar ``sum(mask * c_y * bce) / sum(mask)``.
  """
  logits, labels, mask = _check_rank2(logits, labels, mask)
  cw = _per_frame_class_weight(labels, mask, class_weights)
  bce = optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(labels, logits.dtype))
  return jnp.sum(mask * cw * bce) / jnp.maximum(jnp.sum(mask), 1.0)


def window_mean(values: Array, mask: Array, window: int = 5) -> Array:
  """Mean of ``values`` over a centred window along time, ignoring masked frames.

  ``values``/``mask`` are ``[batch, time]``; the window is truncated at the clip ends, so
  the first frame averages frames ``0 .. window // 2``. Frames whose window holds no valid
  frame get 0.
  """
  if window < 1 or window % 2 == 0:
    raise ValueError(f"window must be a positive odd number, got {window}")
  half = window // 2
  v = values * mask
  pad = ((0, 0), (half, half))
  v = jnp.pad(v, pad)
  m = jnp.pad(mask, pad)
  t = values.shape[1]
  # Sum of ``window`` shifted copies: a loop over the (few) window offsets, not over time.
  num = sum(v[:, k : k + t] for k in range(window))
  den = sum(m[:, k : k + t] for k in range(window))
  return jnp.where(den > 0, num / jnp.maximum(den, 1.0), 0.0)


def confidence_weights(probs: Array, mask: Array, *, gamma: float = 1.0, window: int = 5) -> Array:
  """TCR confidence weights ``(1 - |p_t - pbar_t|) ** gamma``, mean 1 over valid frames.

  Computed entirely under ``stop_gradient``: the weights rescale the BCE terms but are not
  themselves optimised (the smoothness term is what pulls predictions together).
  """
  probs = jax.lax.stop_gradient(probs)
  pbar = window_mean(probs, mask, window)
  w = jnp.clip(1.0 - jnp.abs(probs - pbar), 0.0, 1.0) ** gamma
  w_mean = jnp.sum(w * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  w = w / jnp.maximum(w_mean, 1e-12)
  return jax.lax.stop_gradient(w * mask)


def smoothness_penalty(probs: Array, mask: Array) -> Array:
  """Mean squared difference of consecutive probabilities (pairs with both frames valid)."""
  pair = mask[:, 1:] * mask[:, :-1]
  diff2 = jnp.square(probs[:, 1:] - probs[:, :-1])
  return jnp.sum(pair * diff2) / jnp.maximum(jnp.sum(pair), 1.0)


def tcr_loss(
  logits: Array,
  labels: Array,
  *,
  class_weights: Array | None = None,
  mask: Array | None = None,
  gamma: float = 1.0,
  lam: float = 0.1,
  window: int = 5,
  tcr: bool = True,
) -> tuple[Array, dict[str, Array]]:
  """Temporal Confidence Reweighting loss (HYBRID.md item 4).

  Args:
    logits: ``[batch, time]`` per-frame logits of clips (time in order).
    labels: ``[batch, time]`` 0/1 frame labels.
    class_weights: ``[2]`` class weights; default balanced over these labels.
    mask: ``[batch, time]`` valid frames (default all).
    gamma: exponent of the confidence weight.
    lam: weight of the temporal smoothness term.
    window: centred window (odd) for the mean prediction ``pbar``.
    tcr: ``False`` disables both the confidence weights and the smoothness term, so the
      loss reduces to :func:`weighted_bce` (the "plain weighted BCE" ablation).

  Returns:
    ``(loss, aux)`` with ``aux = {"bce", "smoothness", "confidence_weights"}``.
  """
  logits, labels, mask = _check_rank2(logits, labels, mask)
  cw = _per_frame_class_weight(labels, mask, class_weights)
  bce = optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(labels, logits.dtype))
  probs = jax.nn.sigmoid(logits)
  n = jnp.maximum(jnp.sum(mask), 1.0)
  if tcr:
    w = confidence_weights(probs, mask, gamma=gamma, window=window)
    smooth = smoothness_penalty(probs, mask)
  else:
    w = mask
    smooth = jnp.zeros((), logits.dtype)
  bce_term = jnp.sum(mask * cw * w * bce) / n
  loss = bce_term + (lam * smooth if tcr else 0.0)
  return loss, {"bce": bce_term, "smoothness": smooth, "confidence_weights": w}
