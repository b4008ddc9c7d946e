"""UCSD Pedestrian (Ped1, Ped2) dataset builder."""

from tfds_builders.ucsd_ped.ucsd_ped_dataset_builder import Builder

__all__ = ["Builder"]
