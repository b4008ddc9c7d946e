"""Supervised classifiers trained end to end through the shared loop: the ablation runner,
restoring, detection, the baselines, the separation test on held-out videos, the DCSASS
fixture, pretrained weights, checkpoints of earlier layouts and resumption.

Runs on the 8 virtual CPU devices of the root conftest, on
``synthetic_surveillance/supervised`` (prepared once per test process).
"""

import json
import pathlib
import shutil

import flax
import jax
import numpy as np
import pytest

from vad_jax import loop, sharding
from vad_jax import state as state_lib
from vad_jax.configs import classifier
from vad_jax.detector import Detector
from vad_jax.hybrid import evaluation as hybrid_evaluation
from vad_jax.hybrid import inputs as hybrid_inputs
from vad_jax.hybrid import task as classification
from vad_jax.hybrid.task import build_model
from vad_jax.studies import ablations
from vad_jax.tfds_builders.synthetic_surveillance import scene as synthetic


def make_config(variant: str, data_dir, **overrides):
  config = classifier.get_config(variant)
  config.data.data_dir = str(data_dir)
  config.update_from_flattened_dict(overrides)
  return config


@pytest.fixture(scope="module")
def ablation_run(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ablations")
  base = make_config("hybrid,synthetic,test", data_dir)
  rows = ablations.run_all(base, workdir, ["full", "no_affm"])
  ablations.write_table(workdir, rows)
  return workdir, rows


def test_ablation_runner_trains_each_variant_and_writes_the_table(ablation_run):
  workdir, rows = ablation_run
  assert list(rows) == ["full", "no_affm"]
  table = (workdir / "ablations.md").read_text()
  assert "| full |" in table and "| no_affm |" in table
  for variant in rows:
    run = workdir / variant
    assert (run / "checkpoints" / "4").is_dir()
    saved = json.loads((run / "eval" / "metrics.json").read_text())
    assert saved["clip"]["roc_auc"] == pytest.approx(rows[variant]["clip_auc"])
    assert (run / "eval" / "frame_scores.csv").exists() and (run / "eval" / "clip_scores.csv").exists()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "train/loss" in x] == [2, 4]
  # The two variants differ in the fusion module only: the AFFM's parameters, and the
  # width of what reads the fused features (concatenation doubles it); everything else
  # has the same parameters of the same shapes.
  mesh = sharding.make_mesh(jax.devices()[:1])
  params = {
    v: flax.traverse_util.flatten_dict(state_lib.restore(workdir / v / "checkpoints", None, mesh)[1].params)
    for v in rows
  }
  shapes = {v: {"/".join(k): x.shape for k, x in p.items()} for v, p in params.items()}
  full, concat = shapes["full"], shapes["no_affm"]
  assert sorted(set(full) - set(concat)) == ["affm/w1/bias", "affm/w1/kernel", "affm/w2/bias", "affm/w2/kernel"]
  assert not set(concat) - set(full)
  widened = {k: (full[k], concat[k]) for k in full.keys() & concat.keys() if full[k] != concat[k]}
  assert widened == {
    "head/kernel": ((16, 1), (32, 1)),
    "head_norm/scale": ((16,), (32,)),
    "head_norm/bias": ((16,), (32,)),
  }


def test_restored_classifier_evaluates_identically_on_one_device(ablation_run, data_dir):
  workdir, rows = ablation_run
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:1])
  config, state = state_lib.restore(workdir / "full" / "checkpoints", None, mesh)
  config.data.data_dir = str(data_dir)
  results = classification.evaluate(config, state, mesh)
  assert hybrid_evaluation.headline(results) == pytest.approx(rows["full"], abs=1e-5)


def test_detect_scores_a_video_with_the_hybrid_model(ablation_run, tmp_path):
  workdir, _ = ablation_run
  config, state = state_lib.restore(
    workdir / "full" / "checkpoints",
    None,
    jax.make_mesh((1,), ("data",), devices=jax.devices()[:1], axis_types=(jax.sharding.AxisType.Auto,)),
  )
  video = synthetic.generate_video(1, num_frames=21, anomalies=("fast_mover",))
  folder = tmp_path / "frames"
  folder.mkdir()
  from PIL import Image  # noqa: PLC0415

  for i, frame in enumerate(video.frames):
    Image.fromarray(frame[..., 0]).save(folder / f"{i:04d}.png")
  result = Detector(config, state).score(folder, batch_size=2)
  frames, probs = result.frames, result.scores
  np.testing.assert_array_equal(frames, np.arange(21))  # 2 full windows of 8 + a padded one
  assert np.all((probs >= 0) & (probs <= 1))
  # Scores of a window do not depend on the batch it was computed in.
  probs1 = Detector(config, state).score(folder, batch_size=1).scores
  np.testing.assert_allclose(probs1, probs, atol=1e-5)


@pytest.mark.parametrize("variant", ["convlstm,synthetic,test", "effnet_hog,synthetic,test"])
def test_baselines_train_and_evaluate(variant, data_dir, tmp_path):
  config = make_config(variant, data_dir)
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["clip"]["count"] == 8 * 15  # 8 test videos of 120 frames in windows of 8
  assert 0.0 <= results["clip"]["roc_auc"] <= 1.0
  assert (tmp_path / "run" / "eval" / "metrics.json").exists()


def test_hybrid_trains_and_evaluates_on_the_dcsass_fixture(tmp_path):
  """The DCSASS path end to end (video-level split, one builder video per clip) on the
  format-exact miniature fixture of tfds_builders/dcsass/dummy_data/official."""
  config = make_config(
    "hybrid,dcsass,test",
    tmp_path / "tfds",
    **{
      "data.manual_dir": str(
        pathlib.Path(__file__).parents[2] / "tfds_builders" / "dcsass" / "dummy_data" / "official"
      ),
      "data.clip_frames": 4,
      "data.image_size": (24, 32),
    },
  )
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  # Test split of the fixture's default config: 4 clips of 4-6 frames from 2 source
  # videos, all at least 4 frames long, none dropped.
  split = hybrid_inputs.open_split(config, train=False)
  assert results["clip"]["count"] == len(split.videos) == 4
  assert results["clip"]["anomalous"] == sum(v["label"] for v in split.videos)
  assert results["frame"]["count"] == 4 * 4


def test_pretrained_backbone_weights_are_loaded_into_the_training_state(tmp_path):
  """``model.pretrained``: a Keras .h5 of the backbone (written here from other weights)
  replaces the freshly initialised backbone and nothing else."""
  pytest.importorskip("h5py")
  from vad_jax.hybrid import keras_weights  # noqa: PLC0415

  config = classifier.get_config("hybrid,synthetic,test")
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:1])
  model = build_model(config)
  state = state_lib.initial_state(classification, model, config, state_lib.make_optimizer(config, 1), mesh)
  source = jax.tree.map(lambda x: np.asarray(x) + 1.0, {"params": state.params, "batch_stats": state.batch_stats})
  keras_weights.save_keras_h5(tmp_path / "backbone.h5", source, subtree=("backbone",))
  config.model.pretrained = str(tmp_path / "backbone.h5")
  loaded = classification.load_pretrained(state, config)
  for new, old, want in zip(
    jax.tree.leaves(loaded.params["backbone"]),
    jax.tree.leaves(state.params["backbone"]),
    jax.tree.leaves(source["params"]["backbone"]),
  ):
    np.testing.assert_allclose(new, want)
    assert not np.allclose(new, old)
  for name in ("head", "affm"):
    for new, old in zip(jax.tree.leaves(loaded.params[name]), jax.tree.leaves(state.params[name])):
      np.testing.assert_array_equal(new, old)


def test_checkpoint_written_before_the_redesign_restores_and_evaluates_identically(data_dir, tmp_path):
  """``tests/data/legacy_checkpoints/hybrid``: 2 steps of ``hybrid,synthetic,test`` saved
  by the code before the task/package redesign (commit cea6758), with its evaluation."""
  legacy = pathlib.Path(__file__).parents[1] / "fixtures" / "legacy_checkpoints" / "hybrid"
  shutil.copytree(legacy, tmp_path / "checkpoints", ignore=shutil.ignore_patterns("results.json"))
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:1])
  config, state = state_lib.restore(tmp_path / "checkpoints", None, mesh)
  config.data.data_dir = str(data_dir)
  results = classification.evaluate(config, state, mesh)
  expected = json.loads((legacy / "results.json").read_text())
  assert hybrid_evaluation.headline(results) == pytest.approx(hybrid_evaluation.headline(expected), abs=1e-6)
  assert results["frame"]["confusion_matrix"] == expected["frame"]["confusion_matrix"]


def test_interrupted_classifier_run_resumes_with_the_identical_loss_curve(ablation_run, data_dir, tmp_path):
  """The same config as the ablation runner's ``full`` variant, killed after step 2
  (its checkpoint lost) and resumed: same losses at every logged step, same metrics."""
  workdir, rows = ablation_run
  config = make_config("hybrid,synthetic,test", data_dir)
  assert loop.train_and_evaluate(config, str(tmp_path), stop_after_steps=3) == {}
  shutil.rmtree(tmp_path / "checkpoints" / "3")  # killed while step 3 was being saved
  results = loop.train_and_evaluate(config, str(tmp_path))

  def curve(run):
    rows_ = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows_ if "train/loss" in r}

  reference, resumed = curve(workdir / "full"), curve(tmp_path)
  assert set(reference) <= set(resumed)
  for step, loss in reference.items():
    assert resumed[step] == pytest.approx(loss, rel=1e-5), step
  assert hybrid_evaluation.headline(results) == pytest.approx(rows["full"], abs=1e-5)
