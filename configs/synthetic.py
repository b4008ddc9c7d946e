"""The built-in synthetic walkway (``tfds_builders/synthetic_surveillance``): the demo.

A CPU-sized network on 64x64 grayscale frames that trains and evaluates in minutes on a
laptop. Variants: ``configs/synthetic.py:test`` (tiny, for the test suite) and
``configs/synthetic.py:paper`` (the paper-scale network on the ``large`` 256x256 set).
"""

import ml_collections

from configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "test", "paper"):
    raise ValueError(f"unknown variant {variant!r} of configs/synthetic.py; expected '', 'test' or 'paper'")
  config = default.get_config("test" if variant == "test" else "")
  config.data.name = "synthetic_surveillance"
  config.data.channels = 1
  if variant == "paper":
    config.data.builder_config = "large"
    config.num_epochs = 10
    return config
  if variant == "":
    config.model.widths = (16, 32, 64)
    config.data.image_size = (64, 64)
    config.optimizer.learning_rate = 1e-3
    config.num_train_steps = 300
    config.log_every_steps = 25
    config.checkpoint_every_steps = 100
  return config
