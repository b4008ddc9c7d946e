"""ShanghaiTech Campus dataset builder."""

from tfds_builders.shanghaitech.shanghaitech_dataset_builder import Builder

__all__ = ["Builder"]
