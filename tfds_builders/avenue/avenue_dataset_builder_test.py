"""Tests of the Avenue builder on the miniature trees in ``dummy_data/``.

Split sizes use the TF-free ``tfds_builders.testing.DatasetBuilderTestCase``
(``tfds.testing.DatasetBuilderTestCase`` needs TensorFlow). Fixture contents (see
``dummy_data/make_fixtures.py``): training videos 01 (5 frames), 02 (4); test videos
01 (6 frames, masks set in frames 1, 2, 4), 02 (3 frames, mask in frame 2); avenue.mat
intervals 01: [2, 3] and [5, 6], 02: [1, 2] (1-based inclusive).
"""

import pathlib
import re
import shutil
import zipfile

import numpy as np
import pytest
import scipy.io

from vad_jax.tfds_builders import common, testing, video
from vad_jax.tfds_builders.avenue import avenue_dataset_builder as avenue

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
OFFICIAL = DUMMY / "official"
RELEASE = DUMMY / "frames_release"
OFFICIAL_TEST_LABELS = [0, 1, 1, 0, 1, 0] + [0, 0, 1]
AVENUE_MAT_TEST_LABELS = [0, 1, 1, 0, 1, 1] + [1, 1, 0]


class OfficialTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = avenue.Builder
  EXAMPLE_DIR = OFFICIAL
  BUILDER_CONFIG_NAMES_TO_TEST = ["official"]
  SPLITS = {"train": 9, "test": 9}


class FramesAvenueMatTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = avenue.Builder
  EXAMPLE_DIR = RELEASE
  BUILDER_CONFIG_NAMES_TO_TEST = ["frames_avenue_mat"]
  SPLITS = {"train": 9, "test": 9}


def _read(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


def _copy(src, tmp_path):
  return pathlib.Path(shutil.copytree(src, tmp_path / "manual"))


def test_official_labels_come_from_the_masks(tmp_path):
  builder = testing.prepare(avenue.Builder, tmp_path / "data", OFFICIAL, "official")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == OFFICIAL_TEST_LABELS
  assert all(bool(r["has_mask"]) for r in test)
  for record in test:
    mask = testing.decode(record, "mask")
    assert mask.shape == (36, 64) and set(np.unique(mask)) <= {0, 255}
    assert mask.any() == bool(record["label"])
  assert testing.decode(test[0]).shape == (36, 64, 3)
  assert test[0]["frame"][:2] == b"\xff\xd8"  # JPEG
  train = _read(builder, "train")
  assert {int(r["label"]) for r in train} == {0} and not any(r["has_mask"] for r in train)
  metadata = builder.info.metadata
  assert metadata["labels"] == avenue.OFFICIAL_LABELS
  assert metadata["videos"]["test"] == [
    {"name": "01", "start": 0, "length": 6, "label": 1},
    {"name": "02", "start": 6, "length": 3, "label": 1},
  ]
  assert [v["length"] for v in metadata["videos"]["train"]] == [5, 4]


def test_avenue_mat_is_a_different_label_version(tmp_path):
  builder = testing.prepare(avenue.Builder, tmp_path / "data", RELEASE, "frames_avenue_mat")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == AVENUE_MAT_TEST_LABELS
  assert AVENUE_MAT_TEST_LABELS != OFFICIAL_TEST_LABELS
  assert "avenue.mat" in builder.info.metadata["labels"]
  assert "differ" in builder.info.metadata["labels"]
  assert test[0]["frame"] == (RELEASE / "avenue/testing/frames/01/0000.jpg").read_bytes()


def test_archives_are_extracted(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  for archive, folder in (("Avenue_Dataset.zip", "Avenue Dataset"), ("ground_truth_demo.zip", "ground_truth_demo")):
    with zipfile.ZipFile(manual / archive, "w") as zf:
      for path in sorted((OFFICIAL / folder).rglob("*")):
        zf.write(path, path.relative_to(OFFICIAL).as_posix())
  builder = testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")
  assert [int(r["label"]) for r in _read(builder, "test")] == OFFICIAL_TEST_LABELS


def test_stride_keeps_labels_of_the_kept_frames(tmp_path):
  config = common.variant(avenue.Builder.builder_configs["official"], frame_stride=2)
  builder = testing.prepare(avenue.Builder, tmp_path / "data", OFFICIAL, config)
  # 01: frames 0, 2, 4; 02: frames 0, 2.
  assert [int(r["label"]) for r in _read(builder, "test")] == [0, 1, 1, 0, 1]
  assert builder.info.splits["train"].num_examples == 3 + 2


def test_missing_parts_are_listed(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(OFFICIAL / "Avenue Dataset" / "training_videos", manual / "Avenue Dataset" / "training_videos")
  with pytest.raises(common.ManualDataError) as error:
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")
  message = str(error.value)
  assert f"[found] {manual}/Avenue Dataset/training_videos" in message
  assert f"[MISSING] {manual}/Avenue Dataset/testing_videos" in message
  assert f"[MISSING] {manual}/Avenue_Dataset.zip" in message
  assert f"[MISSING] {manual}/ground_truth_demo/testing_label_mask" in message
  assert f"[MISSING] {manual}/ground_truth_demo.zip" in message


def test_label_and_frame_counts_must_agree(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  label_file = manual / "ground_truth_demo" / "testing_label_mask" / "2_label.mat"
  cells = np.empty((1, 4), dtype=object)
  for t in range(4):
    cells[0, t] = np.zeros((36, 64), np.uint8)
  scipy.io.savemat(label_file, {"volLabel": cells}, format="5")
  expected = r"Video 02: 3 frames but 4 frame labels in .*2_label\.mat"
  with pytest.raises(common.LabelCountError, match=expected):
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")


def test_interval_past_the_last_frame(tmp_path):
  manual = _copy(RELEASE, tmp_path)
  gt = np.empty((1, 2), dtype=object)
  gt[0, 0], gt[0, 1] = np.array([[2.0], [7.0]]), np.array([[1.0], [2.0]])
  scipy.io.savemat(manual / "avenue" / "avenue.mat", {"gt": gt}, format="5")
  with pytest.raises(ValueError, match="video 01 reach frame 7 .* has 6 frames"):
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "frames_avenue_mat")


def test_container_count_mismatch_names_file_and_counts(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  path = manual / "Avenue Dataset" / "testing_videos" / "01.avi"
  video.set_avi_frame_count(path, 9)
  expected = rf"{re.escape(str(path))}: decoded 6 frames but the container reports 9"
  with pytest.raises(video.FrameCountError, match=expected):
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")


def test_undecodable_video_names_file_and_can_be_skipped(tmp_path):
  manual = _copy(OFFICIAL, tmp_path)
  bad = manual / "Avenue Dataset" / "training_videos" / "02.avi"
  bad.write_bytes(b"RIFF\x10\x00\x00\x00AVI not really a video")
  with pytest.raises(video.VideoDecodeError, match=str(bad)):
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")
  builder = testing.prepare(avenue.Builder, tmp_path / "data2", manual, "official", skip_undecodable=True)
  assert builder.info.splits["train"].num_examples == 5
  assert builder.info.metadata["skipped"]["counts"] == {"undecodable": 1}
  assert builder.info.metadata["skipped"]["items"][0]["name"] == "02"
  assert builder.info.metadata["skipped"]["items"][0]["split"] == "train"


# ------------------------------------------------------------ more accepted layouts

LABEL_VECTORS = DUMMY / "frames_release_label_vectors"
MASK_DIR_AT_TOP = DUMMY / "official_mask_dir_at_top"


class FramesLabelVectorsTest(testing.DatasetBuilderTestCase):
  """avenue.mat with one label vector per test video ('01', '02')."""

  DATASET_CLASS = avenue.Builder
  EXAMPLE_DIR = LABEL_VECTORS
  BUILDER_CONFIG_NAMES_TO_TEST = ["frames_avenue_mat"]
  SPLITS = {"train": 9, "test": 9}


class MaskDirAtTopTest(testing.DatasetBuilderTestCase):
  """testing_label_mask/ directly in the manual dir, not inside ground_truth_demo/."""

  DATASET_CLASS = avenue.Builder
  EXAMPLE_DIR = MASK_DIR_AT_TOP
  BUILDER_CONFIG_NAMES_TO_TEST = ["official"]
  SPLITS = {"train": 9, "test": 9}


def test_avenue_mat_label_vectors_equal_the_official_labels(tmp_path):
  builder = testing.prepare(avenue.Builder, tmp_path / "data", LABEL_VECTORS, "frames_avenue_mat")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == OFFICIAL_TEST_LABELS
  metadata = builder.info.metadata
  assert metadata["labels"] == avenue.AVENUE_MAT_VECTOR_LABELS
  assert "equal to the official masks" in metadata["labels"]
  assert metadata["layout"] == "frame release; avenue.mat with label vectors '01'..."
  assert avenue.AVENUE_MAT_VECTOR_LABELS in builder.info.description
  # The interval version says it differs, in the metadata and the description.
  interval = testing.prepare(avenue.Builder, tmp_path / "data2", RELEASE, "frames_avenue_mat")
  assert interval.info.metadata["layout"] == "frame release; avenue.mat with gt intervals"
  assert "differ from the official masks" in interval.info.description


def test_label_vector_of_the_wrong_length(tmp_path):
  manual = _copy(LABEL_VECTORS, tmp_path)
  scipy.io.savemat(
    manual / "avenue" / "avenue.mat", {"01": np.zeros(7, np.uint8), "02": np.zeros(3, np.uint8)}, format="5"
  )
  with pytest.raises(common.LabelCountError, match="Video 01: 6 frames but 7 frame labels"):
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "frames_avenue_mat")


def test_mask_dir_outside_ground_truth_demo_gives_the_official_records(tmp_path):
  official = testing.prepare(avenue.Builder, tmp_path / "a", OFFICIAL, "official")
  variant = testing.prepare(avenue.Builder, tmp_path / "b", MASK_DIR_AT_TOP, "official")
  for split in ("train", "test"):
    assert _read(variant, split) == _read(official, split)
  assert official.info.metadata["layout"] == (
    "official: videos from Avenue Dataset/ (folder), masks from ground_truth_demo/ (folder)"
  )
  assert variant.info.metadata["layout"] == (
    "official: videos from Avenue Dataset/ (folder), masks from testing_label_mask (folder, without ground_truth_demo/)"
  )


def test_layout_says_zip_or_folder(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(OFFICIAL / "Avenue Dataset", manual / "Avenue Dataset")
  with zipfile.ZipFile(manual / "ground_truth_demo.zip", "w") as zf:
    for path in sorted((OFFICIAL / "ground_truth_demo").rglob("*")):
      zf.write(path, path.relative_to(OFFICIAL).as_posix())
  builder = testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")
  assert builder.info.metadata["layout"] == (
    "official: videos from Avenue Dataset/ (folder), masks from ground_truth_demo.zip (zip)"
  )


def test_corrupt_archive_names_the_file(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(OFFICIAL / "ground_truth_demo", manual / "ground_truth_demo")
  (manual / "Avenue_Dataset.zip").write_bytes(b"PK\x03\x04 this is not really a zip archive")
  with pytest.raises(common.ArchiveError) as error:
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official")
  message = str(error.value)
  assert str(manual / "Avenue_Dataset.zip") in message and "BadZipFile" in message
  assert "download it again" in message
  # Nothing half-extracted is left behind.
  assert not list((tmp_path / "data").rglob("extracted/Avenue_Dataset/*"))


def test_truncated_jpeg_names_file_video_and_frame_and_can_be_skipped(tmp_path):
  manual = _copy(RELEASE, tmp_path)
  bad = manual / "avenue" / "testing" / "frames" / "01" / "0003.jpg"
  bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
  with pytest.raises(common.FrameDecodeError) as error:
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "frames_avenue_mat")
  message = str(error.value)
  assert str(bad) in message and "(video 01, frame 3)" in message and "truncated" in message
  builder = testing.prepare(avenue.Builder, tmp_path / "data2", manual, "frames_avenue_mat", skip_undecodable=True)
  assert [v["name"] for v in builder.info.metadata["videos"]["test"]] == ["02"]
  skipped = builder.info.metadata["skipped"]
  assert skipped["counts"] == {"undecodable": 1}
  assert skipped["items"][0]["name"] == "01" and "(video 01, frame 3)" in skipped["items"][0]["detail"]
  assert builder.info.metadata["counts"]["splits"]["test"]["skipped_undecodable"] == 1
