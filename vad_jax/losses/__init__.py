"""Training objectives."""

from vad_jax.losses.memory_prediction import dual_stream_loss, prediction_loss, stream_loss
