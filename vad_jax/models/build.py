"""Builds the model named by a config (``config.model.name``)."""

import jax
import jax.numpy as jnp
import ml_collections

from vad_jax.models.convlstm import ConvLSTMBaseline, hard_sigmoid_keras2
from vad_jax.models.hybrid import EfficientNetHOGClassifier, HybridModel1
from vad_jax.models.networks import DualStreamNet

PREDICTION_MODELS = ("dual_stream",)
CLASSIFIERS = ("hybrid", "convlstm", "effnet_hog")


def is_classifier(config: ml_collections.ConfigDict) -> bool:
  """True for the supervised clip/frame classifiers (HybridModel-1 and its baselines)."""
  return config.model.name in CLASSIFIERS


def _size(value: int) -> int | None:
  return int(value) or None  # 0 in a config means "keep the input size"


def build_model(config: ml_collections.ConfigDict):
  """The network of ``config.model`` (with the loss margins of ``config.loss`` for the
  dual-stream network)."""
  m = config.model
  dtype = jnp.dtype(m.dtype)
  if m.name == "dual_stream":
    return DualStreamNet(
        widths=tuple(m.widths), num_items=m.num_items, spatial_inputs=m.spatial_inputs or None,
        fusion=m.fusion, update_memory_at_test=m.update_memory_at_test, use_rtsm=m.use_rtsm,
        use_rcam=m.use_rcam, use_memory=m.use_memory, skip_query=m.skip_query, fold_fraction=m.fold_fraction,
        circular_shift=m.circular_shift, attention_reduction=m.attention_reduction,
        margin_a=config.loss.margin_a, margin_b=config.loss.margin_b, hinge=config.loss.hinge,
        negative_slope=m.negative_slope, dtype=dtype)
  if m.name == "hybrid":
    return HybridModel1(
        backbone=m.backbone, spatial_size=_size(m.spatial_size), temporal_size=_size(m.temporal_size),
        feature_dim=m.feature_dim, branches=m.branches, fusion=m.fusion, affm_hidden=m.affm_hidden,
        use_object_features=m.use_object_features, spatial_attention=m.spatial_attention,
        attention_kernel=m.attention_kernel, freeze_backbone=m.freeze_backbone,
        roi_output_size=tuple(m.roi_output_size), roi_sampling_ratio=m.roi_sampling_ratio,
        temporal_filters=tuple(m.temporal_filters), recurrent_dropout=m.recurrent_dropout,
        temporal_dropout=m.temporal_dropout, head_dropout=m.head_dropout, dtype=dtype)
  if m.name == "convlstm":
    gate = {"sigmoid": jax.nn.sigmoid, "hard_sigmoid_keras2": hard_sigmoid_keras2}
    if m.recurrent_activation not in gate:
      raise ValueError(f"model.recurrent_activation must be one of {sorted(gate)}, got {m.recurrent_activation!r}")
    return ConvLSTMBaseline(
        filters=tuple(m.filters), recurrent_activation=gate[m.recurrent_activation],
        recurrent_dropout=m.recurrent_dropout, dropout=m.dropout, dtype=dtype)
  if m.name == "effnet_hog":
    return EfficientNetHOGClassifier(
        backbone=m.backbone, image_size=_size(m.image_size), hog_size=m.hog_size,
        orientations=m.orientations, pixels_per_cell=tuple(m.pixels_per_cell),
        cells_per_block=tuple(m.cells_per_block), block_norm=m.block_norm, hog_dim=m.hog_dim,
        hidden=m.hidden, dropout=m.dropout, freeze_backbone=m.freeze_backbone, dtype=dtype)
  raise ValueError(f"unknown model.name {m.name!r}; expected one of {PREDICTION_MODELS + CLASSIFIERS}")
