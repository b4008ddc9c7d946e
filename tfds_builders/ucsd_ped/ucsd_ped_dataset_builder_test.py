"""Tests of the UCSD Ped builder on the miniature trees in ``dummy_data/``.

``tfds.testing.DatasetBuilderTestCase`` needs TensorFlow, so the split-size tests use
the TF-free ``tfds_builders.testing.DatasetBuilderTestCase`` (same attributes).
Fixture contents (see ``dummy_data/make_fixtures.py``):
  Ped2: Train001 (4 frames), Train002 (3); Test001 (5, ``[1:2, 4:5]``), Test002 (4, ``[3:4]``).
  Ped1: Train001 (3); Test001 (4, ``[2:3]``, masks), Test002 (3, ``[1:1,3:3]``, no masks).
"""

import os
import pathlib
import shutil
import tarfile

import numpy as np
import pytest

from vad_jax.tfds_builders import common, testing
from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
OFFICIAL = DUMMY / "official"
RELEASE = DUMMY / "jpeg_release"
PED2_TEST_LABELS = [1, 1, 0, 1, 1, 0, 0, 1, 1]


class Ped2OfficialTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = OFFICIAL
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped2"]
  SPLITS = {"train": 7, "test": 9}


class Ped1OfficialTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = OFFICIAL
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped1"]
  SPLITS = {"train": 3, "test": 7}


class Ped2JpegReleaseTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = RELEASE
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped2"]
  SPLITS = {"train": 7, "test": 9}


def _read(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


def _copy(src, tmp_path):
  dst = tmp_path / "manual"
  shutil.copytree(src, dst)
  return dst


def test_parse_ground_truth_ranges_comments_and_crlf():
  text = (
    "TestVideoFile = {};\r\n"
    "% a comment [1:5]\r\n"
    "TestVideoFile{end+1}.gt_frame = [61:180];\r\n"
    "TestVideoFile{end+1}.gt_frame = [5:90, 140 : 200];  % two ranges\r\n"
    "TestVideoFile{end+1}.gt_frame = [7];\r\n"
  )
  assert ucsd.parse_ground_truth(text) == [[(61, 180)], [(5, 90), (140, 200)], [(7, 7)]]
  with pytest.raises(ValueError, match="line 1"):
    ucsd.parse_ground_truth("TestVideoFile{end+1}.gt_frame = [0:5];")
  labels = common.labels_from_ranges([(1, 2), (4, 5)], 5, first_frame=1, video="Test001", source="x.m")
  np.testing.assert_array_equal(labels, [1, 1, 0, 1, 1])


def test_ped2_official_labels_masks_and_metadata(tmp_path):
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", OFFICIAL, "ped2")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == PED2_TEST_LABELS
  assert all(bool(r["has_mask"]) for r in test)
  for record in test:  # mask pixels exactly where the frame is anomalous
    assert testing.decode(record, "mask").any() == bool(record["label"])
  train = _read(builder, "train")
  assert not any(bool(r["has_mask"]) or r["mask"] for r in train)
  assert {int(r["label"]) for r in train} == {0}
  assert testing.decode(train[0]).shape == (24, 36)  # grayscale TIFF -> 1-channel PNG
  assert train[0]["frame"].startswith(b"\x89PNG")
  metadata = builder.info.metadata
  assert metadata["layout"] == "official folders"
  assert metadata["videos"]["test"] == [
    {"name": "Test001", "start": 0, "length": 5, "label": 1},
    {"name": "Test002", "start": 5, "length": 4, "label": 1},
  ]
  assert [v["name"] for v in metadata["videos"]["train"]] == ["Train001", "Train002"]
  assert metadata["skipped"]["count"] == 0


def test_ped1_masks_only_where_the_archive_has_them(tmp_path):
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", OFFICIAL, "ped1")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == [0, 1, 1, 0, 1, 0, 1]
  assert [bool(r["has_mask"]) for r in test] == [True] * 4 + [False] * 3


def test_jpeg_release_has_official_names_and_labels(tmp_path):
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", RELEASE, "ped2")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == PED2_TEST_LABELS
  assert [v["name"] for v in builder.info.metadata["videos"]["test"]] == ["Test001", "Test002"]
  assert builder.info.metadata["layout"] == "JPEG release"
  frame_path = RELEASE / "ped2" / "testing" / "frames" / "01" / "000.jpg"
  assert test[0]["frame"] == frame_path.read_bytes()  # JPEG kept as is
  assert not any(bool(r["has_mask"]) for r in test)


def test_archive_is_extracted(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  with tarfile.open(manual / "UCSD_Anomaly_Dataset.tar.gz", "w:gz") as archive:
    archive.add(OFFICIAL / "UCSD_Anomaly_Dataset.v1p2", arcname="UCSD_Anomaly_Dataset.v1p2")
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")
  assert builder.info.metadata["layout"] == "official archive"
  assert builder.info.splits["train"].num_examples == 7
  assert [int(r["label"]) for r in _read(builder, "test")] == PED2_TEST_LABELS


def test_frame_size_and_stride_variant(tmp_path):
  config = common.variant(ucsd.Builder.builder_configs["ped2"], frame_size=(12, 18), frame_stride=2)
  assert config.name == "ped2_12x18_s2"
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", OFFICIAL, config)
  # Train001 4 -> 2, Train002 3 -> 2; Test001 5 -> 3, Test002 4 -> 2.
  assert builder.info.splits["train"].num_examples == 4
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == [1, 0, 1, 0, 1]
  assert [int(r["frame_index"]) for r in test] == [0, 1, 2, 0, 1]
  assert testing.decode(test[0]).shape == (12, 18)
  assert testing.decode(test[0], "mask").shape == (12, 18)


def test_missing_folder_lists_what_is_expected(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(
    OFFICIAL / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Train",
    manual / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Train",
  )
  with pytest.raises(common.ManualDataError) as error:
    testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")
  message = str(error.value)
  subset = os.fspath(manual / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2")
  assert f"[found] {subset}/Train" in message
  assert f"[MISSING] {subset}/Test" in message
  assert f"[MISSING] {subset}/Test/UCSDped2.m" in message
  assert f"[MISSING] {manual}/UCSD_Anomaly_Dataset.tar.gz" in message
  assert f"[MISSING] {manual}/ped2/testing/frames" in message
  assert "svcl.ucsd.edu" in message  # the download instructions follow


def test_labels_past_the_last_frame_name_video_and_counts(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  gt = manual / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test" / "UCSDped2.m"
  gt.write_text(gt.read_text().replace("[3:4]", "[3:9]"))
  expected = r"video Test002 reach frame 9 \(numbered from 1\) but the video has 4 frames"
  with pytest.raises(ValueError, match=expected):
    testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")


def test_missing_ground_truth_line_is_an_error(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  gt = manual / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test" / "UCSDped2.m"
  gt.write_text("\n".join(gt.read_text().splitlines()[:2]) + "\n")
  with pytest.raises(ValueError, match="ground truth for 1 videos but .* holds 2 test videos"):
    testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_undecodable_frame_names_file_and_can_be_skipped(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  bad = manual / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Train" / "Train002" / "002.tif"
  bad.write_bytes(b"II*\x00 truncated tiff")
  with pytest.raises(common.FrameDecodeError, match=str(bad)):
    testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")
  builder = testing.prepare(ucsd.Builder, tmp_path / "data2", manual, "ped2", skip_undecodable=True)
  assert builder.info.splits["train"].num_examples == 4
  skipped = builder.info.metadata["skipped"]
  assert skipped["count"] == 1 and skipped["counts"] == {"undecodable": 1}
  assert skipped["items"][0]["name"] == "Train002" and str(bad) in skipped["items"][0]["detail"]
  assert [v["name"] for v in builder.info.metadata["videos"]["train"]] == ["Train001"]


# ------------------------------------------------------------ more accepted layouts

PED1_RELEASE = DUMMY / "ped1_release"
V1P2 = OFFICIAL / "UCSD_Anomaly_Dataset.v1p2"
PED1_TEST_LABELS = [0, 1, 1, 0, 1, 0, 1]


class Ped1ReleaseTest(testing.DatasetBuilderTestCase):
  """The Ped1 JPEG release as distributed: ped1_train_NN / ped1_test_NN, ped1.mat."""

  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = PED1_RELEASE
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped1"]
  SPLITS = {"train": 3, "test": 7}


class ManualDirIsV1p2Test(testing.DatasetBuilderTestCase):
  """The manual dir is UCSD_Anomaly_Dataset.v1p2/ itself."""

  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = V1P2
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped2", "ped1"]
  SPLITS = None

  def _check_builder(self, builder):
    self.SPLITS = {"ped2": {"train": 7, "test": 9}, "ped1": {"train": 3, "test": 7}}[builder.builder_config.name]
    super()._check_builder(builder)


def test_ped1_release_has_the_official_names_and_labels(tmp_path):
  official = testing.prepare(ucsd.Builder, tmp_path / "a", OFFICIAL, "ped1")
  release = testing.prepare(ucsd.Builder, tmp_path / "b", PED1_RELEASE, "ped1")
  assert [int(r["label"]) for r in _read(release, "test")] == PED1_TEST_LABELS
  assert [int(r["label"]) for r in _read(official, "test")] == PED1_TEST_LABELS
  for split in ("train", "test"):
    assert [(v["name"], v["length"], v["label"]) for v in release.info.metadata["videos"][split]] == [
      (v["name"], v["length"], v["label"]) for v in official.info.metadata["videos"][split]
    ]
  metadata = release.info.metadata
  assert metadata["layout"] == "JPEG release with ped1.mat"
  assert metadata["labels"].startswith("ped1.mat gt intervals")
  assert "ped1.mat gt intervals" in release.info.description
  assert official.info.metadata["labels"] == "official UCSDped1.m frame ranges"


def test_ped1_release_folder_names_and_mat_beside_it(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(PED1_RELEASE, manual)
  (manual / "ped1" / "ped1.mat").rename(manual / "ped1.mat")
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped1")
  assert builder.info.metadata["layout"] == "JPEG release with ped1.mat beside it"
  assert [int(r["label"]) for r in _read(builder, "test")] == PED1_TEST_LABELS
  # The official .m, when also there, is what is read.
  shutil.copy(V1P2 / "UCSDped1" / "Test" / "UCSDped1.m", manual / "ped1" / "UCSDped1.m")
  builder = testing.prepare(ucsd.Builder, tmp_path / "data2", manual, "ped1")
  assert builder.info.metadata["labels"] == "official UCSDped1.m frame ranges"
  (manual / "ped1/testing/frames/ped1_test_02").rename(manual / "ped1/testing/frames/ped1_tset_02")
  with pytest.raises(ValueError, match="'ped1_tset_02' is neither a number nor named like ped1_test_NN"):
    testing.prepare(ucsd.Builder, tmp_path / "data3", manual, "ped1")


def test_manual_dir_v1p2_gives_the_official_records(tmp_path):
  official = testing.prepare(ucsd.Builder, tmp_path / "a", OFFICIAL, "ped2")
  inner = testing.prepare(ucsd.Builder, tmp_path / "b", V1P2, "ped2")
  for split in ("train", "test"):
    assert _read(inner, split) == _read(official, split)
  assert inner.info.metadata["layout"] == "official folders (the manual dir is UCSD_Anomaly_Dataset.v1p2/)"


def test_rejected_layout_lists_the_accepted_ones(tmp_path):
  manual = tmp_path / "manual"
  (manual / "ped1" / "training" / "frames").mkdir(parents=True)
  with pytest.raises(common.ManualDataError) as error:
    testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped1")
  message = str(error.value)
  for layout in (
    "official folders:",
    "official folders (the manual dir is UCSD_Anomaly_Dataset.v1p2/):",
    "official archive:",
    "JPEG release:",
    "JPEG release with ped1.mat:",
    "JPEG release with ped1.mat beside it:",
  ):
    assert f"  {layout}" in message, layout
  assert f"[found] {manual}/ped1/training/frames" in message
