"""The three supervised classifiers built from a config (``model.name``): HybridModel-1,
the ConvLSTM baseline and EfficientNetV2-B0+HOG (``configs/classifier.py``)."""

import jax
import ml_collections

from vad_jax import precision
from vad_jax.hybrid.convlstm import ConvLSTMBaseline, hard_sigmoid_keras2
from vad_jax.hybrid.model import EfficientNetHOGClassifier, HybridModel1


def _size(value: int) -> int | None:
  return int(value) or None  # 0 in a config means "keep the input size"


def build(config: ml_collections.ConfigDict):
  """HybridModel-1, the ConvLSTM baseline or EfficientNetV2-B0+HOG (``model.name``)."""
  m = config.model
  dtype = precision.compute_dtype(config)
  if m.name == "hybrid":
    return HybridModel1(
      backbone=m.backbone,
      spatial_size=_size(m.spatial_size),
      temporal_size=_size(m.temporal_size),
      feature_dim=m.feature_dim,
      branches=m.branches,
      fusion=m.fusion,
      affm_hidden=m.affm_hidden,
      use_object_features=m.use_object_features,
      spatial_attention=m.spatial_attention,
      attention_kernel=m.attention_kernel,
      freeze_backbone=m.freeze_backbone,
      roi_output_size=tuple(m.roi_output_size),
      roi_sampling_ratio=m.roi_sampling_ratio,
      temporal_filters=tuple(m.temporal_filters),
      recurrent_dropout=m.recurrent_dropout,
      temporal_dropout=m.temporal_dropout,
      head_dropout=m.head_dropout,
      temporal_input=m.temporal_input,
      pooling=m.pooling,
      temporal_norm=m.temporal_norm,
      dtype=dtype,
    )
  if m.name == "convlstm":
    gate = {"sigmoid": jax.nn.sigmoid, "hard_sigmoid_keras2": hard_sigmoid_keras2}
    if m.recurrent_activation not in gate:
      raise ValueError(f"model.recurrent_activation must be one of {sorted(gate)}, got {m.recurrent_activation!r}")
    return ConvLSTMBaseline(
      filters=tuple(m.filters),
      recurrent_activation=gate[m.recurrent_activation],
      recurrent_dropout=m.recurrent_dropout,
      dropout=m.dropout,
      temporal_input=m.temporal_input,
      temporal_norm=m.temporal_norm,
      pooling=m.pooling,
      dtype=dtype,
    )
  if m.name == "effnet_hog":
    return EfficientNetHOGClassifier(
      backbone=m.backbone,
      image_size=_size(m.image_size),
      hog_size=m.hog_size,
      orientations=m.orientations,
      pixels_per_cell=tuple(m.pixels_per_cell),
      cells_per_block=tuple(m.cells_per_block),
      block_norm=m.block_norm,
      hog_dim=m.hog_dim,
      hidden=m.hidden,
      dropout=m.dropout,
      freeze_backbone=m.freeze_backbone,
      dtype=dtype,
    )
  raise ValueError(f"model.name {m.name!r} is not a classifier of this task; expected hybrid, convlstm or effnet_hog")
