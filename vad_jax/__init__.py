"""vad_jax: video anomaly detection in JAX/Flax.

Subpackages and modules, one concern each (docs/architecture.md):
  commands/      the user commands: vad-jax train|evaluate|calibrate|detect|export|benchmark
  studies/       study tools: ablations, folds, curve, ensemble, device check, data throughput
  loop.py        the training loop (train_and_evaluate)
  tasks.py       the task interface and the map from configs to tasks
  state.py       training state: creation, sharded initialisation, restore
  detector.py    the Python API: load a trained model, score videos and streams, export
  dual_stream/   system 1: the dual-stream memory-augmented prediction network
  hybrid/        system 2: HybridModel-1 and its ConvLSTM and EfficientNetV2-B0+HOG baselines
  data/          input pipeline over the TFDS datasets of ``vad_jax.tfds_builders``
  video/         video sources, model windows, per-frame results, annotated output
  configs/       the shipped configs (``--config NAME[:variant]``)
  metrics.py, plots.py, sharding.py, checkpointing.py, metric_writers.py, throughput.py, export.py
  xla_cpu.py     XLA:CPU flags chosen by measurement, set here on import (before JAX's CPU client exists)
"""

from vad_jax import xla_cpu

xla_cpu.configure()

__version__ = "0.1.0"
