"""Tests of the DCSASS label parsing, defect handling, splits and builder.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow, so the builder tests use the
TF-free stand-in `tfds_builders.testing.DatasetBuilderTestCase` on `dummy_data/`
(prepare, split sizes, schema, reload) and check labels, splits and metadata on top.
"""

import dataclasses
import os
import pathlib
import shutil

os.environ.setdefault("TFDS_DISABLE_TF", "1")

import pytest  # noqa: E402

from vad_jax.tfds_builders import (
  common,  # noqa: E402
  testing,  # noqa: E402
)
from vad_jax.tfds_builders.dcsass import dcsass_dataset_builder as dcsass  # noqa: E402

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
ROOT = DUMMY / "DCSASS Dataset"


# ------------------------------------------------------------------- parsers


def test_clip_ids():
  assert dcsass.parse_clip_id("Abuse001_x264_12") == (dcsass.ClipId("Abuse001_x264", 12), False)
  assert dcsass.parse_clip_id("Abuse001_x264-3") == (dcsass.ClipId("Abuse001_x264", 3), True)
  assert dcsass.ClipId("RoadAccidents010_x264", 0).name == "RoadAccidents010_x264_0"
  with pytest.raises(ValueError):
    dcsass.parse_clip_id("Abuse001_x264")


def test_csv_defects_mixed_line_ends():
  text = (
    "Abuse001_x264_0,Abuse,0\r\n"
    "Abuse001_x264_1,Abuse,1\n"
    "Abuse001_x264_1,Abuse,1\r\n"  # Identical duplicate.
    "Abuse001_x264_2,Abuse,\n"  # Blank label.
    "Abuse001_x264-3,Abuse,1\n"  # `-` before the index.
    "\n"
    "Abuse001_x264_4,Assault,0\n"
  )  # Class field disagrees with the file.
  table = dcsass.parse_label_csv(text, "Abuse")
  assert table.labels == {"Abuse001_x264_0": 0, "Abuse001_x264_1": 1, "Abuse001_x264_3": 1, "Abuse001_x264_4": 0}
  assert table.blank_label == ["Abuse001_x264_2"]
  assert table.duplicate_row == ["Abuse001_x264_1"]
  assert table.normalised_id == ["Abuse001_x264-3"]
  assert table.class_field_mismatch == ["Abuse001_x264_4"]


@pytest.mark.parametrize(
  "text",
  [
    "Abuse001_x264_0,Abuse,0\nAbuse001_x264_0,Abuse,1\n",  # Conflicting duplicate.
    "Abuse001_x264-0,Abuse,0\nAbuse001_x264_0,Abuse,1\n",  # Conflict after repair.
    "Abuse001_x264_0,Abuse,2\n",  # Not a label.
    "Abuse001_x264_0,Abuse\n",  # Two fields.
    "clip_id,class,label\n",  # A header is not expected either.
  ],
)
def test_csv_errors(text):
  with pytest.raises(ValueError):
    dcsass.parse_label_csv(text, "Abuse")


def test_fixture_has_the_real_defects():
  assert b"\r\n" not in (ROOT / "Labels/Abuse.csv").read_bytes()
  assert (ROOT / "Labels/Shoplifting.csv").read_bytes().count(b"\r\n") == 5
  assert (ROOT / "Abuse/Abuse001_x264.mp4").is_dir()  # Folder named like a file.
  nested = ROOT / "DCSASS Dataset"
  for path in ROOT.rglob("*"):
    if path.is_file() and nested not in path.parents:
      assert (nested / path.relative_to(ROOT)).read_bytes() == path.read_bytes()


def test_plan_counts_every_defect_and_reads_nested_copy_once():
  plan = dcsass.plan_dataset(DUMMY)
  assert [c.clip.name for c in plan.clips] == [
    "Abuse001_x264_0",
    "Abuse001_x264_1",
    "Abuse018_x264_0",
    "Abuse018_x264_1",
    "Shoplifting001_x264_0",
    "Shoplifting001_x264_1",
    "Shoplifting002_x264_0",
    "Shoplifting016_x264_0",
    "Shoplifting016_x264_1",
  ]
  assert all("DCSASS Dataset/DCSASS Dataset" not in os.fspath(c.path) for c in plan.clips)
  assert plan.skipped == [
    ("Abuse001_x264_2", "blank_label"),
    ("Abuse002_x264_0", "missing_clip_file"),
    ("Shoplifting001_x264_2", "missing_label_row"),
  ]
  assert plan.notes == {
    "nested_copy": ["DCSASS Dataset/DCSASS Dataset"],
    "duplicate_row": ["Abuse001_x264_1"],
    "normalised_id": ["Abuse018_x264-0"],
  }
  shoplifting = dcsass.plan_dataset(DUMMY, classes=("Shoplifting",))
  assert {c.class_name for c in shoplifting.clips} == {"Shoplifting"}
  assert len(shoplifting.clips) == 5


def test_nested_copy_that_differs_is_noted_not_read(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY / "DCSASS Dataset", manual / "DCSASS Dataset")
  (manual / "DCSASS Dataset/DCSASS Dataset/Labels/Abuse.csv").write_text("garbage\n")
  plan = dcsass.plan_dataset(manual)
  assert plan.notes["nested_copy_differs"] == ["DCSASS Dataset/DCSASS Dataset: Labels/Abuse.csv"]
  assert len(plan.clips) == 9


def test_source_video_split_never_shares_a_video():
  names = [f"{c}{i:03d}_x264" for c in ("Abuse", "Arrest", "Shoplifting") for i in range(1, 120)]
  clips = [dcsass.ClipId(v, k) for v in names for k in range(5)]
  by_split = {"train": set(), "test": set()}
  for clip in clips:
    by_split[dcsass.split_of(clip, "source_video", 0.2)].add(clip.source_video)
  assert not by_split["train"] & by_split["test"]
  assert 0.12 < len(by_split["test"]) / len(names) < 0.28
  # The clip-level ("as published") split mixes the clips of one video.
  clip_split = {"train": set(), "test": set()}
  for clip in clips:
    clip_split[dcsass.split_of(clip, "clip", 0.2)].add(clip.source_video)
  assert clip_split["train"] & clip_split["test"]


# ------------------------------------------------------------------- builder


def _read(builder, split):
  source = builder.as_data_source()[split]
  return [source[i] for i in range(len(source))]


class DefaultTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  # train: Abuse001_0/1 (4+5), Shoplifting001_0/1 (5+4), Shoplifting002_0 (6);
  # test: Abuse018_0/1 (6+4), Shoplifting016_0/1 (4+5).
  SPLITS = {"train": 24, "test": 19}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    self.assertEqual(builder.info.file_format.value, "array_record")
    metadata = builder.info.metadata
    self.assertEqual(
      metadata["source_videos"],
      {
        "train": ["Abuse001_x264", "Shoplifting001_x264", "Shoplifting002_x264"],
        "test": ["Abuse018_x264", "Shoplifting016_x264"],
      },
    )
    self.assertEqual(
      [(v["name"], v["length"], v["label"]) for v in metadata["videos"]["test"]],
      [
        ("Abuse018_x264_0", 6, 0),
        ("Abuse018_x264_1", 4, 1),
        ("Shoplifting016_x264_0", 4, 1),
        ("Shoplifting016_x264_1", 5, 0),
      ],
    )
    self.assertEqual(metadata["skipped"]["counts"], {"blank_label": 1, "missing_clip_file": 1, "missing_label_row": 1})
    self.assertEqual(metadata["notes"]["duplicate_row"], ["Abuse001_x264_1"])
    self.assertEqual(metadata["notes"]["normalised_id"], ["Abuse018_x264-0"])
    self.assertEqual(metadata["notes"]["nested_copy"], ["DCSASS Dataset/DCSASS Dataset"])
    train, test = _read(builder, "train"), _read(builder, "test")
    self.assertEqual(sum(r["label"] for r in train), 5 + 4)  # Abuse001_1, Shoplifting001_1.
    self.assertEqual(sum(r["label"] for r in test), 4 + 4)  # Abuse018_1, Shoplifting016_0.
    record = test[6]  # Abuse018_x264_1, frame 0.
    self.assertEqual(
      (record["video"], record["clip_id"], record["clip_index"]), (b"Abuse018_x264_1", b"Abuse018_x264_1", 1)
    )
    self.assertEqual((record["frame_index"], record["label"], record["clip_label"]), (0, 1, 1))
    self.assertEqual((record["class_name"], record["video_index"]), (b"Abuse", 1))
    self.assertEqual(common.decode_image(record["frame"]).shape, (24, 32, 3))
    # No source video in both splits.
    sources = {
      split: {r["clip_id"].rsplit(b"_", 1)[0] for r in records} for split, records in (("train", train), ("test", test))
    }
    self.assertFalse(sources["train"] & sources["test"])


class AsPublishedTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["as_published"]
  SPLITS = {"train": 34, "test": 9}  # test: Abuse018_1 (4), Shoplifting001_0 (5).

  def _check_builder(self, builder):
    super()._check_builder(builder)
    sources = builder.info.metadata["source_videos"]
    self.assertEqual(set(sources["train"]) & set(sources["test"]), {"Abuse018_x264", "Shoplifting001_x264"})


class ShopliftingTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["shoplifting"]
  SPLITS = {"train": 5 + 4 + 6, "test": 4 + 5}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    self.assertEqual({r["class_name"] for r in _read(builder, "train")}, {b"Shoplifting"})
    self.assertEqual(builder.info.metadata["skipped"]["counts"], {"missing_label_row": 1})


class ShopliftingAsPublishedStrideTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [
    dataclasses.replace(dcsass.SHOPLIFTING_AS_PUBLISHED, name="sap_s2", frame_stride=2, frame_size=(12, 16))
  ]
  # Stride 2: train clips of 4, 6, 4, 5 frames keep 2, 3, 2, 3; test 5 -> 3.
  SPLITS = {"train": 10, "test": 3}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    metadata = builder.info.metadata
    self.assertEqual([v["name"] for v in metadata["videos"]["test"]], ["Shoplifting001_x264_0"])
    self.assertIn("Shoplifting001_x264", metadata["source_videos"]["train"])
    frame = _read(builder, "train")[0]["frame"]
    self.assertEqual(common.decode_image(frame).shape, (12, 16, 3))


def test_configs():
  configs = {c.name: c for c in dcsass.Builder.BUILDER_CONFIGS}
  assert configs["default"].split_by == "source_video"
  assert "as published" in configs["as_published"].description.lower()
  assert configs["as_published"].split_by == "clip"
  assert (configs["default"].frame_size, configs["default"].frame_stride) == (None, 1)
