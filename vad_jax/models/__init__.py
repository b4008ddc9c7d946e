"""Model building blocks and networks.

Dual-stream memory-augmented prediction network: ``temporal_shift`` (RTSM),
``attention`` (RCAM), ``memory``, ``networks``. HybridModel-1 and its baselines:
``convlstm``, ``efficientnet``, ``hog``, ``roi_align``, ``boxes``, ``hybrid``.
"""

from vad_jax.models.attention import ChannelAttention, ResidualChannelAttention
from vad_jax.models.boxes import Boxes, FileBoxSource, MotionBoxSource, OnnxDetectorBoxSource
from vad_jax.models.convlstm import ConvLSTM, ConvLSTMBaseline, ConvLSTMCell
from vad_jax.models.efficientnet import EfficientNetV2, EfficientNetV2B0
from vad_jax.models.hog import hog
from vad_jax.models.hybrid import AdaptiveFeatureFusion, EfficientNetHOGClassifier, HybridModel1
from vad_jax.models.memory import Memory, read_memory, update_memory
from vad_jax.models.networks import DualStreamNet, PredictionStream, frame_differences
from vad_jax.models.roi_align import roi_align
from vad_jax.models.temporal_shift import ResidualTemporalShift, temporal_shift
