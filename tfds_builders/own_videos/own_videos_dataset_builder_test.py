"""Tests of the own-footage builder: the miniature folder in ``dummy_data/`` (see its
``make_fixtures.py``) and footage folders the tests write themselves."""

import logging
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from vad_jax.tfds_builders import common, testing, video
from vad_jax.tfds_builders.own_videos import labels as labels_lib
from vad_jax.tfds_builders.own_videos import own_videos_dataset_builder as own_videos

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
DUMMY_TEST_LABELS = [0, 0, 1, 1, -1, -1] + [-1] * 4 + [0, 0, 1, 1, 0]


class OwnVideosTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = own_videos.Builder
  SPLITS = {"train": 15, "test": 15}
  BUILDER_CONFIG_NAMES_TO_TEST = ["default", "128x128"]


def _read(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


def _frames(n, seed, size=(16, 24)):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 200, size=(*size, 3), dtype=np.uint8)
  return np.stack([np.roll(base, i, axis=1) for i in range(n)])


def _footage(root: pathlib.Path, train=None, test=None) -> pathlib.Path:
  """A footage folder: ``{name: frame count}`` per split; a name without a video suffix
  is a frame folder of PNG files ``0.png``, ``1.png``, ... (``test=None``: no test/)."""
  for split, videos in (("train", train or {"cam_a.mp4": 6}), ("test", test)):
    if videos is None:
      continue
    (root / split).mkdir(parents=True)
    for seed, (name, n) in enumerate(videos.items()):
      frames = _frames(n, seed)
      if name.endswith(own_videos.VIDEO_SUFFIXES):
        video.write_video(root / split / name, frames)
      else:
        (root / split / name).mkdir()
        for i, frame in enumerate(frames):
          Image.fromarray(frame).save(root / split / name / f"{i}.png")
  return root


def _prepare(tmp_path, manual, config=None, **kwargs):
  return testing.prepare(own_videos.Builder, tmp_path / "data", manual, config, **kwargs)


def test_dummy_data_labels_order_and_metadata(tmp_path):
  builder = _prepare(tmp_path, DUMMY)
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == DUMMY_TEST_LABELS
  metadata = builder.info.metadata
  assert [(v["name"], v["length"], v["label"]) for v in metadata["videos"]["test"]] == [
    ("corridor_1400", 6, 1),
    ("lobby", 4, -1),
    ("yard_night", 5, 1),
  ]
  assert metadata["files"]["train"] == ["train/corridor_0800.mp4", "train/corridor_0900.avi", "train/yard"]
  assert metadata["skipped"]["items"][0]["name"] == "train/notes.txt"
  assert metadata["source"]["manual_dir"] == str(DUMMY)
  train = _read(builder, "train")
  assert {int(r["label"]) for r in train} == {0}
  yard = [r for r in train if r["video"] == b"yard"]
  expected = np.asarray(Image.open(DUMMY / "train/yard/frame_8.png"))  # natural order: 8, 9, 10, 11
  np.testing.assert_array_equal(testing.decode(yard[0]), expected)
  np.testing.assert_array_equal(testing.decode(yard[2]), np.asarray(Image.open(DUMMY / "train/yard/frame_10.png")))
  assert test[10]["frame"] == (DUMMY / "test/yard_night/0001.jpg").read_bytes()  # native JPEG kept as is
  assert testing.decode(train[0]).shape == (24, 32, 3)


def test_stride_and_size_configs(tmp_path):
  builder = _prepare(tmp_path, DUMMY, "128x128_s2")
  assert builder.info.splits["train"].num_examples == 3 + 3 + 2
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == DUMMY_TEST_LABELS[0:6:2] + DUMMY_TEST_LABELS[6:10:2] + [0, 1, 0]
  assert testing.decode(test[0]).shape == (128, 128, 3)
  config = common.variant(own_videos.Builder.builder_configs["default"], frame_size=(8, 12), frame_stride=3)
  builder = _prepare(tmp_path / "variant", DUMMY, config)
  assert [v["length"] for v in builder.info.metadata["videos"]["train"]] == [2, 2, 2]
  assert testing.decode(_read(builder, "train")[0]).shape == (8, 12, 3)


def test_interval_txt_normal_videos_and_names_with_spaces(tmp_path):
  manual = _footage(tmp_path / "m", test={"front door.mp4": 8, "quiet.avi": 5, "garden": 6})
  (manual / "test/intervals.txt").write_text(
    "# video first_frame last_frame\n\n'front door' 1 2\n\"front door.mp4\" 6 7  # a second interval\nquiet.avi\n"
  )
  builder = _prepare(tmp_path, manual)
  labels = {v["name"]: v for v in builder.info.metadata["videos"]["test"]}
  assert [(name, v["label"]) for name, v in labels.items()] == [("front door", 1), ("garden", -1), ("quiet", 0)]
  test = _read(builder, "test")
  assert [int(r["label"]) for r in test] == [0, 1, 1, 0, 0, 0, 1, 1] + [-1] * 6 + [0] * 5
  assert "intervals.txt" in builder.info.metadata["labels"]


def test_unlabelled_test_split_and_no_test_split(tmp_path):
  manual = _footage(tmp_path / "m", test={"cam_b.mkv": 5, "frames": 4})
  builder = _prepare(tmp_path, manual)
  assert {int(r["label"]) for r in _read(builder, "test")} == {-1}
  assert [v["label"] for v in builder.info.metadata["videos"]["test"]] == [-1, -1]
  assert "unlabelled" in builder.info.metadata["labels"]
  builder = _prepare(tmp_path / "train_only", _footage(tmp_path / "m2", train={"a.mov": 5, "b": 3}))
  assert set(builder.info.splits) == {"train"}
  assert builder.info.splits["train"].num_examples == 8
  assert builder.info.metadata["layout"] == "train/ only"


# Each case: (file, its text, error message pattern: file, line, and what is wrong).
MALFORMED = {
  "no header": ("labels.csv", "cam_t.mp4,0,1\n", r"labels\.csv, line 1: the first line must be the header video,frame"),
  "label not 0/1": ("labels.csv", "video,frame,label\ncam_t,0,0\ncam_t,1,2\n", r"labels\.csv, line 3: label must be 0"),
  "frame not a number": ("labels.csv", "video,frame,label\ncam_t,1.5,1\n", r"line 2: frame must be a frame number"),
  "negative frame": ("labels.csv", "video,frame,label\ncam_t,-1,1\n", r"line 2: frame must be a frame number"),
  "short row": ("labels.csv", "video,frame,label\ncam_t,1\n", r"labels\.csv, line 2: expected 3 fields"),
  "unknown video": ("labels.csv", "video,frame,label\n\nghost.mp4,0,1\n", r"line 3: no video 'ghost\.mp4' in .*cam_t"),
  "conflict": ("labels.csv", "video,frame,label\ncam_t,1,1\ncam_t,1,0\n", r"line 3: frame 1 .* labelled 0 here and 1"),
  "reversed": ("intervals.csv", "video,first_frame,last_frame\ncam_t,5,2\n", r"intervals\.csv, line 2: .* 5-2 ends"),
  "half interval": ("intervals.csv", "video,first_frame,last_frame\ncam_t,2,\n", r"line 2: give both first_frame"),
  "txt fields": ("intervals.txt", "cam_t 1 2\ncam_t 3\n", r"intervals\.txt, line 2: expected 'video first_frame"),
  "txt quote": ("intervals.txt", "'cam_t 1 2\n", r"intervals\.txt, line 1: cannot split"),
  "past the end (video)": (
    "intervals.txt",
    "cam_t 3 40\n",
    r"line 1: frame 40 of video 'cam_t' is past its end: it has 8 frames, as its container",
  ),
  "past the end (folder)": (
    "labels.csv",
    "video,frame,label\nshots,6,1\n",
    r"line 2: frame 6 of video 'shots' .* 6 frame",
  ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_label_files_name_the_file_and_line(tmp_path, case):
  name, text, pattern = MALFORMED[case]
  manual = _footage(tmp_path / "m", test={"cam_t.mp4": 8, "shots": 6})
  (manual / "test" / name).write_text(text)
  with pytest.raises(labels_lib.LabelFileError, match=pattern) as error:
    _prepare(tmp_path, manual)
  assert error.value.path == str(manual / "test" / name)


def test_labels_checked_against_the_decoded_frames(tmp_path):
  # An MKV reports no frame count (only an estimate), so the check happens after decoding.
  manual = _footage(tmp_path / "m", test={"cam_t.mkv": 5})
  (manual / "test/labels.csv").write_text("video,frame,label\ncam_t,5,1\n")
  with pytest.raises(labels_lib.LabelFileError, match=r"labels\.csv, line 2: frame 5 .* 5 decodable frames"):
    _prepare(tmp_path, manual)


def test_a_video_labelled_in_two_files_and_two_interval_files(tmp_path):
  manual = _footage(tmp_path / "m", test={"cam_t.mp4": 8})
  (manual / "test/labels.csv").write_text("video,frame,label\ncam_t,1,1\n")
  (manual / "test/intervals.csv").write_text("video,first_frame,last_frame\n# comment\ncam_t,1,2\n")
  with pytest.raises(labels_lib.LabelFileError, match=r"intervals\.csv, line 3: video 'cam_t' already has labels in"):
    _prepare(tmp_path, manual)
  (manual / "test/labels.csv").unlink()
  (manual / "test/intervals.txt").write_text("cam_t 1 2\n")
  with pytest.raises(labels_lib.LabelFileError, match=r"intervals\.txt: intervals\.csv is there too"):
    _prepare(tmp_path, manual)


def test_layout_errors(tmp_path):
  loose = tmp_path / "loose"
  loose.mkdir()
  video.write_video(loose / "cam.mp4", _frames(3, 0))
  with pytest.raises(common.ManualDataError, match=r"No train/ folder .* 1 videos directly in it \(cam\.mp4"):
    _prepare(tmp_path, loose)
  manual = _footage(tmp_path / "m", train={"cam.mp4": 3, "cam.avi": 3})
  with pytest.raises(ValueError, match=r"cam\.avi and .*cam\.mp4 would both be video 'cam'"):
    _prepare(tmp_path, manual)
  manual = _footage(tmp_path / "m2")
  (manual / "train/day1").mkdir()
  video.write_video(manual / "train/day1/cam.mp4", _frames(3, 0))
  with pytest.raises(common.ManualDataError, match=r"day1 holds no frame images"):
    _prepare(tmp_path, manual)
  manual = _footage(tmp_path / "m3")
  (manual / "train/labels.csv").write_text("video,frame,label\n")
  with pytest.raises(ValueError, match=r"train/labels\.csv: training footage is taken as normal"):
    _prepare(tmp_path, manual)
  empty = tmp_path / "m4" / "train"
  empty.mkdir(parents=True)
  (empty / "readme.txt").write_text("x")
  with pytest.raises(common.ManualDataError, match=r"No videos in .*train \(skipped, not videos: train/readme\.txt\)"):
    _prepare(tmp_path, empty.parent)


def test_damaged_recordings_keep_what_decodes(tmp_path, monkeypatch):
  manual = _footage(tmp_path / "m", train={"count.avi": 5, "cut.mp4": 6, "broken.mp4": 4})
  video.set_avi_frame_count(manual / "train/count.avi", 12)  # the container promises 12
  (manual / "train/broken.mp4").write_bytes(b"\x00" * 64)
  iter_frames = video.iter_frames

  def cut_short(path, **kwargs):  # "cut.mp4" stops decoding after 3 frames
    frames = iter_frames(path, **kwargs)
    if not str(path).endswith("cut.mp4"):
      return (yield from frames)
    for _ in range(3):
      yield next(frames)
    raise video.VideoDecodeError(path, "decoding failed after 3 frames (Invalid data)")

  monkeypatch.setattr(video, "iter_frames", cut_short)
  with pytest.raises(video.VideoDecodeError, match=r"broken\.mp4"):
    _prepare(tmp_path, manual)
  builder = _prepare(tmp_path / "skip", manual, skip_undecodable=True)
  metadata = builder.info.metadata
  assert [(v["name"], v["length"]) for v in metadata["videos"]["train"]] == [("count", 5), ("cut", 3)]
  assert metadata["skipped"]["counts"] == {"undecodable": 1}
  assert metadata["skipped"]["items"][0]["name"] == "broken"
  assert metadata["notes"] == [
    "train/count.avi: decoded 5 frames, its container reports 12",
    "train/cut.mp4: decoding failed after 3 frames (Invalid data); kept the 3 frames before the damage",
  ]


def test_prepared_data_are_refused_for_another_footage_folder(tmp_path, caplog):
  manual = _footage(tmp_path / "cam1", test={"t.mp4": 5})
  builder = _prepare(tmp_path, manual)
  builder.check_prepared_source(manual)
  copy = shutil.copytree(manual, tmp_path / "copy")
  builder.check_prepared_source(copy)  # the same footage elsewhere
  other = _footage(tmp_path / "cam2", train={"cam_a.mp4": 7})
  with pytest.raises(own_videos.PreparedFromOtherFootageError, match=r"prepared from the footage in .*cam1"):
    builder.check_prepared_source(other)
  with caplog.at_level(logging.WARNING):
    builder.check_prepared_source(tmp_path / "nowhere")  # e.g. a relative path from another directory
  assert "has no train/ folder to compare with" in caplog.text
  video.write_video(manual / "train/more.mp4", _frames(4, 9))
  with caplog.at_level(logging.WARNING):
    builder.check_prepared_source(manual)
  assert "changed since it was prepared into" in caplog.text and "(2 files then, 3 now)" in caplog.text


def _mixed_size_video(path: pathlib.Path) -> None:
  """An MPEG-TS video whose frames change from 24x16 to 32x24 after frame 4 (two
  recordings joined, as a camera that changed resolution writes them)."""
  parts = []
  for i, size in enumerate([(16, 24), (24, 32)]):
    part = path.with_name(f"part{i}.ts")
    video.write_video(part, _frames(4, i, size=size))
    parts.append(part.read_bytes())
    part.unlink()
  path.write_bytes(b"".join(parts))


def test_frames_that_change_size_part_way_are_refused_naming_the_file_and_both_sizes(tmp_path):
  manual = _footage(tmp_path / "folder", train={"cam_b": 6})
  Image.fromarray(_frames(1, 5, size=(24, 32))[0]).save(manual / "train/cam_b/4.png")
  with pytest.raises(
    common.FrameSizeError,
    match=r"train/cam_b/4\.png is 32x24 pixels \(width x height\) but the frames before it are 24x16",
  ):
    _prepare(tmp_path, manual)
  manual = _footage(tmp_path / "video", train={"cam_a.mp4": 6})
  _mixed_size_video(manual / "train/joined.ts")
  with pytest.raises(common.FrameSizeError, match=r"train/joined\.ts: frame 4 is 32x24 pixels .* before it are 24x16"):
    _prepare(tmp_path / "v", manual, config="128x128")  # refused before resizing hides it


def test_a_truncated_jpeg_is_named_with_its_video_and_frame(tmp_path):
  manual = tmp_path / "m"
  (manual / "train" / "cam").mkdir(parents=True)
  for i, frame in enumerate(_frames(5, 0)):
    Image.fromarray(frame).save(manual / "train/cam" / f"{i}.jpg", quality=95)
  data = (manual / "train/cam/2.jpg").read_bytes()
  (manual / "train/cam/2.jpg").write_bytes(data[: len(data) // 2])
  with pytest.raises(
    common.FrameDecodeError, match=r"Cannot decode image .*train/cam/2\.jpg \(video train/cam, frame 2\)"
  ):
    _prepare(tmp_path, manual)


def test_preparing_prints_none_of_tfds_download_lines(tmp_path, capsys):
  _prepare(tmp_path, _footage(tmp_path / "m"))
  out = capsys.readouterr().out
  assert "Downloading and preparing" not in out and "downloaded and prepared" not in out, out
