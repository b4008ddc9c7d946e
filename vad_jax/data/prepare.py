"""Preparing the TFDS dataset named in a config before training or evaluation.

Builders live in ``vad_jax.tfds_builders.<name>.<name>_dataset_builder`` (the
repository's ``tfds_builders/`` folder); importing that module registers the builder
with TFDS. Preparation uses ``download_and_prepare`` (the
``tfds build`` command imports TensorFlow, which this project never needs).
"""

import importlib
import importlib.resources
import pathlib
import shutil

import jax
import ml_collections
import tensorflow_datasets as tfds
from absl import logging
from jax.experimental import multihost_utils

from vad_jax.tfds_builders import common

BUILDERS_DIR = pathlib.Path(str(importlib.resources.files("vad_jax.tfds_builders")))


def available_builders() -> list[str]:
  return sorted(p.parent.name for p in BUILDERS_DIR.glob("*/*_dataset_builder.py"))


def register(name: str) -> None:
  """Imports the builder module of dataset ``name`` (which registers it)."""
  base = name.partition(":")[0]
  if base not in available_builders():
    raise ValueError(f"unknown dataset {name!r}; the builders in {BUILDERS_DIR} are {available_builders()}")
  importlib.import_module(f"vad_jax.tfds_builders.{base}.{base}_dataset_builder")


def builder_for(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  register(data_config.name)
  full_name = data_config.name
  if data_config.builder_config:
    base, _, version = data_config.name.partition(":")
    full_name = f"{base}/{data_config.builder_config}" + (f":{version}" if version else "")
  return tfds.builder(full_name, data_dir=data_config.data_dir or None)


def check_splits(data_config: ml_collections.ConfigDict, splits: dict[str, str]) -> None:
  """``ValueError`` naming the dataset's splits if a ``{field: split}`` names none of them
  (empty values are skipped; ``"train+test"`` must name existing splits on both sides).
  The dataset must be prepared."""
  builder = builder_for(data_config)
  available = sorted(builder.info.splits.keys())
  wrong = [
    f"{field}={split!r}"
    for field, split in splits.items()
    if split and any(part.strip() not in available for part in split.split("+"))
  ]
  if wrong:
    raise ValueError(f"{', '.join(wrong)}: no such split in {builder.info.full_name}; its splits are {available}")


def remove_stale_preparations(builder: tfds.core.DatasetBuilder) -> list[pathlib.Path]:
  """Removes the ``incomplete.*`` folders that an interrupted preparation of this
  dataset config left (TFDS never reuses them); each removal is logged. Called before a
  new preparation, which the workdir lock and process 0's turn keep from running twice."""
  config_dir = pathlib.Path(str(builder.data_dir)).parent
  stale = sorted(p for p in config_dir.glob("incomplete.*") if p.is_dir()) if config_dir.is_dir() else []
  for path in stale:
    logging.warning("removing %s, left by an interrupted preparation", path)
    shutil.rmtree(path, ignore_errors=True)
  return stale


def ensure_prepared(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Prepares the dataset if needed (``data.prepare``) and returns its builder.

  A dataset prepared already is checked against ``data.manual_dir`` by its builder
  (``FrameBuilder.check_prepared_source``): the ``own_videos`` builder refuses data
  prepared from another footage folder.

  With several hosts, process 0 prepares first and the others wait, then prepare too if
  their data directory is not shared.
  """
  builder = builder_for(data_config)

  def prepare():
    if builder.is_prepared():
      if data_config.manual_dir and isinstance(builder, common.FrameBuilder):
        builder.check_prepared_source(data_config.manual_dir)  # own footage: the same folder?
      return
    if not data_config.prepare:
      raise FileNotFoundError(
        f"dataset {builder.info.full_name} is not prepared in {builder.data_dir}; set "
        f"--config.data.prepare=True (and --config.data.manual_dir for manually downloaded data) "
        f"or point --config.data.data_dir at a prepared copy"
      )
    remove_stale_preparations(builder)
    manual_dir = data_config.manual_dir or None
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))

  if jax.process_count() > 1:
    if jax.process_index() == 0:
      prepare()
    multihost_utils.sync_global_devices("vad_jax dataset prepared")
    if jax.process_index() != 0:
      builder = builder_for(data_config)
      prepare()
  else:
    prepare()
  return builder
