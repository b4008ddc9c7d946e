"""The built-in synthetic walkway (``tfds_builders/synthetic_surveillance``): the demo.

A CPU-sized network on 64x64 grayscale frames that trains and evaluates in minutes on a
laptop. Two settings differ from the paper's, for a short CPU run (measured in
docs/RESULTS.md): Adam 1e-3 instead of 2e-5 (250 steps instead of 50 epochs), and
discretization weights alpha = beta = 0.01 instead of 0.1 (at 0.1 the memory terms slow
down learning the motion of the walkers within 250 steps). Variants:
``configs/synthetic.py:test`` (tiny, for the test suite) and ``configs/synthetic.py:paper``
(the paper-scale network on the ``large`` 256x256 set).
"""

import ml_collections

from vad_jax.configs import default


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
    config.loss.alpha = 0.01
    config.loss.beta = 0.01
    config.num_train_steps = 250
    config.log_every_steps = 25
    config.checkpoint_every_steps = 100
  return config
