"""``python -m vad_jax.ensemble``: trained runs evaluated as one detector."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from vad_jax import loop, sharding, tasks
from vad_jax.configs import classifier, synthetic
from vad_jax.hybrid import evaluation as hybrid_evaluation
from vad_jax.studies import ensemble


def read_scores(path) -> list[dict]:
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_checkpoints(data_dir, tmp_path_factory):
  """One tiny dual-stream run whose checkpoints at steps 4 and 6 stand for two members."""
  workdir = tmp_path_factory.mktemp("members")
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.eval_at_end, config.eval_plots = False, False
  config.checkpoint_every_steps, config.max_checkpoints_to_keep = 2, 3
  loop.train_and_evaluate(config, str(workdir))
  return [str(workdir / "checkpoints" / "4"), str(workdir / "checkpoints" / "6")]


def test_the_ensemble_scores_the_mean_of_its_members_statistics(two_checkpoints, tmp_path):
  mesh = sharding.make_mesh()
  members, minutes = ensemble.restore_members(two_checkpoints, mesh)
  ensemble.check_members(members)
  task = tasks.for_config(members[0][1])
  results = task.evaluate_ensemble(members, mesh, eval_dir=tmp_path / "ensemble")
  alone = []
  for i, (name, config, state) in enumerate(members):  # each member evaluated by itself
    alone.append(task.evaluate(config, state, mesh, eval_dir=tmp_path / f"member{i}"))
    assert results["members"][i]["name"] == name
    for key in ("fused_micro_auc", "spatial_macro_auc", "temporal_eer"):
      assert results["members"][i][key] == pytest.approx(alone[i][key], abs=1e-9)
  rows = [read_scores(tmp_path / d / "scores.csv") for d in ("ensemble", "member0", "member1")]
  assert len(rows[0]) == len(rows[1]) == len(rows[2]) > 0
  psnr = np.array([[float(r["psnr"]) for r in table] for table in rows])
  distance = np.array([[float(r["spatial_distance"]) for r in table] for table in rows])
  assert not np.allclose(psnr[1], psnr[2], atol=1e-3)  # two different networks
  np.testing.assert_allclose(psnr[0], psnr[1:].mean(axis=0), rtol=1e-5)
  np.testing.assert_allclose(distance[0], distance[1:].mean(axis=0), rtol=1e-4, atol=1e-6)
  # the first k members: one member alone, then the whole ensemble
  assert [r["members"] for r in results["first"]] == [1, 2]
  assert results["first"][0]["fused_micro_auc"] == pytest.approx(alone[0]["fused_micro_auc"], abs=1e-9)
  assert results["first"][1]["fused_micro_auc"] == pytest.approx(results["fused_micro_auc"], abs=1e-9)
  # training time: from the run's log, up to each member's step; summed over the first k
  assert 0 < minutes[0] < minutes[1]
  ensemble.add_training_minutes(results, minutes)
  assert [m["training_minutes"] for m in results["members"]] == minutes
  assert results["first"][1]["training_minutes"] == pytest.approx(sum(minutes))


def test_members_that_score_other_frames_are_named_before_anything_is_evaluated(two_checkpoints):
  mesh = sharding.make_mesh()
  members, _ = ensemble.restore_members(two_checkpoints, mesh)
  name, config, state = members[1]
  config.data.image_size = (24, 24)
  with pytest.raises(ValueError, match=rf"member {name} has data.image_size=\(24, 24\)"):
    ensemble.check_members([members[0], (name, config, state)])
  with pytest.raises(ValueError, match="at least two runs"):
    ensemble.check_members(members[:1])
  config.data.image_size = members[0][1].data.image_size
  config.seed, config.data.seed = 7, 7  # training settings may differ
  ensemble.check_members([members[0], (name, config, state)])


def test_the_command_writes_the_ensemble_and_refuses_a_missing_run(two_checkpoints, tmp_path):
  command = [sys.executable, "-m", "vad_jax.ensemble", "--output", str(tmp_path / "out")]
  done = subprocess.run([*command, "--workdirs", ",".join(two_checkpoints)], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert "ensemble of 2 (" in done.stdout
  assert sum(line.startswith("member ") for line in done.stdout.splitlines()) == 2
  saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert [m["name"] for m in saved["members"]] == two_checkpoints and saved["first"][1]["training_minutes"] > 0
  assert (tmp_path / "out" / "scores.csv").exists()
  nowhere = str(tmp_path / "nowhere")
  done = subprocess.run([*command, "--workdirs", f"{nowhere},{two_checkpoints[0]}"], capture_output=True, text=True)
  assert done.returncode != 0 and "nowhere" in done.stderr and "Traceback" not in done.stderr


def test_a_classifier_ensemble_averages_the_probabilities(supervised_data_dir, tmp_path):
  config = classifier.get_config("hybrid,synthetic,test")
  config.data.data_dir = str(supervised_data_dir)
  config.eval_at_end, config.eval_plots = False, False
  config.num_train_steps, config.checkpoint_every_steps, config.max_checkpoints_to_keep = 4, 2, 2
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  mesh = sharding.make_mesh()
  members, _ = ensemble.restore_members([tmp_path / "run" / "checkpoints" / s for s in ("2", "4")], mesh)
  ensemble.check_members(members)
  task = tasks.for_config(config)
  results = task.evaluate_ensemble(members, mesh, eval_dir=tmp_path / "ensemble")
  split = hybrid_evaluation.evaluation_split(members[0][1])
  collected = [hybrid_evaluation.collect(c, s, mesh, split) for _, c, s in members]
  mean = {**collected[0], "frame_probs": (collected[0]["frame_probs"] + collected[1]["frame_probs"]) / 2}
  mean["clip_probs"] = (collected[0]["clip_probs"] + collected[1]["clip_probs"]) / 2
  flat = task.scalar_metrics
  expected, second = (
    flat(hybrid_evaluation.report(members[0][1], mean, split)),
    flat(hybrid_evaluation.report(members[1][1], collected[1], split)),
  )
  for key in ("frame_auc", "clip_auc", "frame_accuracy"):
    assert flat(results)[key] == pytest.approx(expected[key], abs=1e-9)
    assert flat(results["members"][1])[key] == pytest.approx(second[key], abs=1e-9)
  assert (tmp_path / "ensemble" / "metrics.json").exists()
