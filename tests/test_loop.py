"""The training loop knows no task: a linear-regression task of about 20 lines, defined
here with the training part of the task interface alone (``tasks.Trainable``), trains
through ``loop.train_and_evaluate``, checkpoints, is interrupted, resumes identically and
is evaluated; a finished run is left as it is unless asked to evaluate again."""

import collections
import json
import shutil
import types

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from vad_jax import loop, metric_writers, tasks
from vad_jax import state as state_lib

TRUE_WEIGHTS = np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)


def _example(i):
  x = np.random.default_rng(int(i)).normal(size=4).astype(np.float32)
  return {"x": x, "y": x @ TRUE_WEIGHTS}


def _train_iterator(config, mesh):
  del mesh
  ds = grain.MapDataset.range(64).shuffle(seed=config.seed).repeat().map(_example)
  return iter(ds.batch(config.batch_size).to_iter_dataset()), 64


def _train_step(state, batch, *, model, config):
  del config
  loss_fn = lambda p: jnp.mean((model.apply({"params": p}, batch["x"]) - batch["y"]) ** 2)  # noqa: E731
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), {"loss": loss}


def _evaluate(config, state, mesh, split_name=None, eval_dir=None):
  del mesh, split_name
  batch = jax.tree.map(lambda *x: np.stack(x), *[_example(1000 + i) for i in range(32)])
  pred = fake_task.build_model(config).apply({"params": state.params}, batch["x"])
  results = {"mse": float(jnp.mean((pred - batch["y"]) ** 2))}
  if eval_dir is not None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(results))
  return results


fake_task = types.SimpleNamespace(
  prepare=lambda config: None,
  check_config=lambda config: None,
  metrics=lambda config: {"mse": "min"},
  build_model=lambda config: nn.Dense(1, use_bias=False),
  example_batch=lambda config, b: ({"x": np.zeros((b, 4), np.float32), "y": np.zeros((b, 1), np.float32)}, b),
  init_variables=lambda model, config, rng, batch: model.init(rng, batch["x"]),
  train_iterator=_train_iterator,
  train_step=_train_step,
  evaluate=_evaluate,
  scalar_metrics=lambda results: results,
  summary=lambda results: f"mse {results['mse']:.4f}",
)


def protocol_functions(protocol) -> set[str]:
  return {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}


def test_the_fake_task_implements_the_training_part_only():
  assert set(vars(fake_task)) == protocol_functions(tasks.Trainable)
  assert not set(vars(fake_task)) & (protocol_functions(tasks.StudyHooks) | {"model_inputs", "video_scorer"})


def fake_config() -> ConfigDict:
  return ConfigDict(
    {
      "model": {"name": "fake"},
      "optimizer": {"learning_rate": 0.5, "b1": 0.9, "b2": 0.999},
      "seed": 0,
      "batch_size": 8,
      "num_train_steps": 16,
      "num_epochs": 0,
      "log_every_steps": 2,
      "checkpoint_every_steps": 4,
      "max_checkpoints_to_keep": 2,
      "best_metric": "",
      "best_metric_split": "",
      "eval_at_end": True,
    }
  )


@pytest.fixture(autouse=True)
def registered(monkeypatch):
  monkeypatch.setitem(tasks.TASKS, "fake", fake_task)


def losses(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


def tensorboard_points(workdir) -> collections.Counter:
  """How often each ``(tag, step)`` is in the TensorBoard files of ``workdir``."""
  events = metric_writers.read_events(workdir / "tensorboard")
  return collections.Counter((value.tag, event.step) for event in events for value in event.summary.value)


def test_a_task_defined_outside_the_package_trains_resumes_and_evaluates(tmp_path):
  whole = tmp_path / "whole"
  results = loop.train_and_evaluate(fake_config(), str(whole))
  assert results["mse"] < 0.5 * _evaluate(fake_config(), _untrained_state(), None)["mse"]
  assert json.loads((whole / "eval" / "metrics.json").read_text()) == results
  assert sorted(int(p.name) for p in (whole / "checkpoints").iterdir() if p.name.isdigit()) == [12, 16]

  cut = tmp_path / "cut"
  assert loop.train_and_evaluate(fake_config(), str(cut), stop_after_steps=6) == {}
  shutil.rmtree(cut / "checkpoints" / "6", ignore_errors=True)  # killed before step 6 was saved
  resumed = loop.train_and_evaluate(fake_config(), str(cut))
  assert losses(cut) == losses(whole)  # identical curve, nothing lost or logged twice
  assert resumed == results
  assert tensorboard_points(cut) == tensorboard_points(whole) == {k: 1 for k in tensorboard_points(whole)}


def test_a_finished_run_is_not_evaluated_again_unless_asked(tmp_path, monkeypatch, capsys):
  results = loop.train_and_evaluate(fake_config(), str(tmp_path))
  points = tensorboard_points(tmp_path)
  evaluations = []
  monkeypatch.setattr(
    fake_task, "evaluate", lambda *args, **kwargs: evaluations.append(1) or _evaluate(*args, **kwargs)
  )
  capsys.readouterr()
  assert loop.train_and_evaluate(fake_config(), str(tmp_path)) == results  # the saved evaluation
  assert evaluations == []
  assert capsys.readouterr().out == (
    f"{tmp_path} is finished: trained to step 16, evaluated (eval/metrics.json); nothing to do. "
    f"To evaluate it again: --reevaluate, or vad-jax evaluate --workdir {tmp_path}\n"
  )
  assert loop.train_and_evaluate(fake_config(), str(tmp_path), reevaluate=True) == results
  assert evaluations == [1]
  (tmp_path / "eval" / "metrics.json").write_text('{"mse": 9.0}')  # another evaluation wrote there since
  assert loop.train_and_evaluate(fake_config(), str(tmp_path)) == results
  assert evaluations == [1, 1]
  assert tensorboard_points(tmp_path) == points == {k: 1 for k in points}  # each point once
  assert [r["step"] for r in metric_writers.read_records(tmp_path / "metrics.jsonl") if "eval/mse" in r] == [16]


def _untrained_state():
  model = fake_task.build_model(None)
  batch, _ = fake_task.example_batch(None, 1)
  return state_lib.create(model, model.init(jax.random.key(0), batch["x"]), optax.sgd(0.0))


def test_the_first_steps_show_before_the_first_logging_step(tmp_path, capsys):
  config = fake_config()
  config.log_every_steps = config.checkpoint_every_steps = 8
  loop.train_and_evaluate(config, str(tmp_path), stop_after_steps=8)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "training steps 1-8 of 16 (batch 8), compiling the training step first"
  assert lines[1] == "precision: float32 (model.dtype)"  # the compute precision and why
  assert lines[2].startswith("step 1/16  loss ") and lines[2].endswith("s (compilation included)")
  assert lines[3].startswith("step 3/16  loss ") and " s/step after the first: about " in lines[3]
  assert lines[4].startswith("step 8/16  loss ")  # the first logging step
