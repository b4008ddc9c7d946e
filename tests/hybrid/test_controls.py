"""The classifiers' controls (``vad_jax/hybrid/controls.py``): features by hand, the
logistic regression, and the claim that a control and a learned model are scored on the
same clips and frames by the same evaluation code."""

import csv
import json
from typing import Any

import flax
import jax
import numpy as np
import pytest

from vad_jax import sharding
from vad_jax.configs import classifier
from vad_jax.data import sources
from vad_jax.hybrid import boxes as boxes_lib
from vad_jax.hybrid import controls, evaluation
from vad_jax.hybrid import inputs as hybrid_inputs
from vad_jax.hybrid import task as classification
from vad_jax.studies import ablations


def make_config(variant: str, data_dir):
  """The config on a quarter of the videos: training videos 0, 2, 14 (anomalous) and 9,
  test videos 0 and 2."""
  config = classifier.get_config(variant)
  config.data.data_dir = str(data_dir)
  config.data.train_videos = "fold:2/4"
  config.data.eval_videos = "fold:2/4"
  return config


@flax.struct.dataclass
class Variables:
  """What ``eval_step`` reads of a training state."""

  params: Any
  batch_stats: Any


def one_device_mesh():
  return sharding.make_mesh(jax.devices()[:1])


# ------------------------------------------------------------------ features


def test_frame_differences_by_hand():
  gray = np.array([0.0, 0.1, 0.3, 0.25], np.float32)[None, :, None, None] * np.ones((1, 4, 2, 3), np.float32)
  diff = controls.frame_differences(gray)
  np.testing.assert_allclose(diff[0, :, 0, 0], [0.1, 0.1, 0.2, 0.05], atol=1e-7)  # frame 0 takes frame 1's
  np.testing.assert_array_equal(controls.frame_differences(gray[:, :1]), 0.0)
  with pytest.raises(ValueError, match="gray clips"):
    controls.frame_differences(gray[0])


def test_pixel_statistics_by_hand():
  maps = np.zeros((1, 1, 10, 10), np.float32)
  maps[0, 0, 0, :5] = 0.5  # 5 of 100 pixels at 0.5
  maps[0, 0, 1, 0] = 0.1  # 1 pixel at 0.1
  mean, q90, q99, peak, above4, above8, above16 = controls.pixel_statistics(maps)[0, 0]
  assert mean == pytest.approx(2.6 / 100)
  assert q90 == 0.0 and peak == pytest.approx(0.5)
  assert q99 == pytest.approx(0.5)  # the 99th percentile lies among the five 0.5 pixels
  assert (above4, above8, above16) == pytest.approx((0.06, 0.06, 0.05))


def test_gray_conversion_uses_the_box_source_weights():
  rgb = np.array([1.0, 0.5, 0.25], np.float32).reshape(1, 1, 3)
  assert controls.to_gray(rgb)[0, 0] == pytest.approx(0.2125 + 0.7154 * 0.5 + 0.0721 * 0.25)
  assert controls.to_gray(np.full((2, 2, 1), 0.3, np.float32))[0, 0] == pytest.approx(0.3)


def test_box_statistics_by_hand():
  # Frame 0: one 4x2 box. Frame 1: that box moved 3 pixels right plus a 2x2 box far away.
  # Frame 2: none.
  boxes = np.zeros((3, 2, 4), np.float32)
  boxes[0, 0] = [0, 0, 4, 2]
  boxes[1, 0] = [3, 0, 7, 2]
  boxes[1, 1] = [10, 10, 12, 12]
  scores = np.array([[0.5, 0], [1.0, 0.25], [0, 0]], np.float32)
  valid = np.array([[True, False], [True, True], [False, False]])
  stats = controls.box_statistics(boxes_lib.Boxes(boxes, scores, valid), (16, 20))
  names = controls.BOX_FEATURES
  row = dict(zip(names, stats[1]))
  assert row["count"] == 2
  assert row["area"] == pytest.approx((8 + 4) / 320)
  assert row["max_area"] == pytest.approx(8 / 320)
  assert row["max_height"] == pytest.approx(2 / 16) and row["max_width"] == pytest.approx(4 / 20)
  assert row["max_score"] == pytest.approx(1.0)
  far = np.hypot(11 - 2, 11 - 1)  # the new box's centre to the only centre of frame 0
  assert row["max_speed"] == pytest.approx(far) and row["mean_speed"] == pytest.approx((3 + far) / 2)
  assert dict(zip(names, stats[0]))["max_speed"] == 0.0  # nothing before frame 0
  np.testing.assert_array_equal(stats[2], 0.0)  # no box: all zero


def test_motion_features_of_a_still_clip_and_of_a_moving_square():
  source = boxes_lib.MotionBoxSource(4, opening=0, dilation=0, min_area=4)
  still = np.full((1, 6, 16, 16, 3), 0.4, np.float32)
  features = controls.motion_features(still, source)
  assert features.shape == (1, 6, len(controls.FEATURE_NAMES))
  np.testing.assert_array_equal(features, 0.0)
  moving = still.copy()
  for t in range(6):
    moving[0, t, 6:9, 2 + 2 * t : 5 + 2 * t] = 0.9  # a 3x3 square, 2 pixels per frame
  row = dict(zip(controls.FEATURE_NAMES, controls.motion_features(moving, source)[0, 3]))
  assert row["diff_max"] == pytest.approx(0.5)
  assert row["diff_above_0.16"] == pytest.approx(12 / 256)  # 2x3 pixels leave, 2x3 arrive
  assert row["background_above_0.16"] == pytest.approx(9 / 256)  # the square itself
  assert row["box_count"] == 1 and row["box_max_area"] == pytest.approx(9 / 256)
  assert row["box_max_speed"] == pytest.approx(2.0)


# ------------------------------------------------------------------ logistic regression


def test_logistic_regression_is_at_the_optimum_of_its_objective():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -1.0]
  y = (x[:, 0] + 0.2 * (x[:, 1] - 10) + rng.normal(size=300) > 1.0).astype(float)
  model = controls.fit_logistic(x, y, l2=0.1)
  z = (x - model.mean) / model.scale
  p = model.probabilities(x)
  counts = np.array([np.sum(y == 0), np.sum(y == 1)])
  sample = (y.size / (2.0 * counts))[y.astype(int)]
  sample /= sample.sum()
  np.testing.assert_allclose(z.T @ (sample * (p - y)) + 0.1 * model.weights, 0.0, atol=1e-9)
  assert np.sum(sample * (p - y)) == pytest.approx(0.0, abs=1e-9)  # the bias is not penalised
  assert model.weights[0] > 0 and model.weights[1] > 0
  with pytest.raises(ValueError, match="both labels"):
    controls.fit_logistic(x, np.zeros(300))


def test_balanced_weights_ignore_how_often_a_class_is_repeated():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(40, 2))
  y = (x[:, 0] > 0).astype(float)
  once = controls.fit_logistic(x, y)
  twice = controls.fit_logistic(np.concatenate([x, x[y == 0]]), np.concatenate([y, y[y == 0]]))
  np.testing.assert_allclose(once.probabilities(x) > 0.5, twice.probabilities(x) > 0.5)


# ------------------------------------------------------------------ same clips, same evaluation


def test_a_control_and_a_learned_model_are_scored_on_the_same_frames_by_the_same_code(data_dir, monkeypatch):
  config = make_config("hybrid,synthetic,test", data_dir)
  mesh = one_device_mesh()
  calls = []
  original = evaluation.classification_metrics

  def spy(arrays, config_):
    calls.append({k: np.array(v) for k, v in arrays.items()})
    return original(arrays, config_)

  monkeypatch.setattr(evaluation, "classification_metrics", spy)
  model = classification.build_model(config)
  batch, _ = hybrid_inputs.example_batch(config, 2)
  init = jax.jit(lambda rng, batch: classification.init_variables(model, config, rng, batch))
  variables = init(jax.random.key(0), batch)
  state = Variables(params=variables["params"], batch_stats=variables.get("batch_stats", {}))
  learned = classification.evaluate(config, state, mesh)
  control = classification.controls(config)["motion_energy"](config, mesh)
  assert len(calls) == 2
  for key in ("label", "frame_labels", "video_index", "frame_index"):
    np.testing.assert_array_equal(calls[0][key], calls[1][key])  # the same clips and frames
  assert set(calls[0]) == set(calls[1])
  assert calls[0]["frame_probs"].shape == calls[1]["frame_probs"].shape == (30, 8)  # 2 videos, windows of 8
  assert {k: v for k, v in control.items() if k != "control"}.keys() == learned.keys()
  for level in ("clip", "frame", "alarm"):
    assert control[level].keys() == learned[level].keys()
    assert control[level]["count"] == learned[level]["count"]
  assert classification.scalar_metrics(control).keys() == classification.scalar_metrics(learned).keys()
  assert control["control"]["weights"].keys() == set(controls.FEATURE_NAMES)


def test_the_ablation_runner_puts_the_control_beside_the_variants(data_dir, tmp_path):
  base = make_config("hybrid,synthetic,test", data_dir)
  assert ablations.variants(base)[-1] == "motion_energy"
  assert ablations.variant_config(base, "motion_energy").to_dict() == base.to_dict()
  rows = ablations.run_all(base, tmp_path, ["motion_energy"])
  saved = json.loads((tmp_path / "motion_energy" / "eval" / "metrics.json").read_text())
  assert saved["frame"]["roc_auc"] == pytest.approx(rows["motion_energy"]["frame_auc"])
  assert set(rows["motion_energy"]) == set(classification.metrics(base))
  fit = json.loads((tmp_path / "motion_energy" / "eval" / "control.json").read_text())
  assert fit["name"] == "motion_energy" and fit["train_anomalous"] > 0
  # The baselines have no ablations but do have the control.
  assert ablations.variants(make_config("effnet_hog,synthetic,test", data_dir)) == ("full", "motion_energy")


def write_scores(path, split, score):
  path.mkdir(parents=True)
  with open(path / "scores.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "frame", "label", *controls.PREDICTION_FEATURES, "score_fused"])
    for video in split.videos:
      records = sources.read_records(split.source, range(video["start"], video["start"] + video["length"]))
      for i, record in enumerate(records):
        if i < 4:
          continue  # the prediction network scores a frame once it has T = 4 predecessors
        values = score(int(record["label"]), i)
        writer.writerow([video["name"], i, int(record["label"]), *values, 0.5])


def test_the_prediction_score_control_reads_the_scores_by_video_and_frame(data_dir, tmp_path):
  config = make_config("hybrid,synthetic,test", data_dir)
  config.prediction_scores = str(tmp_path / "scores")
  n = len(controls.PREDICTION_FEATURES)
  for name in ("train", "test"):
    split = sources.open_split("synthetic_surveillance", name, builder_config="supervised", data_dir=str(data_dir))
    # A statistic that is the label itself, one that is the frame index, the rest constant.
    write_scores(tmp_path / "scores" / name, split, lambda label, i: [30.0 - 5 * label, float(i)] + [1.0] * (n - 2))
  table = controls.read_prediction_scores(tmp_path / "scores" / "test" / "scores.csv")
  step = controls.lookup_step(table, ["test_000"])
  found = step({"video_index": np.array([0, -1]), "frame_index": np.array([[3, 4], [0, 0]])})["features"]
  np.testing.assert_allclose(found[0, 1, 1], 4.0)
  np.testing.assert_allclose(found[0, 0], np.mean(list(table["test_000"].values()), axis=0))  # unscored: mean
  np.testing.assert_array_equal(found[1], 0.0)  # padding example
  results = classification.controls(config)["prediction_score"](config, one_device_mesh(), tmp_path / "eval")
  assert results["frame"]["roc_auc"] > 0.99  # the label is in the scores of every scored frame
  assert results["frame"]["count"] == 240
  assert (tmp_path / "eval" / "frame_scores.csv").exists()
