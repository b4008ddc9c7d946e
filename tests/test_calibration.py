"""The calibrated deployment score (vad_jax/dual_stream/calibration.py): its false-alarm
rate, the held-out training videos, saving it with the checkpoint, the deployment
protocol in evaluation, and streaming equal to offline scoring."""

import json
import shutil

import numpy as np
import pytest

from vad_jax import calibrate, train
from vad_jax.configs import synthetic
from vad_jax.data import sources
from vad_jax.detector import Detector
from vad_jax.dual_stream import calibration


def normal_stats(rng, n):
  return {
    "psnr": rng.normal(30, 2, n),
    "spatial_psnr": rng.normal(29, 2, n),
    "temporal_psnr": rng.normal(31, 1, n),
    "spatial_distance": rng.gamma(2.0, 0.1, n),
    "temporal_distance": rng.gamma(3.0, 0.1, n),
  }


def test_the_threshold_gives_the_target_false_alarm_rate_on_unseen_normal_frames():
  rng = np.random.default_rng(0)
  fitted = calibration.fit(normal_stats(rng, 5000), lam=0.8, false_alarm_rate=0.01, videos=["a"])
  held_out = calibration.calibrated_scores(normal_stats(rng, 20000), fitted)
  for stream, scores in held_out.items():
    assert 0.0 <= scores.min() and scores.max() <= 1.0
    assert np.mean(scores > fitted["threshold"]) == pytest.approx(0.01, abs=0.004), stream
  anomalous = normal_stats(rng, 1000)
  anomalous["psnr"] -= 8  # a worse prediction
  assert np.mean(calibration.calibrated_scores(anomalous, fitted)["fused"] > fitted["threshold"]) > 0.9
  with pytest.raises(ValueError, match="at least 20 normal frames"):
    calibration.fit(normal_stats(rng, 5), 0.8, 0.01, ["tiny"])


def test_events_and_delays():
  labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0])
  assert calibration.events(labels) == [(1, 3), (6, 7)]
  scores = {s: np.array([0, 0, 0, 0.99, 0, 0.999, 0, 0, 0]) for s in calibration.STREAM_TERMS}
  metrics = calibration.deployment_metrics([(np.arange(9) + 10, labels, scores)], threshold=0.9)
  assert metrics["fused_events_detected"] == 0.5 and metrics["fused_detection_delay"] == 2.0
  assert metrics["fused_false_alarm_rate"] == pytest.approx(1 / 4) and metrics["anomalous_events"] == 2


@pytest.fixture(scope="module")
def calibrated_run(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("calibrated")
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.calibration.videos = "fold:0/3"
  config.calibration.false_alarm_rate = 0.05
  results = train.train_and_evaluate(config, str(workdir))
  return workdir, config, results


def test_held_out_videos_are_left_out_of_training_and_fit_the_calibration(calibrated_run, data_dir):
  workdir, config, results = calibrated_run
  saved = json.loads((workdir / "checkpoints" / "6" / "calibration.json").read_text())
  split = sources.open_split(config.data.name, "train", data_dir=str(data_dir))
  held_out = {v["name"] for v in sources.select_videos(split, "fold:0/3").videos}
  trained_on = {v["name"] for v in sources.select_videos(split, "fold:0/3", exclude=True).videos}
  assert set(saved["videos"]) == held_out and held_out and trained_on and not held_out & trained_on
  assert saved["false_alarm_rate"] == 0.05 and saved["threshold"] == pytest.approx(0.95)
  for stream in ("fused", "spatial", "temporal"):  # the deployment protocol beside the literature's
    for name in ("deployment_auc", "false_alarm_rate", "events_detected"):
      assert 0.0 <= results[f"{stream}_{name}"] <= 1.0
  assert results["anomalous_events"] >= 1 and "fused_micro_auc" in results


def test_the_detector_uses_the_saved_calibration_and_streams_like_offline(calibrated_run, data_dir, tmp_path):
  workdir, config, _ = calibrated_run
  detector = Detector.load(workdir)
  assert detector.calibration == json.loads((workdir / "checkpoints" / "6" / "calibration.json").read_text())
  split = sources.open_split(config.data.name, "test", data_dir=str(data_dir))
  video = split.videos[0]
  records = sources.read_records(split.source, np.arange(video["start"], video["start"] + video["length"]))
  from vad_jax import detection

  frames = [detection.EncodedFrame(r["frame"], f"frame {i}") for i, r in enumerate(records)]
  whole = detector.score(frames)
  assert whole.rule.startswith("calibrated score > 0.95")
  first_part = detector.score(frames[:40], batch_size=3)  # a stream cut short: no future frames used
  np.testing.assert_array_equal(first_part.frames, whole.frames[: len(first_part.frames)])
  np.testing.assert_allclose(first_part.scores, whole.scores[: len(first_part.scores)], atol=1e-5)  # batch rounding


def test_without_calibration_the_detector_refuses_unless_asked(calibrated_run, tmp_path):
  workdir, _, _ = calibrated_run
  bare = tmp_path / "bare"
  shutil.copytree(workdir / "checkpoints", bare / "checkpoints")
  (bare / "checkpoints" / "6" / "calibration.json").unlink()
  detector = Detector.load(bare)
  frames = np.zeros((8, 16, 16, 3), np.uint8)
  with pytest.raises(ValueError, match="has no calibration.*python -m vad_jax.calibrate"):
    detector.score(frames)
  assert detector.score(frames, normalisation="video").frames.size == 8 - 4
  # Fitting one from a user's normal footage (here: frames of the training split).
  folder = tmp_path / "normal"
  folder.mkdir()
  for i in range(30):
    from PIL import Image

    Image.fromarray(np.full((16, 16), 100 + i % 5, np.uint8)).save(folder / f"{i:03d}.png")
  path = calibrate.calibrate(bare, [str(folder)], false_alarm_rate=0.1)
  assert path == bare / "checkpoints" / "6" / "calibration.json"
  assert Detector.load(bare).calibration["videos"] == [str(folder)]
