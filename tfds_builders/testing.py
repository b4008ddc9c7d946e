"""A TF-free stand-in for ``tfds.testing.DatasetBuilderTestCase``.

In tensorflow-datasets 4.9.10 ``tfds.testing.DatasetBuilderTestCase`` cannot be used
without TensorFlow: its base class is ``tf.test.TestCase``, its main test runs in
``tf`` graph and eager modes and reads the data back with ``as_dataset`` (a
``tf.data`` pipeline), and its module imports ``dill``. This class keeps the same
class attributes (``DATASET_CLASS``, ``SPLITS``, ``BUILDER_CONFIG_NAMES_TO_TEST``,
``EXAMPLE_DIR``) and checks what matters here, reading with ``as_data_source()``:

* ``download_and_prepare`` succeeds with the dummy data as the manual dir;
* every split has the expected number of records, in ``info`` and on disk, also
  after reloading the prepared dataset with a fresh builder;
* every record has the required keys of ``docs/conventions.md`` with the right types,
  and ``video`` / ``video_index`` / ``frame_index`` agree with ``metadata["videos"]``
  (contiguous videos, frames in order);
* no two splits share a frame (compared by video name and frame bytes).

Subclasses are picked up by pytest like any ``unittest.TestCase``; refer to this class
as ``testing.DatasetBuilderTestCase`` (module attribute) so that pytest does not also
collect the base class itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import unittest
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from . import common


def prepare(
  builder_cls: type[tfds.core.DatasetBuilder],
  data_dir: os.PathLike | str,
  manual_dir: os.PathLike | str,
  config: Any = None,
  **builder_kwargs: Any,
) -> tfds.core.DatasetBuilder:
  """Builds ``builder_cls`` from ``manual_dir`` into ``data_dir`` and returns the builder."""
  builder = builder_cls(data_dir=os.fspath(data_dir), config=config, **builder_kwargs)
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir),
      compute_stats=tfds.download.ComputeStatsMode.SKIP,
    )
  )
  return builder


def check_records(test: unittest.TestCase, builder: tfds.core.DatasetBuilder, split: str) -> list[dict]:
  """Reads ``split`` with ``as_data_source()`` and checks it against the conventions."""
  source = builder.as_data_source(split=split)
  records = [source[i] for i in range(len(source))]
  videos = builder.info.metadata["videos"][split]
  test.assertEqual(sum(v["length"] for v in videos), len(records), f"{split}: metadata lengths")
  start = 0
  for video_index, video in enumerate(videos):
    test.assertEqual(video["start"], start, f"{split}: start of {video['name']}")
    test.assertIn(video["label"], (-1, 0, 1))
    for frame_index in range(video["length"]):
      record = records[start + frame_index]
      for key in common.REQUIRED_KEYS:
        test.assertIn(key, record)
      name = record["video"]
      test.assertEqual(name.decode() if isinstance(name, bytes) else name, video["name"])
      test.assertEqual(int(record["video_index"]), video_index)
      test.assertEqual(int(record["frame_index"]), frame_index)
      test.assertIn(int(record["label"]), (-1, 0, 1))
      test.assertIsInstance(record["frame"], bytes)
      test.assertGreater(len(record["frame"]), 0)
      if "has_mask" in record:
        test.assertEqual(bool(record["has_mask"]), len(record["mask"]) > 0)
    start += video["length"]
  return records


class DatasetBuilderTestCase(unittest.TestCase):
  """Prepares every config of ``DATASET_CLASS`` from the dummy data and checks it."""

  DATASET_CLASS: ClassVar[type[tfds.core.DatasetBuilder] | None] = None
  SPLITS: ClassVar[dict[str, int]] = {}
  BUILDER_CONFIG_NAMES_TO_TEST: ClassVar[list[Any] | None] = None
  EXAMPLE_DIR: ClassVar[str | os.PathLike | None] = None
  BUILDER_KWARGS: ClassVar[dict[str, Any]] = {}

  @classmethod
  def dummy_data(cls) -> epath.Path:
    if cls.EXAMPLE_DIR is not None:
      return epath.Path(cls.EXAMPLE_DIR)
    return epath.Path(cls.DATASET_CLASS.code_path).parent / "dummy_data"

  def setUp(self):
    super().setUp()
    if self.DATASET_CLASS is None:
      raise AssertionError(f"Set {type(self).__name__}.DATASET_CLASS.")
    self.tmp_dir = tempfile.mkdtemp(prefix=f"{self.DATASET_CLASS.name}_")

  def tearDown(self):
    shutil.rmtree(self.tmp_dir, ignore_errors=True)
    super().tearDown()

  def _configs(self) -> list[Any]:
    if self.BUILDER_CONFIG_NAMES_TO_TEST:
      return list(self.BUILDER_CONFIG_NAMES_TO_TEST)
    return [c.name for c in self.DATASET_CLASS.BUILDER_CONFIGS] or [None]

  def test_info(self):
    builder = self.DATASET_CLASS(data_dir=self.tmp_dir)
    self.assertTrue(builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
    self.assertTrue(builder.info.disable_shuffling)
    self.assertTrue(builder.info.description)
    for key in common.REQUIRED_KEYS:
      self.assertIn(key, builder.info.features)

  def test_download_and_prepare_as_data_source(self):
    for config in self._configs():
      name = getattr(config, "name", config)
      with self.subTest(config=name):
        data_dir = epath.Path(self.tmp_dir) / str(name)
        builder = prepare(self.DATASET_CLASS, data_dir, self.dummy_data(), config, **self.BUILDER_KWARGS)
        self._check_builder(builder)
        reloaded = self.DATASET_CLASS(data_dir=os.fspath(data_dir), config=config)
        self.assertEqual(dict(reloaded.info.metadata), dict(builder.info.metadata))
        self._check_builder(reloaded)

  def _check_builder(self, builder: tfds.core.DatasetBuilder) -> None:
    self.assertEqual(
      {s: builder.info.splits[s].num_examples for s in builder.info.splits},
      self.SPLITS,
    )
    fingerprints = {}
    for split, expected in self.SPLITS.items():
      records = check_records(self, builder, split)
      self.assertEqual(len(records), expected, f"records in {split}")
      fingerprints[split] = {(r["video"], hashlib.md5(r["frame"]).hexdigest(), int(r["frame_index"])) for r in records}
    splits = list(fingerprints)
    for i, a in enumerate(splits):
      for b in splits[i + 1 :]:
        self.assertFalse(fingerprints[a] & fingerprints[b], f"splits {a} and {b} overlap")


def decode(record: dict, key: str = "frame") -> np.ndarray:
  """The decoded ``frame`` (or ``mask``) of a record."""
  return common.decode_image(record[key])
