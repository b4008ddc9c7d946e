"""UCSD Ped2 (``tfds_builders/ucsd_ped``, config ``ped2``).

The paper does not train on Ped2; its settings (Adam 0.9/0.999, lr 2e-5 cosine, batch 8,
t = 5, 256x256, M = 20) are kept and the length follows MNAD's 60 epochs. Frames are
grayscale (the JPEG release replicates one channel), so one channel is fed.

Variant ``mnad``: the MNAD widths (64-512) for a like-for-like comparison with MNAD.
Variant ``cpu``: the CPU-sized network on 64x64 frames, 20-60 minutes of training on 2
cores (docs/RESULTS.md). Variant ``cpu128``: four levels (16-128) on 128x128 frames for
2,800 steps (about 75 minutes on 2 cores), two training videos held out for validation
and calibration; the recipe of issue 12's CPU goal (docs/RESULTS.md).

  python -m vad_jax.train --config configs/ucsd_ped2.py:cpu --workdir runs/ped2_cpu \\
      --config.data.manual_dir=../shared/data/ucsd_ped2
"""

import ml_collections

from vad_jax.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return dataset_config("ped2", variant)


def dataset_config(builder_config: str, variant: str) -> ml_collections.ConfigDict:
  """Shared by the Ped1 and Ped2 configs."""
  if variant not in ("", "mnad", "cpu", "cpu128"):
    raise ValueError(f"unknown variant {variant!r}; expected '', 'mnad', 'cpu' or 'cpu128'")
  config = default.get_config("mnad" if variant == "mnad" else "")
  config.data.name = "ucsd_ped"
  config.data.builder_config = builder_config
  config.data.channels = 1
  config.num_epochs = 60
  config.checkpoint_every_steps = 1000
  if variant == "cpu":
    config.model.widths = (16, 32, 64)
    config.data.image_size = (64, 64)
    config.optimizer.learning_rate = 1e-3
    config.num_train_steps = 1800
    config.log_every_steps = 50
    config.checkpoint_every_steps = 300
  elif variant == "cpu128":
    config.model.widths = (16, 32, 64, 128)
    config.data.image_size = (128, 128)
    config.optimizer.learning_rate = 1e-3
    config.num_train_steps = 2800
    config.log_every_steps = 50
    config.checkpoint_every_steps = 400
    config.max_checkpoints_to_keep = 8  # every checkpoint, for the AUC-versus-time curve
    config.calibration.videos = "fold:0/8"  # validation (prediction error of unseen normal clips) and calibration
  return config
