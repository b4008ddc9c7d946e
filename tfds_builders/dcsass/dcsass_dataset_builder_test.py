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
OFFICIAL = DUMMY / "official"
ROOT = OFFICIAL / "DCSASS Dataset"


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
  plan = dcsass.plan_dataset(OFFICIAL)
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
  shoplifting = dcsass.plan_dataset(OFFICIAL, classes=("Shoplifting",))
  assert {c.class_name for c in shoplifting.clips} == {"Shoplifting"}
  assert len(shoplifting.clips) == 5


def test_nested_copy_that_differs_is_noted_not_read(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(OFFICIAL / "DCSASS Dataset", manual / "DCSASS Dataset")
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
  EXAMPLE_DIR = OFFICIAL
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
  EXAMPLE_DIR = OFFICIAL
  BUILDER_CONFIG_NAMES_TO_TEST = ["as_published"]
  SPLITS = {"train": 34, "test": 9}  # test: Abuse018_1 (4), Shoplifting001_0 (5).

  def _check_builder(self, builder):
    super()._check_builder(builder)
    sources = builder.info.metadata["source_videos"]
    self.assertEqual(set(sources["train"]) & set(sources["test"]), {"Abuse018_x264", "Shoplifting001_x264"})


class ShopliftingTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  EXAMPLE_DIR = OFFICIAL
  BUILDER_CONFIG_NAMES_TO_TEST = ["shoplifting"]
  SPLITS = {"train": 5 + 4 + 6, "test": 4 + 5}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    self.assertEqual({r["class_name"] for r in _read(builder, "train")}, {b"Shoplifting"})
    self.assertEqual(builder.info.metadata["skipped"]["counts"], {"missing_label_row": 1})


class ShopliftingAsPublishedStrideTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  EXAMPLE_DIR = OFFICIAL
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
  assert configs["default"].split_by == "stratified"  # by source video, stratified per class
  assert "as published" in configs["as_published"].description.lower()
  assert configs["as_published"].split_by == "clip"
  assert (configs["default"].frame_size, configs["default"].frame_stride) == (None, 1)


# ------------------------------------------------ ids that contradict their place

GAP = DUMMY / "gap_typo"


def test_misplaced_ids_are_found_within_their_block():
  rows = dcsass.parse_label_csv(
    "Robbery047_x264_0,Robbery,0\nRobbery047_x264_1,Robbery,1\nRobbery046_x264_2,Robbery,1\n"
    "Robbery047_x264_3,Robbery,1\nRobbery050_x264_0,Robbery,0\nRobbery048_x264_0,Robbery,1\n"
    "Robbery050_x264_1,Robbery,0\nRobbery050_x264_2,Robbery,0\n",
    "Robbery",
  ).rows
  found = dcsass.find_misplaced_ids(rows)
  assert [(m.row.clip.name, m.block_video, m.fills_gap) for m in found] == [
    ("Robbery046_x264_2", "Robbery047_x264", True),
    ("Robbery048_x264_0", "Robbery050_x264", False),  # Robbery050 has its own clip 0.
  ]
  assert found[0].corrected.name == "Robbery047_x264_2"
  # A video's first or last row, or one between two different videos, is not misplaced.
  assert not dcsass.find_misplaced_ids(rows[:2] + rows[3:5])


def test_gap_filling_ids_are_reported_and_create_no_phantom_video():
  plan = dcsass.plan_dataset(GAP)
  names = [c.clip.name for c in plan.clips]
  # The typo rows are read as the clips they fill, with their files, wherever they lie.
  assert "Robbery047_x264_2" in names and "Stealing036_x264_1" in names
  robbery_2 = next(c for c in plan.clips if c.clip.name == "Robbery047_x264_2")
  assert robbery_2.path.name == "Robbery046_x264_2.mp4" and robbery_2.label == 1
  assert {c.clip.source_video for c in plan.clips}.isdisjoint(
    {"Robbery046_x264", "Stealing019_x264", "Stealing079_x264"}
  )
  assert [n.split(" ")[:3] for n in plan.notes["gap_filling_id"]] == [
    ["Robbery046_x264_2", "->", "Robbery047_x264_2"],
    ["Stealing019_x264_1", "->", "Stealing036_x264_1"],
  ]
  assert "Stealing.csv line 5" in plan.notes["inconsistent_clip_id"][0]
  assert plan.skipped == [
    ("Stealing079_x264_0", "inconsistent_clip_id"),
    ("Stealing062_x264_1", "inconsistent_clip_location"),
  ]
  assert plan.counts["noted_gap_filling_id"] == 2


class GapTypoTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = dcsass.Builder
  EXAMPLE_DIR = GAP
  BUILDER_CONFIG_NAMES_TO_TEST = [
    "default",
    dataclasses.replace(dcsass.DEFAULT, name="by_hash", split_by="source_video"),
  ]
  # 16 clips: Robbery047 4+3+5+3, 050 3+4, 102 3+3, 137 4+3; Stealing036 3+4+3, 058 3+4, 062 3.
  SPLITS = None

  def _check_builder(self, builder):
    metadata = builder.info.metadata
    counts = metadata["counts"]["splits"]
    self.SPLITS = {split: counts[split]["frames"] for split in ("train", "test")}
    self.assertEqual(sum(self.SPLITS.values()), 4 + 3 + 5 + 3 + 3 + 4 + 3 + 3 + 4 + 3 + 3 + 4 + 3 + 3 + 4 + 3)
    super()._check_builder(builder)
    sources = metadata["source_videos"]
    self.assertFalse(set(sources["train"]) & set(sources["test"]))
    every = set(sources["train"]) | set(sources["test"])
    self.assertEqual(len(every), 7)
    self.assertFalse(every & {"Robbery046_x264", "Stealing019_x264", "Stealing079_x264"})
    records = _read(builder, "train") + _read(builder, "test")
    by_clip = {}
    for r in records:
      by_clip.setdefault(r["clip_id"], []).append(r)
    fixed = by_clip[b"Robbery047_x264_2"]
    self.assertEqual((len(fixed), fixed[0]["clip_index"], fixed[0]["label"]), (5, 2, 1))
    self.assertEqual(by_clip[b"Stealing036_x264_1"][0]["label"], 1)
    self.assertEqual(len(metadata["notes"]["gap_filling_id"]), 2)
    self.assertEqual(metadata["counts"]["inputs"]["noted_gap_filling_id"], 2)
    self.assertEqual(metadata["skipped"]["counts"], {"inconsistent_clip_id": 1, "inconsistent_clip_location": 1})


# ------------------------------------------------------------- stratified splits


def _clips(spec):
  """{(class, video): [labels]} -> Clips (paths unused)."""
  return [
    dcsass.Clip(dcsass.ClipId(video, k), pathlib.Path("x.mp4"), class_name, label)
    for (class_name, video), labels in spec.items()
    for k, label in enumerate(labels)
  ]


def test_stratified_split_per_class():
  rng = __import__("random").Random(0)
  spec = {}
  for class_name, num_videos in (("Explosion", 30), ("Fighting", 6), ("Arrest", 2), ("Abuse", 1)):
    for v in range(num_videos):
      clips = rng.randint(4, 40)
      positives = rng.randint(0, clips // 2) if v % 5 else 0
      spec[(class_name, f"{class_name}{v:03d}_x264")] = [1] * positives + [0] * (clips - positives)
  clips = _clips(spec)
  split = dcsass.stratified_split(clips, 0.2, seed=0)
  assert split == dcsass.stratified_split(clips, 0.2, seed=0)  # deterministic
  assert split != dcsass.stratified_split(clips, 0.2, seed=1)
  summary = dcsass.split_summary(clips, {c.clip.name: split[c.clip.source_video] for c in clips})
  for class_name in ("Explosion", "Fighting", "Arrest"):
    assert set(summary[class_name]) == {"train", "test"}, class_name
  assert set(summary["Abuse"]) == {"train"}  # one source video stays in train
  explosion = summary["Explosion"]
  positives = explosion["test"]["positive_clips"] + explosion["train"]["positive_clips"]
  largest = max(sum(labels) for (c, _), labels in spec.items() if c == "Explosion")
  assert abs(explosion["test"]["positive_clips"] - 0.2 * positives) <= largest / 2
  assert 3 <= explosion["test"]["source_videos"] <= 9
  # Leak-free by construction: one split per source video.
  assert all(s in ("train", "test") for s in split.values())
  with pytest.raises(ValueError, match="split_by"):
    dcsass.DcsassConfig(name="x", split_by="video")


def test_metadata_records_labels_layout_split_and_counts(tmp_path):
  builder = testing.prepare(dcsass.Builder, tmp_path / "data", OFFICIAL, "default")
  metadata = builder.info.metadata
  assert metadata["layout"].startswith("DCSASS Dataset/ (Labels/<Class>.csv")
  assert "nested copies not read: DCSASS Dataset/DCSASS Dataset" in metadata["layout"]
  assert "clip labels" in metadata["labels"] and "stratified" in metadata["labels"]
  assert metadata["split"]["by"] == "stratified"
  assert metadata["split"]["per_class"]["Abuse"] == {
    "train": {"source_videos": 1, "clips": 2, "positive_clips": 1},
    "test": {"source_videos": 1, "clips": 2, "positive_clips": 1},
  }
  assert metadata["counts"]["inputs"]["label_rows"] == 12
  assert metadata["counts"]["splits"]["test"]["videos"] == 4
  assert "stratified" in builder.info.description
  published = testing.prepare(dcsass.Builder, tmp_path / "data2", OFFICIAL, "as_published")
  assert "as published" in published.info.metadata["labels"]


def test_all_clips_undecodable_is_a_clear_error(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(GAP, manual)
  for path in (manual / "DCSASS Dataset").rglob("*.mp4"):
    if path.is_file():
      path.write_bytes(b"\x00" * 64)
  with pytest.raises(
    common.EmptySplitError, match=r"No video of split '(train|test)' could be used; skipped: .*undecodable"
  ):
    testing.prepare(dcsass.Builder, tmp_path / "data", manual, "default", skip_undecodable=True)
