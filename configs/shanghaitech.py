"""ShanghaiTech Campus (``tfds_builders/shanghaitech``): the paper's settings, 10 epochs
(Section III-B). Variant ``cpu``: the CPU-sized network on 128x128 frames."""

import ml_collections

from vad_jax.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return default.video_dataset_config("shanghaitech", num_epochs=10, checkpoint_every_steps=5000, variant=variant)
