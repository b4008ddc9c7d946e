"""Tests of the UCF-Crime parsers and builder on the miniature fixtures.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow, so the builder tests use the
TF-free stand-in `tfds_builders.testing.DatasetBuilderTestCase` on `dummy_data/`
(prepare, split sizes, schema, reload) and check labels and metadata on top.
"""

import dataclasses
import os
import pathlib
import shutil

os.environ.setdefault("TFDS_DISABLE_TF", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vad_jax.tfds_builders import (
  common,  # noqa: E402
  testing,  # noqa: E402
)
from vad_jax.tfds_builders.ucf_crime import ucf_crime_dataset_builder as ucf  # noqa: E402

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


# ------------------------------------------------------------------- parsers


def test_annotation_two_segments_minus_one_crlf_trailing_spaces():
  text = (
    "Arson011_x264.mp4  Arson  150  420  680  1267  \r\n"
    "Abuse028_x264.mp4  Abuse  165  240  -1  -1  \r\n"
    "\r\n"
    "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \r\n"
  )
  annotations = ucf.parse_temporal_annotations(text)
  assert annotations["Arson011_x264"] == ucf.Annotation("Arson", ((150, 420), (680, 1267)))
  assert annotations["Abuse028_x264"] == ucf.Annotation("Abuse", ((165, 240),))
  assert annotations["Normal_Videos_003_x264"] == ucf.Annotation("Normal", ())


@pytest.mark.parametrize(
  "line",
  [
    "Arson011_x264.mp4  Arson  150  420  680  ",  # Five fields.
    "Arson011_x264.mp4  Arson  420  150  -1  -1  ",  # End before start.
    "Arson011_x264.mp4  Arson  150  -1  -1  -1  ",  # Half a segment.
    "Normal_Videos_003_x264.mp4  Normal  1  2  -1  -1  ",  # Normal with a segment.
  ],
)
def test_annotation_errors(line):
  with pytest.raises(ValueError):
    ucf.parse_temporal_annotations(line + "\n")


def test_frame_labels_are_zero_based_inclusive():
  labels = ucf.frame_labels(range(14), ((2, 4), (8, 11)))
  np.testing.assert_array_equal(np.flatnonzero(labels), [2, 3, 4, 8, 9, 10, 11])
  # Strided frame numbers keep the label of the frame they came from.
  np.testing.assert_array_equal(ucf.frame_labels([0, 3, 6, 9, 12], ((2, 4), (8, 11))), [0, 1, 0, 1, 0])
  np.testing.assert_array_equal(ucf.frame_labels(range(3), None), [-1, -1, -1])


def test_split_list_names_and_classes():
  text = (
    "Abuse/Abuse028_x264.mp4\r\n"
    "Training_Normal_Videos_Anomaly/Normal_Videos308_x264.mp4  \n"
    "\n"
    "Testing_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4\n"
    "RoadAccidents/RoadAccidents012_x264.mp4"
  )
  names = ucf.parse_split_list(text)
  assert names == ["Abuse028_x264", "Normal_Videos308_x264", "Normal_Videos_003_x264", "RoadAccidents012_x264"]
  assert [ucf.class_of(n) for n in names] == ["Abuse", "Normal", "Normal", "RoadAccidents"]
  with pytest.raises(ValueError):
    ucf.parse_split_list("Abuse/Abuse028_x264.mp4\nAbuse/Abuse028_x264.mp4\n")
  with pytest.raises(ValueError):
    ucf.class_of("Picnic001_x264.mp4")


def test_plan_finds_nested_parts_and_counts_missing_videos():
  plan = ucf.plan_dataset(DUMMY / "archives")
  assert [e.name for e in plan.splits["train"]] == ["Abuse001_x264", "Normal_Videos001_x264", "Robbery050_x264"]
  assert [e.name for e in plan.splits["test"]] == ["Arson011_x264", "Assault002_x264", "Normal_Videos_003_x264"]
  robbery = plan.splits["train"][2]
  assert "Anomaly-Videos-Part-3/Anomaly-Videos-Part-3" in os.fspath(robbery.path)
  assert plan.skipped == [
    ("train", "Burglary005_x264", "missing_video"),
    ("test", "Explosion008_x264", "missing_video"),
  ]
  assert plan.notes == {}


def test_plan_duplicates_and_missing_lists(tmp_path):
  root = tmp_path / "manual"
  shutil.copytree(DUMMY / "archives", root)
  # A second copy of one part, and a folder named like a video (as in DCSASS).
  shutil.copytree(root / "Anomaly-Videos-Part-1", root / "copy" / "Anomaly-Videos-Part-1")
  (root / "Odd" / "Vandalism001_x264.mp4").mkdir(parents=True)
  plan = ucf.plan_dataset(root)
  assert plan.notes["duplicate_file"] == ["Abuse001_x264", "Arson011_x264", "Assault002_x264"]
  assert "copy" not in os.fspath(plan.splits["train"][0].path)
  # Anomaly_Test.txt is optional (the annotation file names every test video) ...
  (root / "UCF_Crimes-Train-Test-Split/Anomaly_Detection_splits/Anomaly_Test.txt").unlink()
  plan = ucf.plan_dataset(root)
  assert [e.name for e in plan.splits["test"]] == ["Arson011_x264", "Assault002_x264", "Normal_Videos_003_x264"]
  assert plan.sources["test_list"] is None
  # ... Anomaly_Train.txt is not, and the error lists what is accepted.
  (root / "UCF_Crimes-Train-Test-Split/Anomaly_Detection_splits/Anomaly_Train.txt").unlink()
  with pytest.raises(common.ManualDataError, match="Missing Anomaly_Train.txt") as error:
    ucf.plan_dataset(root)
  assert "Temporal_Anomaly_Annotation.txt" in str(error.value)


# ------------------------------------------------------------------- builder


def _read(builder, split):
  source = builder.as_data_source()[split]
  return [source[i] for i in range(len(source))]


class ArchivesLayoutTest(testing.DatasetBuilderTestCase):
  """Part archives side by side, one part nested twice, CRLF test list and annotations."""

  DATASET_CLASS = ucf.Builder
  EXAMPLE_DIR = DUMMY / "archives"
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  SPLITS = {"train": 6 + 7 + 8, "test": 14 + 10 + 9}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    self.assertEqual(builder.info.file_format.value, "array_record")
    train, test = _read(builder, "train"), _read(builder, "test")
    self.assertEqual({r["label"] for r in train}, {-1})
    self.assertEqual(sum(r["label"] == 1 for r in test), 7 + 4)
    arson = [r for r in test if r["video"] == b"Arson011_x264"]
    self.assertEqual([r["frame_index"] for r in arson], list(range(14)))
    self.assertEqual([r["label"] for r in arson], [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    self.assertEqual((arson[0]["class_name"], arson[0]["video_label"]), (b"Arson", 1))
    self.assertEqual(common.decode_image(arson[0]["frame"]).shape, (24, 32, 3))
    normal = [r for r in test if r["video"] == b"Normal_Videos_003_x264"]
    self.assertEqual({(r["label"], r["class_name"], r["video_label"]) for r in normal}, {(0, b"Normal", 0)})
    metadata = builder.info.metadata
    self.assertEqual(
      [(v["name"], v["start"], v["length"], v["label"]) for v in metadata["videos"]["train"]],
      [("Abuse001_x264", 0, 6, 1), ("Normal_Videos001_x264", 6, 7, 0), ("Robbery050_x264", 13, 8, 1)],
    )
    self.assertEqual([v["label"] for v in metadata["videos"]["test"]], [1, 1, 0])
    self.assertEqual(metadata["skipped"]["counts"], {"missing_video": 2})
    self.assertEqual(
      {(i["split"], i["name"]) for i in metadata["skipped"]["items"]},
      {("train", "Burglary005_x264"), ("test", "Explosion008_x264")},
    )


class Stride30Test(testing.DatasetBuilderTestCase):
  """The 1 fps / 112x112 config keeps frame 0 of each few-frame fixture video."""

  DATASET_CLASS = ucf.Builder
  EXAMPLE_DIR = DUMMY / "archives"
  BUILDER_CONFIG_NAMES_TO_TEST = ["stride30_112"]
  SPLITS = {"train": 3, "test": 3}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    record = _read(builder, "test")[0]
    self.assertEqual(common.decode_image(record["frame"]).shape, (112, 112, 3))


class SingleTreeTest(testing.DatasetBuilderTestCase):
  """The `UCF_Crimes/Videos/<Class>/` distribution, LF files, stride 2 and 16x16."""

  DATASET_CLASS = ucf.Builder
  EXAMPLE_DIR = DUMMY / "single_tree"
  BUILDER_CONFIG_NAMES_TO_TEST = [common.VideoConfig(name="s2_16", frame_size=(16, 16), frame_stride=2)]
  # Fighting 5 -> 3, Normal 5 -> 3 kept frames; Normal 6 -> 3, Shooting 8 -> 4.
  SPLITS = {"train": 6, "test": 7}

  def _check_builder(self, builder):
    super()._check_builder(builder)
    shooting = [r for r in _read(builder, "test") if r["video"] == b"Shooting007_x264"]
    self.assertEqual([r["label"] for r in shooting], [1, 1, 0, 0])  # Frames 0, 2 in [0, 3].
    self.assertEqual([r["frame_index"] for r in shooting], [0, 1, 2, 3])
    self.assertEqual(common.decode_image(shooting[0]["frame"]).shape, (16, 16, 3))
    self.assertEqual(builder.info.metadata["skipped"]["count"], 0)


def test_configs_cover_native_and_strided():
  configs = {c.name: c for c in ucf.Builder.BUILDER_CONFIGS}
  assert (configs["default"].frame_size, configs["default"].frame_stride) == (None, 1)
  assert (configs["stride30_112"].frame_size, configs["stride30_112"].frame_stride) == ((112, 112), 30)


# ------------------------------------------------- layouts, conventions, metadata

TXT_FORMATE = DUMMY / "annotation_txt_formate"
S2_16 = common.VideoConfig(name="s2_16", frame_size=(16, 16), frame_stride=2)


class TxtFormateLayoutTest(testing.DatasetBuilderTestCase):
  """`Temporal_Anomaly_Annotation.txt` under `.../Txt_formate/`, no `Anomaly_Test.txt`."""

  DATASET_CLASS = ucf.Builder
  EXAMPLE_DIR = TXT_FORMATE
  BUILDER_CONFIG_NAMES_TO_TEST = [S2_16]
  SPLITS = {"train": 6, "test": 7}


def test_txt_formate_layout_gives_the_single_tree_records(tmp_path):
  official = testing.prepare(ucf.Builder, tmp_path / "a", DUMMY / "single_tree", S2_16)
  variant = testing.prepare(ucf.Builder, tmp_path / "b", TXT_FORMATE, S2_16)
  for split in ("train", "test"):
    assert _read(variant, split) == _read(official, split)
    assert variant.info.metadata["videos"][split] == official.info.metadata["videos"][split]
  sources = variant.info.metadata["sources"]
  assert sources["annotations"].endswith("Txt_formate/Temporal_Anomaly_Annotation.txt")
  assert sources["test_list"] is None
  assert "Anomaly_Test.txt absent" in variant.info.metadata["layout"]
  assert official.info.metadata["sources"]["test_list"] == "UCF_Crimes/Anomaly_Detection_splits/Anomaly_Test.txt"


def test_two_annotation_files_that_differ_are_an_error(tmp_path):
  root = tmp_path / "manual"
  shutil.copytree(DUMMY / "single_tree", root)
  (root / "Temporal_Anomaly_Annotation.txt").write_text("Shooting007_x264.mp4  Shooting  0  4  -1  -1  \n")
  with pytest.raises(common.ManualDataError, match="different copies"):
    ucf.plan_dataset(root)


def test_one_based_frame_numbering_is_a_config(tmp_path):
  config = dataclasses.replace(ucf.DEFAULT_ONE_BASED, name="one_based_test")
  builder = testing.prepare(ucf.Builder, tmp_path / "data", DUMMY / "archives", config)
  arson = [r for r in _read(builder, "test") if r["video"] == b"Arson011_x264"]
  # Segments [2, 4] and [8, 11] read 1-based: 0-based frames 1-3 and 7-10.
  assert [r["label"] for r in arson] == [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
  metadata = builder.info.metadata
  assert metadata["frame_numbering"] == "one_based"
  assert "1-based" in metadata["labels"] and "MATLAB" in metadata["labels"]
  assert "1-based" in builder.info.description
  default = testing.prepare(ucf.Builder, tmp_path / "data0", DUMMY / "archives", "default")
  assert default.info.metadata["frame_numbering"] == "zero_based"
  assert "0-based" in default.info.metadata["labels"] and "RTFM" in default.info.metadata["labels"]
  with pytest.raises(ValueError, match="frame_numbering"):
    ucf.UcfCrimeConfig(name="x", frame_numbering="two_based")


def test_metadata_records_labels_layout_and_counts(tmp_path):
  builder = testing.prepare(ucf.Builder, tmp_path / "data", DUMMY / "archives", "default")
  metadata = builder.info.metadata
  assert "**/*_x264.mp4" in metadata["layout"]
  assert "Temporal_Anomaly_Annotation_for_Testing_Videos.txt" in metadata["layout"]
  counts = metadata["counts"]
  assert counts["inputs"]["listed_train_videos"] == 4 and counts["inputs"]["listed_test_videos"] == 4
  assert counts["inputs"]["skipped_missing_video"] == 2
  assert counts["splits"]["test"] == {
    "videos": 3,
    "frames": 33,
    "anomalous_frames": 11,
    "normal_frames": 22,
    "unlabelled_frames": 0,
    "skipped_undecodable": 0,
  }
  assert counts["splits"]["train"]["unlabelled_frames"] == 21


def test_all_test_videos_undecodable_is_a_clear_error(tmp_path):
  root = tmp_path / "manual"
  shutil.copytree(DUMMY / "single_tree", root)
  for name in ("Shooting/Shooting007_x264.mp4", "Testing_Normal_Videos_Anomaly/Normal_Videos_050_x264.mp4"):
    (root / "UCF_Crimes/Videos" / name).write_bytes(b"\x00" * 100)
  with pytest.raises(common.EmptySplitError, match=r"split 'test'.*Shooting007_x264 \(undecodable") as error:
    testing.prepare(ucf.Builder, tmp_path / "data", root, S2_16, skip_undecodable=True)
  assert "Normal_Videos_050_x264" in str(error.value) and "2 undecodable" in str(error.value)
