"""CUHK Avenue (``tfds_builders/avenue``, official masks): the paper's settings, 50 epochs
(Section III-B). Variant ``cpu``: the CPU-sized network on 128x128 frames."""

import ml_collections

from vad_jax.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return default.video_dataset_config("avenue", num_epochs=50, checkpoint_every_steps=2000, variant=variant)
