"""Procedural surveillance videos (the project's built-in dataset) builder."""

from tfds_builders.synthetic_surveillance.synthetic_surveillance_dataset_builder import Builder

__all__ = ["Builder"]
