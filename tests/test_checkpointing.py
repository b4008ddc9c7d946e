"""Checkpoint retention: the latest N plus the best by a validation metric."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from vad_jax import checkpointing
from vad_jax import state as state_lib


def tiny_state():
  model = nn.Dense(3)
  params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
  return state_lib.TrainState.create(
    apply_fn=model.apply, params=params, tx=optax.adam(1e-3), batch_stats={}, memory={}
  )


def test_keeps_latest_and_best(tmp_path):
  state, config = tiny_state(), ConfigDict({"a": 1})
  ckpt = checkpointing.Checkpointer(tmp_path, max_to_keep=2, best_metric="auc", best_mode="max")
  aucs = {1: 0.5, 2: 0.9, 3: 0.6, 4: 0.7, 5: 0.55}
  for step, auc in aucs.items():
    ckpt.save(step, state.replace(step=step), None, config, {"auc": auc})
    ckpt.wait()
  assert sorted(ckpt.all_steps()) == [2, 4, 5]  # latest two plus the best (0.9 at step 2)
  assert ckpt.best_step() == 2
  restored = ckpt.restore(tiny_state(), step=2)
  assert int(restored.step) == 2
  jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
  ckpt.close()


def test_min_mode_and_no_metric(tmp_path):
  state, config = tiny_state(), ConfigDict({"a": 1})
  ckpt = checkpointing.Checkpointer(tmp_path / "min", max_to_keep=1, best_metric="loss", best_mode="min")
  for step, loss in {1: 0.3, 2: 0.1, 3: 0.2}.items():
    ckpt.save(step, state, None, config, {"loss": loss})
    ckpt.wait()
  assert sorted(ckpt.all_steps()) == [2, 3] and ckpt.best_step() == 2
  ckpt.close()
  plain = checkpointing.Checkpointer(tmp_path / "plain", max_to_keep=2)
  for step in (1, 2, 3):
    plain.save(step, state, None, config)
    plain.wait()
  assert sorted(plain.all_steps()) == [2, 3] and plain.best_step() is None
  assert checkpointing.read_config(tmp_path / "plain").a == 1
  plain.close()


def test_a_saved_config_gets_the_fields_added_since_for_its_model_only():
  """Old runs' configs lack later fields; restoring fills them with the values that
  reproduce the run (``ADDED_FIELDS``), per model, nested in their sections."""
  old_classifier = {"model": {"name": "convlstm"}, "data": {"name": "dcsass"}, "loss": {"name": "softmax"}}
  filled = checkpointing.with_added_fields(old_classifier)
  assert filled["model"]["pooling"] == "flatten" and filled["loss"]["class_weights"] == "none"
  assert filled["data"]["augment"] == {"flip": False, "max_shift": 0.0} and filled["prediction_scores"] == ""
  assert "conv_impl" not in filled["model"] and "calibration" not in filled  # dual-stream fields stay out
  assert old_classifier == {"model": {"name": "convlstm"}, "data": {"name": "dcsass"}, "loss": {"name": "softmax"}}
  old_dual = checkpointing.with_added_fields({"model": {"name": "dual_stream"}, "data": {}})
  assert old_dual["model"]["conv_impl"] == "auto" and old_dual["calibration"] == {
    "videos": "",
    "false_alarm_rate": 0.01,
  }
  assert "pooling" not in old_dual["model"]
  assert old_dual["eval_pixel_metrics"] is True and "eval_pixel_metrics" not in filled  # extra figures only
  kept = checkpointing.with_added_fields({"model": {"name": "hybrid", "pooling": "max"}})
  assert kept["model"]["pooling"] == "max"  # a saved value is never replaced
