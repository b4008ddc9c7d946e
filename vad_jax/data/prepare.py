"""Preparing the TFDS dataset named in a config before training or evaluation.

Builders live in ``vad_jax.tfds_builders.<name>.<name>_dataset_builder`` (the
repository's ``tfds_builders/`` folder); importing that module registers the builder
with TFDS. Preparation uses ``download_and_prepare`` (the
``tfds build`` command imports TensorFlow, which this project never needs).

What a person sees: one line before a preparation (what, from where, to where), one
after it (frames per split), and one per kind of input the builder skipped, naming them
(all are in the prepared data's ``metadata["skipped"]``). TFDS's own lines about
downloads ("Downloading and preparing dataset Unknown size", the builders leave them
out) and about the folder of a dataset not prepared yet ("Variant folder ... has no
dataset_info.json") are not shown.
"""

import contextlib
import importlib
import importlib.resources
import pathlib
import shutil

import jax
import ml_collections
import tensorflow_datasets as tfds
from absl import logging
from jax.experimental import multihost_utils

from vad_jax import metric_writers
from vad_jax.tfds_builders import common

# TFDS's warning when it looks for a prepared dataset in a folder that holds none yet.
_TFDS_NOT_PREPARED_WARNING = "Variant folder %s has no %s"
SKIPPED_SHOWN = 10  # names shown per kind of skipped input

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


def _not_tfds_not_prepared_warning(record) -> bool:
  return record.msg != _TFDS_NOT_PREPARED_WARNING


@contextlib.contextmanager
def quiet_tfds():
  """Leaves out TFDS's "Variant folder ... has no dataset_info.json" warning, which it
  logs for every dataset that is about to be prepared."""
  logger = logging.get_absl_logger()
  logger.addFilter(_not_tfds_not_prepared_warning)
  try:
    yield
  finally:
    logger.removeFilter(_not_tfds_not_prepared_warning)


def report_prepared(builder: tfds.core.DatasetBuilder) -> None:
  """The frames of each split of a dataset just prepared, and what its builder skipped,
  by kind, with the names (``metadata["skipped"]`` lists them all, with details)."""
  splits = builder.info.splits
  counts = ", ".join(f"{name} {splits[name].num_examples} frames" for name in sorted(splits.keys()))
  metric_writers.say(f"prepared {builder.info.full_name}: {counts}")
  skipped = (builder.info.metadata or {}).get("skipped") or {}
  by_reason: dict[str, list[str]] = {}
  for item in skipped.get("items", []):
    name, split = str(item["name"]), str(item["split"])
    by_reason.setdefault(item["reason"], []).append(name if name.startswith(f"{split}/") else f"{split}/{name}")
  for reason, names in by_reason.items():
    more = f" and {len(names) - SKIPPED_SHOWN} more" if len(names) > SKIPPED_SHOWN else ""
    metric_writers.say(f"skipped, {reason}: {', '.join(names[:SKIPPED_SHOWN])}{more}")


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
    with quiet_tfds():
      prepared = builder.is_prepared()
    if prepared:
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
    metric_writers.say(
      f"preparing {builder.info.full_name}"
      + (f" from {manual_dir}" if manual_dir else "")
      + f" into {builder.data_dir} (once: later runs read the prepared data)"
    )
    with quiet_tfds():
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    report_prepared(builder)

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
