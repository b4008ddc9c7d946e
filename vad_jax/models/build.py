"""Builds the model named by a config."""

import jax.numpy as jnp
import ml_collections

from vad_jax.models.networks import DualStreamNet


def build_model(config: ml_collections.ConfigDict) -> DualStreamNet:
  """The network of ``config.model`` with the loss margins of ``config.loss``."""
  m = config.model
  if m.name != "dual_stream":
    raise ValueError(f"unknown model.name {m.name!r}; expected 'dual_stream'")
  return DualStreamNet(
      widths=tuple(m.widths), num_items=m.num_items, spatial_inputs=m.spatial_inputs or None,
      fusion=m.fusion, update_memory_at_test=m.update_memory_at_test, use_rtsm=m.use_rtsm,
      use_rcam=m.use_rcam, use_memory=m.use_memory, skip_query=m.skip_query, fold_fraction=m.fold_fraction,
      circular_shift=m.circular_shift, attention_reduction=m.attention_reduction,
      margin_a=config.loss.margin_a, margin_b=config.loss.margin_b, hinge=config.loss.hinge,
      negative_slope=m.negative_slope, dtype=jnp.dtype(m.dtype))
