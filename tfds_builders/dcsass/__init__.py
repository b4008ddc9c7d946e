"""DCSASS (UCF-Crime clips with clip labels) dataset builder."""

from tfds_builders.dcsass.dcsass_dataset_builder import Builder

__all__ = ["Builder"]
