"""Training objectives: the dual-stream network's Eqs. (9)-(13) and HybridModel-1's
Temporal Confidence Reweighting loss."""

from vad_jax.losses.memory_prediction import dual_stream_loss, prediction_loss, stream_loss
from vad_jax.losses.tcr import class_weights_from_labels, tcr_loss, weighted_bce
