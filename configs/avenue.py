"""CUHK Avenue (``tfds_builders/avenue``, official masks): the paper's settings, 50 epochs.

Variant ``cpu``: the CPU-sized network on 128x128 frames for a laptop-scale run.
"""

import ml_collections

from configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "cpu"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'cpu'")
  config = default.get_config("cpu" if variant == "cpu" else "")
  config.data.name = "avenue"
  config.num_epochs = 50  # Section III-B
  config.checkpoint_every_steps = 2000
  if variant == "cpu":
    config.optimizer.learning_rate = 1e-3
    config.num_train_steps = 3000
  return config
