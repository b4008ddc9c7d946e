"""Tests of the UCSD Ped builder on the miniature trees in ``dummy_data/``.

``tfds.testing.DatasetBuilderTestCase`` needs TensorFlow, so the split-size tests use
the TF-free ``tfds_builders.testing.DatasetBuilderTestCase`` (same attributes).
Fixture contents (see ``dummy_data/make_fixtures.py``):
  Ped2: Train001 (4 frames), Train002 (3); Test001 (5, ``[1:2, 4:5]``), Test002 (4, ``[3:4]``).
  Ped1: Train001 (3); Test001 (4, ``[2:3]``, masks), Test002 (3, ``[1:1,3:3]``, no masks).
  release_masks (Ped2 JPEG release in the manual dir itself, masks in ``masks/``):
  Train001 (3); Test001 (5, ``[1:2, 4:5]``, ``001.bmp``), Test002 (4, ``[3:4]``, no
  ``_gt``), Test003 (4, ``[2:4]``, ``frame001.bmp``).
"""

import os
import pathlib
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

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
  test_dir = OFFICIAL / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test"
  assert metadata["masks"] == {
    "folder": str(test_dir),
    "videos": {"Test001": str(test_dir / "Test001_gt"), "Test002": str(test_dir / "Test002_gt")},
    "without": [],
  }
  # Test002_gt's files are frame001.bmp ... (as Ped2's Test006, Test009, Test012).
  assert (test_dir / "Test002_gt" / "frame001.bmp").is_file()
  assert (
    metadata["labels"]
    == f"official UCSDped2.m frame ranges; pixel masks of 2 of 2 test videos (TestNNN_gt BMPs in {test_dir})"
  )


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
  assert official.info.metadata["labels"].startswith("official UCSDped1.m frame ranges; pixel masks of 1 of 2 test")
  assert official.info.metadata["masks"]["without"] == ["Test002"]
  assert metadata["masks"] == {"folder": None, "videos": {}, "without": ["Test001", "Test002"]}
  assert metadata["labels"].endswith("; no pixel masks")


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
  assert builder.info.metadata["labels"] == "official UCSDped1.m frame ranges; no pixel masks"
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


# -------------------------------------------------- masks beside the JPEG release

RELEASE_MASKS = DUMMY / "release_masks"
RELEASE_MASKS_LABELS = [1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1]  # UCSDped2.m of the fixture
RELEASE_MASKS_HAVE = [True] * 5 + [False] * 4 + [True] * 4  # Test002 has no _gt folder


class Ped2ReleaseMasksTest(testing.DatasetBuilderTestCase):
  """The JPEG release with the archive's TestNNN_gt folders in masks/ beside it."""

  DATASET_CLASS = ucsd.Builder
  EXAMPLE_DIR = RELEASE_MASKS
  BUILDER_CONFIG_NAMES_TO_TEST = ["ped2"]
  SPLITS = {"train": 3, "test": 13}


def _mask_file(manual, video, frame):
  """The BMP of ``frame`` (0-based) of ``video``, wherever its _gt folder is under ``manual``."""
  (folder,) = [p for p in manual.rglob(f"{video}_gt") if p.is_dir()]
  (path,) = [p for p in folder.iterdir() if p.name in (f"{frame + 1:03d}.bmp", f"frame{frame + 1:03d}.bmp")]
  return path


def test_release_masks_are_read_by_number_and_their_labels_equal_the_m_labels(tmp_path):
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", RELEASE_MASKS, "ped2")
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == RELEASE_MASKS_LABELS
  assert [bool(r["has_mask"]) for r in test] == RELEASE_MASKS_HAVE
  names = {0: "Test001", 1: "Test002", 2: "Test003"}
  for record in test:
    if not record["has_mask"]:
      assert record["mask"] == b""
      continue
    mask = testing.decode(record, "mask")
    # A frame is anomalous in the .m file exactly when its mask has an anomalous pixel ...
    assert mask.any() == bool(record["label"])
    # ... and each record holds the mask of its own frame (1-based files, 0-based frames), 0/255.
    path = _mask_file(RELEASE_MASKS, names[int(record["video_index"])], int(record["frame_index"]))
    np.testing.assert_array_equal(mask, np.asarray(Image.open(path)))
    assert set(np.unique(mask)) <= {0, 255}
  metadata = builder.info.metadata
  assert metadata["layout"] == "JPEG release (in the manual dir itself)"
  folder = RELEASE_MASKS / "masks"
  assert metadata["masks"] == {
    "folder": str(folder),
    "videos": {"Test001": str(folder / "Test001_gt"), "Test003": str(folder / "Test003_gt")},
    "without": ["Test002"],
  }
  assert metadata["labels"] == (
    f"official UCSDped2.m frame ranges; pixel masks of 2 of 3 test videos (TestNNN_gt BMPs in {folder})"
  )
  assert str(folder) in builder.info.description
  assert not any(bool(r["has_mask"]) for r in _read(builder, "train"))


def test_release_masks_resized_with_the_frames(tmp_path):
  config = common.variant(ucsd.Builder.builder_configs["ped2"], frame_size=(12, 18))
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", RELEASE_MASKS, config)
  test = _read(builder, "test")
  assert [bool(r["has_mask"]) for r in test] == RELEASE_MASKS_HAVE
  masks = [testing.decode(r, "mask") for r in test if r["has_mask"]]
  assert {m.shape for m in masks} == {(12, 18)}
  assert [bool(m.any()) for m in masks] == [bool(r["label"]) for r in test if r["has_mask"]]


def _place(tmp_path, release_in, masks_in):
  """A copy of the fixture with the release in ``release_in`` and the _gt folders in
  ``masks_in`` (both relative to the manual dir)."""
  manual = tmp_path / "manual"
  release = manual / release_in
  release.mkdir(parents=True)
  for entry in ("training", "testing", "UCSDped2.m"):
    source = RELEASE_MASKS / entry
    (shutil.copytree if source.is_dir() else shutil.copy)(source, release / entry)
  shutil.copytree(RELEASE_MASKS / "masks", manual / masks_in, dirs_exist_ok=True)
  return manual


@pytest.mark.parametrize(
  "release_in, masks_in",
  [(".", "."), (".", "testing"), ("ped2", "ped2/masks"), ("ped2", "ped2"), ("ped2", "masks"), ("ped2", ".")],
)
def test_release_masks_are_found_where_a_user_puts_them(tmp_path, release_in, masks_in):
  manual = _place(tmp_path, release_in, masks_in)
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", manual, "ped2")
  assert [bool(r["has_mask"]) for r in _read(builder, "test")] == RELEASE_MASKS_HAVE
  assert builder.info.metadata["masks"]["folder"] == os.path.normpath(manual / masks_in)


def test_release_mask_errors_name_the_file(tmp_path):
  manual = _copy(RELEASE_MASKS, tmp_path)
  gt = manual / "masks" / "Test003_gt"

  def fails(match, name):
    with pytest.raises(ValueError, match=match):
      testing.prepare(ucsd.Builder, tmp_path / name, manual, "ped2")

  (gt / "frame002.bmp").rename(tmp_path / "frame002.bmp")  # a frame without its mask
  fails(rf"{gt / 'frame002.bmp'} is missing: video Test003 has 4 frames", "a")
  shutil.copy(tmp_path / "frame002.bmp", gt / "frame002.bmp")
  shutil.copy(gt / "frame004.bmp", gt / "frame005.bmp")  # one mask too many
  fails(rf"{gt / 'frame005.bmp'} is the mask of frame 5 \(numbered from 1\) but video Test003 has 4", "b")
  (gt / "frame005.bmp").unlink()
  shutil.copy(gt / "frame004.bmp", gt / "004.bmp")  # two files for one frame
  fails("frame004.bmp and .*/004.bmp are both the mask of frame 4 of video Test003", "c")
  (gt / "004.bmp").unlink()
  Image.fromarray(np.zeros((24, 35), np.uint8), mode="L").save(gt / "frame003.bmp")  # another size
  fails(
    rf"mask {gt / 'frame003.bmp'} is 24x35 \(height x width\) but its frame .*testing/frames/03/002.jpg is 24x36", "d"
  )
  Image.fromarray(np.zeros((24, 36), np.uint8), mode="L").save(gt / "frame003.bmp")
  shutil.copytree(gt, manual / "masks" / "Test004_gt")  # masks of a video that is not there
  fails(r"Test004_gt has no test video: .*testing/frames has no video 4", "e")
  shutil.rmtree(manual / "masks" / "Test004_gt")
  shutil.copytree(gt, manual / "Test003_gt")  # _gt folders in two places
  fails(r"TestNNN_gt mask folders are in more than one place: .*/masks, .*manual; keep them in one", "f")
