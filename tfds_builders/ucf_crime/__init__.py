"""UCF-Crime dataset builder."""

from tfds_builders.ucf_crime.ucf_crime_dataset_builder import Builder

__all__ = ["Builder"]
