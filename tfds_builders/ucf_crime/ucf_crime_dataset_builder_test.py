"""Tests of the UCF-Crime parsers and builder on the miniature fixtures.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow, so the builder tests use the
TF-free stand-in `tfds_builders.testing.DatasetBuilderTestCase` on `dummy_data/`
(prepare, split sizes, schema, reload) and check labels and metadata on top.
"""

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
  (root / "UCF_Crimes-Train-Test-Split/Anomaly_Detection_splits/Anomaly_Test.txt").unlink()
  with pytest.raises(common.ManualDataError, match="Anomaly_Test.txt"):
    ucf.plan_dataset(root)


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
