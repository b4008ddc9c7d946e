"""The training loop: ``train_and_evaluate(config, workdir)`` (``vad-jax train`` is a
command line over it, ``vad_jax/commands/train.py``).

The loop knows no task: the configured task (``vad_jax.tasks.for_config``) supplies the
model, the training iterator, the steps and the evaluation; ``vad_jax.state`` builds and
restores the state. ``jax.jit`` (with shardings and donation) is applied once here, to
the task's module-level ``train_step`` with its static settings bound. One mesh with a
``data`` axis spans all devices of all hosts: the state is replicated, batches are
sharded; memory-item updates and BatchNorm statistics reduce over the global batch, so
every device holds the same state.

Metrics stay on the device between logging steps and are fetched in one transfer; a
non-finite loss stops training there, before any later checkpoint is written.
Starting again with the same workdir resumes from its latest checkpoint, with the data
iterator at the exact next batch; a finished run (trained to the end and evaluated) is
left as it is, unless ``reevaluate`` asks for its evaluation again.
"""

import contextlib
import functools
import json
import math
import pathlib
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from vad_jax import checkpointing, metric_writers, precision, tasks
from vad_jax import sharding as sharding_lib
from vad_jax import state as state_lib
from vad_jax import workdir as workdir_lib

# --------------------------------------------------------------------------------------
# The training loop.
# --------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


# Settings a checkpoint's model depends on: resuming with other values is refused.
MODEL_FIELDS = ("model.", "data.image_size", "data.channels", "data.clip_frames", "boxes.max_boxes")
# Model fields that change how the model is computed, not its parameters: a run may resume with another value.
COMPUTE_FIELDS = ("model.conv_impl",)


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Rejects settings that would fail late or lose the trained model, before any work."""
  problems = []
  if config.num_train_steps < 0:
    problems.append(f"num_train_steps must be >= 0 (0: train for num_epochs), got {config.num_train_steps}")
  elif config.num_train_steps == 0 and (config.num_epochs or 0) < 1:
    problems.append(f"num_epochs must be >= 1 when num_train_steps is 0, got {config.num_epochs}")
  for field in ("batch_size", "log_every_steps", "checkpoint_every_steps"):
    if config[field] < 1:
      problems.append(f"{field} must be >= 1, got {config[field]}")
  if config.max_checkpoints_to_keep < 1:
    problems.append(
      f"max_checkpoints_to_keep must be >= 1, got {config.max_checkpoints_to_keep}: no checkpoint of the trained "
      f"model would be kept"
    )
  if config.best_metric_split and not config.best_metric:
    problems.append(f"best_metric_split={config.best_metric_split!r} needs a best_metric")
  if problems:
    raise ValueError("invalid config: " + "; ".join(problems))


def check_best_metric(config: ml_collections.ConfigDict, task: tasks.Trainable) -> str:
  """The best-checkpoint mode (``max``/``min``) of ``config.best_metric``."""
  metrics = task.metrics(config)
  if config.best_metric not in metrics:
    raise ValueError(
      f"best_metric={config.best_metric!r} is not a metric of this model; choose one of {sorted(metrics)}"
    )
  return metrics[config.best_metric]


def check_saved_config(saved: dict[str, Any], current: dict[str, Any], directory: pathlib.Path) -> None:
  """Refuses checkpoints of another model; reports other changed settings."""
  differences = checkpointing.config_differences(saved, current)
  model = [d for d in differences if d[0].startswith(MODEL_FIELDS) and d[0] not in COMPUTE_FIELDS]
  if model:
    raise checkpointing.ConfigMismatchError(
      f"the checkpoints in {directory} belong to another model than the config: "
      + "; ".join(f"{k} is {a!r} there, {b!r} now" for k, a, b in model)
      + ". Use another --workdir, or the saved settings."
    )
  changed = [d for d in differences if not d[0].startswith("data.data_dir")]
  if changed:
    metric_writers.say("resuming with changed settings: " + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed))


def validate(task) -> Any:
  """The task's ``validate`` hook (``best_metric_split = "held_out"``), or an error saying
  the task has none."""
  found = tasks.hook(task, "validate")
  if found is None:
    raise ValueError(
      f"best_metric_split={tasks.HELD_OUT!r} needs a task that validates on held-out training videos; "
      f"{task.__name__} does not"
    )
  return found


def total_train_steps(config: ml_collections.ConfigDict, num_train_clips: int) -> int:
  """``num_train_steps`` if set, else ``num_epochs`` passes over the training clips."""
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(config.num_epochs) * -(-num_train_clips // config.batch_size)


def first_non_finite(history: list[dict[str, Any]], first_step: int) -> Optional[tuple[int, dict]]:
  """``(step, terms)`` of the first host-fetched metrics with a non-finite loss."""
  for offset, terms in enumerate(history):
    if not all(np.isfinite(float(v)) for v in terms.values()):
      return first_step + offset, {k: float(v) for k, v in terms.items()}
  return None


def saved_evaluation(task, workdir: pathlib.Path, step: int) -> Optional[dict[str, Any]]:
  """The results in ``eval/metrics.json`` if they are the end-of-training evaluation of
  ``step`` that ``metrics.jsonl`` recorded (not, say, another split's that ``vad-jax
  evaluate`` wrote there since); ``None`` otherwise."""
  path = workdir / "eval" / "metrics.json"
  logged = [r for r in metric_writers.read_records(workdir / "metrics.jsonl") if r["step"] == step]
  logged = {k[len("eval/") :]: v for r in logged for k, v in r.items() if k.startswith("eval/")}
  if not logged or not path.is_file():
    return None
  try:
    results = json.loads(path.read_text(encoding="utf-8"))
    saved = task.scalar_metrics(results)
  except (ValueError, KeyError, TypeError):
    return None
  same = saved.keys() == logged.keys() and all(
    math.isclose(saved[k], logged[k], rel_tol=1e-9) or (math.isnan(saved[k]) and math.isnan(logged[k])) for k in saved
  )
  return results if same else None


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, stop_after_steps: Optional[int] = None, reevaluate: bool = False
) -> dict[str, Any]:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), then evaluates.

  The config is checked before any work; the workdir is locked while training (a second
  run on it fails at once, naming the first). A finished run (its last checkpoint is
  the last step, and its evaluation of that step is saved) is neither trained nor
  evaluated again: it says so and returns the saved evaluation.

  Args:
    config: see ``configs/default.py``.
    workdir: checkpoints, ``metrics.jsonl``, TensorBoard events and ``eval/``.
    stop_after_steps: leave after this many steps of *this* invocation, once the
      checkpoint of that step is written (time-sliced jobs; tests use it to simulate a
      killed run). ``None`` trains to the end.

    reevaluate: evaluate a finished run again (and calibrate it again, if its config
      holds videos out for that).

  Returns:
    The evaluation metrics (empty when evaluation is off or the run stopped early).
  """
  task = tasks.for_config(config)
  check_training_config(config)
  best_mode = check_best_metric(config, task) if config.best_metric else "max"
  if config.best_metric_split == tasks.HELD_OUT:
    validate(task)
  workdir_path = workdir_lib.check_path(workdir, "workdir")
  if config.get("data") is not None and config.data.get("data_dir"):
    workdir_lib.check_path(config.data.data_dir, "data.data_dir")
  lock = workdir_lib.WorkdirLock(workdir_path) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock:
    return _train_and_evaluate(task, config, workdir_path, stop_after_steps, best_mode, reevaluate)


def _finished(task, config, workdir_path: pathlib.Path, total_steps: int) -> Optional[dict[str, Any]]:
  """The saved evaluation of a finished run (``{}`` when the config evaluates nothing at
  the end), or ``None`` when there is work left. Process 0 decides for all."""
  results = {} if not config.eval_at_end else None
  if jax.process_index() == 0:
    if config.eval_at_end:
      results = saved_evaluation(task, workdir_path, total_steps)
    metric_writers.repair_records(workdir_path / "metrics.jsonl")
  if jax.process_count() > 1:
    if not bool(multihost_utils.broadcast_one_to_all(np.int32(results is not None))):
      return None
    results = results if results is not None else {}  # other processes print nothing
  if results is None:
    return None
  metric_writers.say(
    f"{workdir_path} is finished: trained to step {total_steps}"
    + (", evaluated (eval/metrics.json)" if config.eval_at_end else "")
    + "; nothing to do. To evaluate it again: --reevaluate, or vad-jax evaluate --workdir "
    + str(workdir_path)
  )
  return results


def _train_and_evaluate(
  task, config, workdir_path: pathlib.Path, stop_after_steps: Optional[int], best_mode: str, reevaluate: bool
):
  mesh = sharding_lib.make_mesh()
  task.prepare(config)
  task.check_config(config)
  train_iter, num_clips = task.train_iterator(config, mesh)
  total_steps = total_train_steps(config, num_clips)
  model = task.build_model(config)
  tx = state_lib.make_optimizer(config, total_steps)

  checkpointer = checkpointing.Checkpointer(
    workdir_path / "checkpoints",
    max_to_keep=config.max_checkpoints_to_keep,
    best_metric=config.best_metric or None,
    best_mode=best_mode,
  )
  start_step = 0
  if checkpointer.all_steps():  # resume: restore into shapes, nothing to initialise
    check = functools.partial(check_saved_config, current=config.to_dict(), directory=checkpointer.directory)
    template = state_lib.abstract_state(task, model, config, tx, mesh)
    state, start_step = checkpointer.restore_latest(template, train_iter, check_config=check, set_aside=True)
    if start_step == total_steps and not reevaluate:
      finished = _finished(task, config, workdir_path, total_steps)
      if finished is not None:
        checkpointer.close()
        return finished
    metric_writers.say(f"resumed from {checkpointer.directory / str(start_step)}")
  else:
    state = state_lib.initial_state(task, model, config, tx, mesh)
    load_pretrained = tasks.hook(task, "load_pretrained")
    if load_pretrained is not None:
      state = load_pretrained(state, config)
  state_sharding = jax.tree.map(lambda leaf: leaf.sharding, state)

  step_fn = jax.jit(
    functools.partial(task.train_step, model=model, config=config),
    in_shardings=(state_sharding, sharding_lib.data_sharded(mesh)),
    out_shardings=(state_sharding, sharding_lib.replicated(mesh)),
    donate_argnums=0,
  )
  learning_rate = state_lib.learning_rate(config, total_steps)
  writer = metric_writers.MetricWriter(workdir_path, resume_step=start_step)
  if start_step == 0:
    writer.write_text(0, "config", "```\n" + config.to_json_best_effort(indent=2) + "\n```")
  progress = metric_writers.Progress(total_steps, start_step)
  log_every = max(1, config.log_every_steps)
  ckpt_every = max(log_every, config.checkpoint_every_steps // log_every * log_every)
  last_step = total_steps if stop_after_steps is None else min(total_steps, start_step + stop_after_steps)
  pending, pending_start = [], start_step
  # Lines before the first logging step: the first step (compilation included), then the time per step.
  early = [s for s in (start_step + 1, start_step + 3) if s < (start_step // log_every + 1) * log_every]
  if start_step < last_step:
    metric_writers.say(
      f"training steps {start_step + 1}-{last_step} of {total_steps} (batch {config.batch_size}), "
      f"compiling the training step first"
    )
    metric_writers.say(precision.of_config(config).describe())
  # Several CPU devices: one step in flight at a time (sharding.dispatch_in_order).
  serialize = sharding_lib.serial_dispatch()
  try:
    for step in range(start_step + 1, last_step + 1):
      batch = next(train_iter)
      if serialize and pending:
        jax.block_until_ready(pending[-1])
      state, terms = step_fn(state, batch)
      pending.append(terms)  # stays on the device until the next log step
      if step in early and step != last_step:
        progress.early_step(step, float(jax.device_get(terms["loss"])) if "loss" in terms else float("nan"))
      if step % log_every and step % ckpt_every and step != last_step:
        continue
      history = jax.device_get(pending)
      bad = first_non_finite(history, pending_start + 1)
      if bad is not None:
        kept = checkpointer.latest_step()
        raise NonFiniteLossError(
          f"non-finite loss at step {bad[0]}: {bad[1]}; training stopped, "
          + (
            f"the last good checkpoint (step {kept}) in {checkpointer.directory} is kept"
            if kept is not None
            else "no checkpoint had been written yet"
          )
        )
      pending, pending_start = [], step
      mean_terms = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
      mean_terms["learning_rate"] = float(learning_rate(step - 1))  # the rate of this interval's last update
      mean_terms["steps_per_second"] = progress.rate(step)
      writer.write_scalars(step, mean_terms, prefix="train/")
      progress.update(step, mean_terms)
      if step % ckpt_every == 0 or step == last_step:
        save_metrics = None
        if config.best_metric:
          if config.best_metric_split == tasks.HELD_OUT:
            save_metrics = validate(task)(config, state, mesh)
          else:
            save_metrics = task.scalar_metrics(
              task.evaluate(config, state, mesh, split_name=config.best_metric_split or None, eval_dir=None)
            )
          writer.write_scalars(step, save_metrics, prefix="val/")
        checkpointer.save(step, state, train_iter, config, save_metrics)
        metric_writers.say(f"checkpoint step {step}: {checkpointer.directory / str(step)}")
  finally:
    progress.close()
    checkpointer.close()
    writer.close()

  if last_step < total_steps or not config.eval_at_end:
    return {}
  calibrate = tasks.hook(task, "calibrate")
  calibration = calibrate(config, state, mesh) if calibrate is not None else None
  kwargs = {}
  if calibration is not None:
    kwargs["calibration"] = calibration
    if jax.process_index() == 0:
      path = checkpointing.write_calibration(workdir_path / "checkpoints", total_steps, calibration)
      metric_writers.say(
        f"calibrated on {calibration['frames']} normal frames of {len(calibration['videos'])} held-out videos: {path}"
      )
      summary = tasks.hook(task, "calibration_summary")
      for line in summary(calibration) if summary is not None else ():
        metric_writers.say(line)
  eval_dir = workdir_path / "eval"
  metric_writers.say(f"evaluating the model of step {total_steps}")
  results = task.evaluate(config, state, mesh, eval_dir=eval_dir, **kwargs)
  writer = metric_writers.MetricWriter(workdir_path)
  writer.write_scalars(total_steps, task.scalar_metrics(results), prefix="eval/", replace=True)
  if eval_dir.is_dir():
    writer.write_images(total_steps, sorted(eval_dir.glob("*.png")), prefix="eval/")
  writer.close()
  metric_writers.say(
    f"wrote {workdir_path}: checkpoints/, metrics.jsonl, tensorboard/" + (", eval/" if eval_dir.is_dir() else "")
  )
  return results
