"""The trained prediction network detects the synthetic set's anomalies; controls do not.

One network (32x32 frames, widths 8-16-32, 250 steps of Adam 1e-3, the demo's
discretization weights, seed 0) trained on the synthetic walkway and scored on its 6
test videos with the literature's protocol (fused micro AUC), against two controls that
need no labels:

* the same network untrained (its initialisation, the same seed);
* the trained network given its input frames in reversed time order (the target frame
  kept): what it learnt about the direction of motion is then wrong.

Measured with seeds 0 / 1 / 2 on this code (one XLA device, 2 shared cores):

| | seed 0 | seed 1 | seed 2 |
|---|---|---|---|
| trained | 0.905 | 0.887 | 0.922 |
| inputs reversed in time | 0.849 | 0.817 | 0.795 |
| untrained | 0.526 | 0.807 | 0.681 |

An untrained network already separates this set's anomalies somewhat (fast objects are
badly predicted by any predictor), and so do reversed inputs: much of this set's signal
is the size of the motion, not its direction. A network trained on clips shuffled in
time was also tried as a control and was no control: at 120 steps it scored 0.870
against the trained network's 0.862. The assertions hold with room on every seed above:
the trained network reaches ``THRESHOLD``; reversing time costs it at least
``REVERSAL_MARGIN``; it beats its own initialisation by ``MARGIN`` (seed 0, whose
initial values are the same on every machine). Everything runs in one process with one
XLA device (faster on 2 cores than the suite's 8 virtual devices).
"""

import json
import os
import subprocess
import sys

THRESHOLD = 0.85
MARGIN = 0.25
REVERSAL_MARGIN = 0.03

_RUNS = """
import json, sys
import jax, jax.numpy as jnp
from vad_jax import config_flags, loop, sharding
from vad_jax import state as state_lib
from vad_jax.data import input_pipeline
from vad_jax.dual_stream import evaluation, steps
from vad_jax.dual_stream import task as dual_stream

data_dir, workdir = sys.argv[1], sys.argv[2]
config = config_flags.load("synthetic:test")
config.data.data_dir = data_dir
config.data.image_size = (32, 32)
config.model.widths = (8, 16, 32)
config.optimizer.learning_rate = 1e-3
config.loss.alpha = config.loss.beta = 0.01
config.num_train_steps = config.log_every_steps = config.checkpoint_every_steps = 250
config.eval_plots = False
auc = {"trained": loop.train_and_evaluate(config, workdir)["fused_micro_auc"]}

mesh = sharding.make_mesh()
_, state = state_lib.restore(workdir + "/checkpoints", None, mesh)
split = input_pipeline.open_split(config.data, config.data.eval_split)
statistics = steps.model_statistics(config, state)
reverse = lambda clips: jnp.concatenate([clips[:, -2::-1], clips[:, -1:]], axis=1)  # inputs reversed, target kept
arrays = evaluation.frame_statistics(config, mesh, split, lambda clips: statistics(reverse(clips)))
videos = evaluation.per_video_scores(arrays, [v["name"] for v in split.videos], config.score.lam)
auc["reversed"] = evaluation.frame_level_metrics(videos)["fused_micro_auc"]

model = dual_stream.build_model(config)
initial = state_lib.initial_state(dual_stream, model, config, state_lib.make_optimizer(config, 1), mesh)
auc["untrained"] = dual_stream.evaluate(config, initial, mesh)["fused_micro_auc"]
print("AUC", json.dumps(auc))
"""


def test_trained_network_detects_synthetic_anomalies_above_reversed_time_and_untrained(data_dir, tmp_path):
  env = dict(os.environ)
  env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
    "--xla_force_host_platform_device_count=8", "--xla_force_host_platform_device_count=1"
  )
  result = subprocess.run(
    [sys.executable, "-c", _RUNS, str(data_dir), str(tmp_path / "run")],
    capture_output=True,
    text=True,
    timeout=900,
    env=env,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("AUC ")]
  auc = json.loads(line[4:])
  print(auc)
  assert auc["trained"] >= THRESHOLD, auc
  assert auc["trained"] - REVERSAL_MARGIN >= auc["reversed"], auc
  assert auc["trained"] - MARGIN >= auc["untrained"], auc
