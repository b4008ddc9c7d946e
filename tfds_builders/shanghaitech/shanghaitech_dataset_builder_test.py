"""Tests of the ShanghaiTech builder on the miniature tree in ``dummy_data/``.

Split sizes use the TF-free ``tfds_builders.testing.DatasetBuilderTestCase``
(``tfds.testing.DatasetBuilderTestCase`` needs TensorFlow). Fixture contents (see
``dummy_data/make_fixtures.py``): training videos 01_001 (4 frames), 02_001 (3); test
videos 01_0014 (labels 0 1 1 0 0), 02_0128 (0 0 0 1), pixel masks where labelled.
"""

import pathlib
import shutil
import tarfile

import numpy as np
import pytest

from vad_jax.tfds_builders import common, testing, video
from vad_jax.tfds_builders.shanghaitech import shanghaitech_dataset_builder as shanghaitech

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
TEST_LABELS = [0, 1, 1, 0, 0, 0, 0, 0, 1]


class ShanghaiTechTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = shanghaitech.Builder
  SPLITS = {"train": 7, "test": 9}


def _read(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


@pytest.fixture
def manual(tmp_path):
  shutil.copytree(DUMMY / "shanghaitech", tmp_path / "manual" / "shanghaitech")
  return tmp_path / "manual"


def test_labels_and_pixel_masks(tmp_path):
  builder = testing.prepare(shanghaitech.Builder, tmp_path / "data", DUMMY)
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == TEST_LABELS
  for record in test:
    assert bool(record["has_mask"])
    assert testing.decode(record, "mask").any() == bool(record["label"])
  assert testing.decode(test[0]).shape == (24, 42, 3)
  frame_path = DUMMY / "shanghaitech/testing/frames/01_0014/000.jpg"
  assert test[0]["frame"] == frame_path.read_bytes()
  metadata = builder.info.metadata
  assert [(v["name"], v["length"], v["label"]) for v in metadata["videos"]["test"]] == [
    ("01_0014", 5, 1),
    ("02_0128", 4, 1),
  ]
  assert [(v["name"], v["length"], v["label"]) for v in metadata["videos"]["train"]] == [
    ("01_001", 4, 0),
    ("02_001", 3, 0),
  ]
  train = _read(builder, "train")
  assert testing.decode(train[0]).shape == (24, 42, 3)


def test_archive_and_resized_variant(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  with tarfile.open(manual / "shanghaitech.tar.gz", "w:gz") as archive:
    archive.add(DUMMY / "shanghaitech", arcname="shanghaitech")
  config = common.variant(shanghaitech.Builder.builder_configs["default"], frame_size=(12, 20))
  builder = testing.prepare(shanghaitech.Builder, tmp_path / "data", manual, config)
  assert builder.info.metadata["layout"] == "archive"
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == TEST_LABELS
  assert testing.decode(test[1]).shape == (12, 20, 3)
  assert testing.decode(test[1], "mask").shape == (12, 20)
  assert testing.decode(_read(builder, "train")[0]).shape == (12, 20, 3)


def test_without_pixel_masks(tmp_path, manual):
  shutil.rmtree(manual / "shanghaitech/testing/test_pixel_mask")
  builder = testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == TEST_LABELS
  assert not any(bool(r["has_mask"]) for r in test)


def test_missing_folders_are_listed(tmp_path, manual):
  shutil.rmtree(manual / "shanghaitech/testing/test_frame_mask")
  with pytest.raises(common.ManualDataError) as error:
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)
  message = str(error.value)
  assert f"[found] {manual}/shanghaitech/training/videos" in message
  assert f"[MISSING] {manual}/shanghaitech/testing/test_frame_mask" in message
  assert f"[MISSING] {manual}/shanghaitech.tar.gz" in message


def test_frame_labels_must_be_1d(tmp_path, manual):
  path = manual / "shanghaitech/testing/test_frame_mask/02_0128.npy"
  np.save(path, np.array([[0, 0, 0, 1]], np.uint8))
  expected = r"02_0128\.npy: frame labels should be 1-D, got shape \(1, 4\)"
  with pytest.raises(ValueError, match=expected):
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)


def test_frame_label_count_must_match(tmp_path, manual):
  np.save(manual / "shanghaitech/testing/test_frame_mask/01_0014.npy", np.zeros(7, np.uint8))
  with pytest.raises(common.LabelCountError, match="Video 01_0014: 5 frames but 7 frame labels"):
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)


def test_pixel_mask_shape_is_checked(tmp_path, manual):
  transposed = np.zeros((5, 42, 24), np.uint8)  # (T, W, H) instead of (T, H, W)
  np.save(manual / "shanghaitech/testing/test_pixel_mask/01_0014.npy", transposed)
  with pytest.raises(ValueError, match=r"01_0014 have shape \(5, 42, 24\), expected \(5, 24, 42\)"):
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)


def test_bad_training_videos_are_named_and_can_be_skipped(tmp_path, manual):
  videos = manual / "shanghaitech/training/videos"
  video.set_avi_frame_count(videos / "01_001.avi", 12)  # container says 12, holds 4
  (videos / "02_001.avi").write_bytes(b"\x00" * 64)
  expected = r"01_001\.avi: decoded 4 frames but the container reports 12"
  with pytest.raises(video.FrameCountError, match=expected):
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)
  shutil.copy(DUMMY / "shanghaitech/training/videos/01_001.avi", videos / "01_001.avi")
  with pytest.raises(video.VideoDecodeError, match=r"02_001\.avi"):
    testing.prepare(shanghaitech.Builder, tmp_path / "data2", manual)
  shutil.copy(videos / "01_001.avi", videos / "03_001.avi")  # a good one, for later
  video.set_avi_frame_count(videos / "01_001.avi", 12)
  (videos / "03_001.avi").rename(videos / "03_001.avi.bak")
  with pytest.raises(ValueError, match=r"No video of split 'train' could be used; skipped: 01_001"):
    testing.prepare(shanghaitech.Builder, tmp_path / "data_none", manual, skip_undecodable=True)
  (videos / "03_001.avi.bak").rename(videos / "03_001.avi")
  builder = testing.prepare(shanghaitech.Builder, tmp_path / "data3", manual, skip_undecodable=True)
  assert builder.info.splits["train"].num_examples == 4
  assert [v["name"] for v in builder.info.metadata["videos"]["train"]] == ["03_001"]
  skipped = builder.info.metadata["skipped"]
  assert skipped["count"] == 2 and skipped["counts"] == {"undecodable": 2}
  assert [i["name"] for i in skipped["items"]] == ["01_001", "02_001"]
  assert "container reports 12" in skipped["items"][0]["detail"]
  assert builder.info.splits["test"].num_examples == 9


TRAINING_FRAMES = DUMMY / "training_frames"


class TrainingFramesTest(testing.DatasetBuilderTestCase):
  """Pre-extracted training frames (training/frames/01_001/000.jpg) instead of videos."""

  DATASET_CLASS = shanghaitech.Builder
  EXAMPLE_DIR = TRAINING_FRAMES
  SPLITS = {"train": 7, "test": 9}


def test_training_frames_layout_has_the_official_labels(tmp_path):
  official = testing.prepare(shanghaitech.Builder, tmp_path / "a", DUMMY)
  frames = testing.prepare(shanghaitech.Builder, tmp_path / "b", TRAINING_FRAMES)
  assert _read(frames, "test") == _read(official, "test")
  train = _read(frames, "train")
  assert {int(r["label"]) for r in train} == {0}
  assert train[0]["frame"] == (TRAINING_FRAMES / "shanghaitech/training/frames/01_001/000.jpg").read_bytes()
  assert [(v["name"], v["length"]) for v in frames.info.metadata["videos"]["train"]] == [
    (v["name"], v["length"]) for v in official.info.metadata["videos"]["train"]
  ]
  assert frames.info.metadata["layout"] == "extracted folder with training frames"
  assert official.info.metadata["layout"] == "extracted folder"
  assert official.info.metadata["labels"] == "official test_frame_mask (frame labels) and test_pixel_mask (pixel masks)"


def test_labels_text_mentions_pixel_masks_only_when_present(tmp_path, manual):
  shutil.rmtree(manual / "shanghaitech/testing/test_pixel_mask")
  builder = testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)
  labels = builder.info.metadata["labels"]
  assert labels.startswith("official test_frame_mask (frame labels); no pixel masks")
  assert "test_pixel_mask (pixel masks)" not in labels


def test_truncated_test_frame_names_file_video_and_frame(tmp_path, manual):
  bad = manual / "shanghaitech/testing/frames/02_0128/002.jpg"
  data = bad.read_bytes()
  bad.write_bytes(data[: len(data) - 200])
  with pytest.raises(common.FrameDecodeError, match=r"02_0128/002\.jpg \(video 02_0128, frame 2\)"):
    testing.prepare(shanghaitech.Builder, tmp_path / "data", manual)
