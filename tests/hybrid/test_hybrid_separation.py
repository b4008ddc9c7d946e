"""HybridModel-1 finds anomalies in synthetic videos it never saw; controls do not.

HybridModel-1 at the CPU size with the revised temporal branch
(``configs/classifier.py:hybrid,synthetic,cpu,revised``: frame differences, a BatchNorm of
the ConvLSTM's input, max pooling; 1,000 steps) trained on
``synthetic_surveillance/supervised_large`` (64 training videos with anomalies; on the 16
of ``supervised`` it memorises them, docs/hybrid.md) and scored on the 32 held-out test
videos (3,840 frames), against two controls:

* the same model trained as long with its labels permuted among the clips of each batch
  (``loss.shuffle_labels``: labels that carry no information, the class balance kept);
* the same model untrained.

A model that cannot learn from its labels (a broken loss, labels not reaching the step,
frames misaligned with their labels), or one that only memorises its training videos,
cannot pass. The trained model must score above ``THRESHOLD`` on the held-out videos and
each control ``MARGIN`` below it. Each model runs in a process of its own with one XLA
device (faster on 2 cores than the suite's 8 virtual devices). Frame AUCs measured by
these tests on this code (``pytest -s``): see docs/RESULTS.md, "Synthetic: trained,
label-shuffled and untrained models".
"""

import json
import os
import subprocess
import sys

import pytest

from vad_jax.configs import classifier
from vad_jax.data import prepare

VARIANT = "hybrid,synthetic,cpu,revised"
THRESHOLD = 0.80
MARGIN = 0.15

_RUN = """
import json, sys
from vad_jax import loop, sharding
from vad_jax import state as state_lib
from vad_jax.configs import classifier
from vad_jax.hybrid import task

data_dir, workdir, mode = sys.argv[1:4]
config = classifier.get_config(sys.argv[4])
config.data.data_dir = data_dir
config.data.builder_config = "supervised_large"
config.update_from_flattened_dict({"log_every_steps": 500, "checkpoint_every_steps": 1000, "eval_plots": False})
config.loss.shuffle_labels = mode == "shuffled"
assert config.data.eval_split == "test" and config.num_train_steps == 1000
if mode == "untrained":
  mesh = sharding.make_mesh()
  state = state_lib.initial_state(task, task.build_model(config), config, state_lib.make_optimizer(config, 1), mesh)
  results = task.evaluate(config, state, mesh)
else:
  results = loop.train_and_evaluate(config, workdir)
print("FRAME", json.dumps({"auc": results["frame"]["roc_auc"], "count": results["frame"]["count"]}))
"""


@pytest.fixture(scope="module")
def large_data_dir(tmp_path_factory):
  """A TFDS data directory holding ``synthetic_surveillance/supervised_large`` (8 s to build)."""
  path = tmp_path_factory.mktemp("tfds_supervised_large")
  config = classifier.get_config(VARIANT)
  config.data.data_dir, config.data.builder_config = str(path), "supervised_large"
  prepare.ensure_prepared(config.data)
  return path


def held_out_auc(mode: str, data_dir, workdir) -> float:
  """Frame AUC on the 32 held-out test videos of the model trained as ``mode`` says."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
    "--xla_force_host_platform_device_count=8", "--xla_force_host_platform_device_count=1"
  )
  result = subprocess.run(
    [sys.executable, "-c", _RUN, str(data_dir), str(workdir), mode, VARIANT],
    capture_output=True,
    text=True,
    timeout=900,
    env=env,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("FRAME ")]
  frame = json.loads(line[6:])
  assert frame["count"] == 32 * 120
  print(f"{mode}: frame AUC {frame['auc']:.3f} on the held-out test videos")
  return frame["auc"]


def test_trained_hybrid_detects_anomalies_in_held_out_videos(large_data_dir, tmp_path):
  assert held_out_auc("trained", large_data_dir, tmp_path) > THRESHOLD


def test_hybrid_trained_on_shuffled_labels_does_not(large_data_dir, tmp_path):
  assert held_out_auc("shuffled", large_data_dir, tmp_path) < THRESHOLD - MARGIN


def test_untrained_hybrid_does_not(large_data_dir, tmp_path):
  assert held_out_auc("untrained", large_data_dir, tmp_path) < THRESHOLD - MARGIN
