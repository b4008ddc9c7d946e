"""UCSD Ped1 (``tfds_builders/ucsd_ped``, config ``ped1``); see configs/ucsd_ped2.py."""

import ml_collections

from vad_jax.configs import ucsd_ped2


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return ucsd_ped2.dataset_config("ped1", variant)
