"""Model building blocks and networks."""

from vad_jax.models.attention import ChannelAttention, ResidualChannelAttention
from vad_jax.models.memory import Memory, read_memory, update_memory
from vad_jax.models.networks import DualStreamNet, PredictionStream, frame_differences
from vad_jax.models.temporal_shift import ResidualTemporalShift, temporal_shift
