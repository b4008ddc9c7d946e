"""CUHK Avenue dataset builder."""

from tfds_builders.avenue.avenue_dataset_builder import Builder

__all__ = ["Builder"]
