"""Objective of the dual-stream network, Eqs. (9)-(13).

For each stream: prediction loss ``Lp = ||prediction - target||^2`` (Eq. 9, averaged over
pixels) and feature discretization loss ``Ls`` (Eq. 10, averaged over the queries of
every memory module); ``L_i = Lp1 + alpha Ls1`` (Eq. 11), ``L_x = Lp2 + beta Ls2``
(Eq. 12), ``L = gamma_i L_i + gamma_x L_x`` (Eq. 13).
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

Array = Any


def prediction_loss(prediction: Array, target: Array) -> Array:
  """Eq. (9) as a per-pixel mean squared error, per example: ``[batch]``."""
  return jnp.mean(jnp.square(prediction - target), axis=tuple(range(1, prediction.ndim)))


def stream_loss(stream_aux: Mapping[str, Array], weight: float) -> dict[str, Array]:
  """Eqs. (11)/(12) for one stream, per example."""
  lp = prediction_loss(stream_aux["prediction"], stream_aux["target"])
  discretization = stream_aux["discretization"]
  ls = jnp.mean(discretization, axis=1) if discretization.shape[1] else jnp.zeros_like(lp)
  return {"prediction": lp, "discretization": ls, "total": lp + weight * ls}


def dual_stream_loss(
  aux: Mapping[str, Any], alpha: float = 0.1, beta: float = 0.1, gamma_i: float = 0.5, gamma_x: float = 0.5
) -> tuple[Array, dict[str, Array]]:
  """Eq. (13) averaged over the batch, with the named terms for logging.

  Args:
    aux: the second output of ``DualStreamNet``.
    alpha, beta: discretization weights of the spatial and temporal streams.
    gamma_i, gamma_x: weights of the spatial and temporal stream losses.
  """
  spatial = stream_loss(aux["spatial"], alpha)
  temporal = stream_loss(aux["temporal"], beta)
  total = gamma_i * spatial["total"] + gamma_x * temporal["total"]
  terms = {
    "loss": jnp.mean(total),
    "spatial_prediction": jnp.mean(spatial["prediction"]),
    "spatial_discretization": jnp.mean(spatial["discretization"]),
    "temporal_prediction": jnp.mean(temporal["prediction"]),
    "temporal_discretization": jnp.mean(temporal["discretization"]),
  }
  return terms["loss"], terms
