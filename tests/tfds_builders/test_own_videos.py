"""README "Train on your own camera", end to end on footage the test writes: a folder of
videos (train/ normal, test/ with an interval file and an unlabelled frame folder)
trained with ``own_videos:test``, evaluated, and a new video scored with the Python API;
the prepared data refuse to stand in for another camera's footage."""

import csv
import logging

import numpy as np
import pytest
from PIL import Image

from vad_jax import config_flags, loop
from vad_jax import detector as detector_lib
from vad_jax.data import prepare
from vad_jax.detector import Detector
from vad_jax.tfds_builders import video
from vad_jax.tfds_builders.own_videos import own_videos_dataset_builder as own_videos

SIZE = 32


def walkway(num_frames: int, seed: int, fast_from: int | None = None) -> np.ndarray:
  """uint8 ``[T, 32, 32, 3]``: a bright square crossing a textured background at one
  pixel per frame, or four from frame ``fast_from`` on (the anomaly)."""
  rng = np.random.default_rng(seed)
  background = rng.integers(40, 90, size=(SIZE, SIZE, 3), dtype=np.uint8)
  frames, x = [], 0
  for t in range(num_frames):
    frame = background.copy()
    frame[12:20, x % (SIZE - 8) : x % (SIZE - 8) + 8] = 230
    frames.append(frame)
    x += 4 if fast_from is not None and t >= fast_from else 1
  return np.stack(frames)


@pytest.fixture
def footage(tmp_path):
  root = tmp_path / "footage"
  (root / "train").mkdir(parents=True)
  (root / "test" / "evening").mkdir(parents=True)
  video.write_video(root / "train" / "morning.mp4", walkway(16, 0))
  video.write_video(root / "train" / "noon.avi", walkway(16, 1))
  video.write_video(root / "test" / "intruder.mp4", walkway(16, 2, fast_from=10))
  for i, frame in enumerate(walkway(10, 3)):  # a frame folder without labels
    Image.fromarray(frame).save(root / "test" / "evening" / f"img{i + 1}.jpg", quality=95)
  (root / "test" / "intervals.txt").write_text("# video first_frame last_frame\nintruder.mp4 10 15\n")
  return root


def test_train_on_own_footage_then_detect_a_new_video(footage, tmp_path):
  config = config_flags.load("own_videos:test")
  config.data.manual_dir = str(footage)
  config.data.data_dir = str(tmp_path / "tfds")
  config.num_train_steps = config.checkpoint_every_steps = 4  # one checkpoint
  workdir = tmp_path / "runs" / "cam"
  results = loop.train_and_evaluate(config, str(workdir))
  t = config.model.sequence_length
  # Labelled frames with T-1 predecessors: intruder 4..15; the evening folder is unlabelled.
  assert (results["videos"], results["frames"], results["anomalous_frames"]) == (2, 16 - (t - 1), 6)
  assert 0.0 <= results["fused_micro_auc"] <= 1.0
  with open(workdir / "eval" / "scores.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["label"] for r in rows if r["video"] == "evening"] == ["-1"] * (10 - (t - 1))

  # Calibrate on unseen normal footage (README step 4), then detect with calibrated scores.
  normal = tmp_path / "normal.mp4"
  video.write_video(normal, walkway(30, 7))
  detector_lib.calibrate(workdir, [str(normal)])
  detector = Detector.load(workdir)
  assert detector.calibration["videos"] == [str(normal)]
  new_video = tmp_path / "new_video.mp4"
  video.write_video(new_video, walkway(12, 4, fast_from=8))
  result = detector.score(new_video)
  assert result.rule.startswith("calibrated score")
  np.testing.assert_array_equal(result.frames, np.arange(t - 1, 12))
  assert np.isfinite(result.scores).all() and result.alarm.shape == result.frames.shape
  assert all(a <= b for a, b in detector.alarm_intervals(result))

  other_camera = tmp_path / "other_camera"
  (other_camera / "train").mkdir(parents=True)
  video.write_video(other_camera / "train" / "gate.mp4", walkway(8, 5))
  config.data.manual_dir = str(other_camera)
  with pytest.raises(own_videos.PreparedFromOtherFootageError, match="data_dir"):
    prepare.ensure_prepared(config.data)


def test_preparing_footage_names_what_it_skipped_without_tfds_download_lines(tmp_path, capsys, caplog):
  footage = tmp_path / "footage"
  (footage / "train").mkdir(parents=True)
  video.write_video(footage / "train" / "morning.mp4", walkway(8, 0))
  (footage / "train" / "notes.txt").write_text("camera moved on Monday")
  (footage / "train" / "Thumbs.db").write_bytes(b"\x00")
  config = config_flags.load("own_videos:test")
  config.data.manual_dir = str(footage)
  config.data.data_dir = str(tmp_path / "tfds")
  with caplog.at_level(logging.INFO):
    prepare.ensure_prepared(config.data)
  out = capsys.readouterr().out
  assert out.splitlines() == [
    f"preparing own_videos/default/1.0.0 from {footage} into {tmp_path / 'tfds/own_videos/default/1.0.0'} "
    f"(once: later runs read the prepared data)",
    "prepared own_videos/default/1.0.0: train 8 frames",
    "skipped, not a video: train/Thumbs.db, train/notes.txt",
  ]
  assert "Variant folder" not in caplog.text and "dataset_info.json" not in caplog.text, caplog.text
