"""Orbax checkpoints of the training state, the data-iterator state and the config.

One ``CheckpointManager`` per workdir (``<workdir>/checkpoints``) with three items:
``state`` (params, optimizer state, BatchNorm statistics, memory items, step;
``StandardSave``), ``data`` (the grain iterator's state, one JSON file per process, via
``grain.checkpoint``) and ``config`` (JSON).
Keeps the latest ``max_to_keep`` checkpoints plus the best one by a validation metric
when one is given. Saves are asynchronous; ``close()`` waits for them.

Restoring targets an abstract, sharded copy of the state built for the *current* mesh, so
a checkpoint written on 8 devices restores on 1 and the reverse. ``restore_latest``
compares the saved config with the current one first (a different model is an error
naming the fields) and falls back from an unreadable newest checkpoint to the newest
intact one, saying so.
"""

import json
import pathlib
import shutil
from collections.abc import Callable, Mapping
from typing import Any, Optional

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers

from vad_jax import workdir as workdir_lib

STATE_FIELDS = ("step", "params", "opt_state", "batch_stats", "memory")


class CheckpointError(RuntimeError):
  """A checkpoint is missing, unreadable or does not fit the model."""


class ConfigMismatchError(CheckpointError):
  """The checkpoints were written for another model than the current config's."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"model.widths": ..., ...}`` of a nested config dict (lists as tuples)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = tuple(value) if isinstance(value, list) else value
  return flat


DUAL_STREAM = ("dual_stream",)
CLASSIFIERS = ("hybrid", "convlstm", "effnet_hog")
# Fields added to the configs after runs were saved, per ``model.name``, with the value
# that reproduces such a run: the one place that knows the defaults of old saved
# configs. A restored config gets them (``with_added_fields``), so the code reads every
# field directly, and a saved config without one is no different from one holding it.
ADDED_FIELDS = {
  "model.conv_impl": dict.fromkeys(DUAL_STREAM, "auto"),
  "calibration.videos": dict.fromkeys(DUAL_STREAM, ""),
  "calibration.false_alarm_rate": dict.fromkeys(DUAL_STREAM, 0.01),
  # Extra figures only (the frame-level ones are unchanged): on for old runs too.
  "eval_pixel_metrics": dict.fromkeys(DUAL_STREAM, True),
  "model.temporal_input": {"hybrid": "frames", "convlstm": "frames"},
  "model.pooling": {"hybrid": "mean", "convlstm": "flatten"},
  "model.temporal_norm": {"hybrid": "none", "convlstm": "none"},
  "loss.class_weights": {"convlstm": "none"},  # only the ConvLSTM's loss lacked it: unweighted
  "loss.shuffle_labels": dict.fromkeys(CLASSIFIERS, False),
  "boxes.opening": {"hybrid": 1},
  "boxes.dilation": {"hybrid": 2},
  "data.train_videos": dict.fromkeys(CLASSIFIERS, ""),
  "data.eval_videos": dict.fromkeys(CLASSIFIERS, ""),
  "data.fold": dict.fromkeys(CLASSIFIERS, ""),
  "data.fold_training": dict.fromkeys(CLASSIFIERS, "all"),
  "data.augment.flip": dict.fromkeys(CLASSIFIERS, False),
  "data.augment.max_shift": dict.fromkeys(CLASSIFIERS, 0.0),
  "prediction_scores": dict.fromkeys(CLASSIFIERS, ""),
}


def _added(flat: Mapping[str, Any]) -> dict[str, Any]:
  """The ``ADDED_FIELDS`` a flattened saved config lacks, with their values for its model."""
  name = flat.get("model.name")
  return {key: values[name] for key, values in ADDED_FIELDS.items() if key not in flat and name in values}


def with_added_fields(saved: Mapping[str, Any]) -> dict[str, Any]:
  """A saved config (nested dict) with the fields added since it was saved
  (``ADDED_FIELDS``), nested in their sections."""
  out = json.loads(json.dumps(saved))  # a deep copy of plain JSON values
  for key, value in _added(flatten(saved)).items():
    *sections, leaf = key.split(".")
    node = out
    for section in sections:
      node = node.setdefault(section, {})
    node[leaf] = value
  return out


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """``(field, saved value, current value)`` for every field that differs (a field of
  ``ADDED_FIELDS`` absent from ``saved`` differs only from another value)."""
  a, b = flatten(saved), flatten(current)
  a.update({k: v for k, v in _added(a).items() if k in b})
  missing = object()
  return [
    (k, a.get(k, "(absent)"), b.get(k, "(absent)"))
    for k in sorted(set(a) | set(b))
    if a.get(k, missing) != b.get(k, missing)
  ]


def _state_tree(state) -> dict[str, Any]:
  return {name: getattr(state, name) for name in STATE_FIELDS}


class Checkpointer:
  """Saves and restores training runs in ``directory``."""

  def __init__(
    self,
    directory: str | pathlib.Path,
    max_to_keep: int = 3,
    best_metric: Optional[str] = None,
    best_mode: str = "max",
    create: bool = True,
  ):
    self.directory = pathlib.Path(directory).absolute()
    if not create and not self.directory.is_dir():
      raise CheckpointError(f"no checkpoint directory at {self.directory}")
    policies = [checkpoint_managers.LatestN(n=max_to_keep)]
    best_fn = None
    if best_metric:
      if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
      best_fn = lambda metrics: float(metrics[best_metric])  # noqa: E731
      policies.append(
        checkpoint_managers.BestN(
          get_metric_fn=best_fn, reverse=best_mode == "min", n=1, keep_checkpoints_without_metrics=False
        )
      )
    self.best_metric = best_metric
    options = ocp.CheckpointManagerOptions(
      create=create,
      enable_async_checkpointing=True,
      best_fn=best_fn,
      best_mode=best_mode,
      preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
    )
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data", "config"))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def best_step(self) -> Optional[int]:
    """Step of the best checkpoint by the configured metric (None without one)."""
    return self.manager.best_step() if self.best_metric else None

  def save(
    self,
    step: int,
    state,
    data_iterator: Optional[grain.DatasetIterator],
    config: ml_collections.ConfigDict,
    metrics: Optional[dict[str, float]] = None,
  ) -> None:
    items = {"state": ocp.args.StandardSave(_state_tree(state)), "config": ocp.args.JsonSave(config.to_dict())}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics)

  def restore(self, state_template, step: Optional[int] = None, data_iterator: Optional[grain.DatasetIterator] = None):
    """Restores the state at ``step`` (latest by default).

    ``state_template`` is a state (or ``jax.eval_shape`` of one) whose leaves carry the
    shardings wanted now; only shapes, dtypes and shardings are used. ``data_iterator``,
    when given, is moved to the saved position (it continues with the next batch).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint found in {self.directory}")
    if step not in self.all_steps():
      raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; available: {self.all_steps()}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state_tree(state_template))
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:  # orbax raises many types; name the checkpoint in one
      raise CheckpointError(
        f"could not restore checkpoint step {step} from {self.directory / str(step)}: {type(error).__name__}: {error}"
      ) from error
    return state_template.replace(**restored["state"])

  def saved_config(self, step: int) -> dict[str, Any]:
    """The config saved with checkpoint ``step`` (as a dict), with the fields added to
    the configs since (``with_added_fields``)."""
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    except Exception as error:
      raise CheckpointError(
        f"could not read the config of checkpoint step {step} in {self.directory}: {type(error).__name__}: {error}"
      ) from error
    return with_added_fields(dict(restored["config"]))

  def restore_latest(
    self,
    state_template,
    data_iterator: Optional[grain.DatasetIterator] = None,
    check_config: Optional[Callable[[dict[str, Any]], None]] = None,
    set_aside: bool = False,
  ):
    """``(state, step)`` of the newest checkpoint that restores.

    ``check_config`` sees each candidate's saved config first and raises to refuse it
    (``ConfigMismatchError`` is not a reason to fall back: it is raised at once). An
    unreadable checkpoint is reported (a warning naming it and the error) and the next
    older one is tried; with ``set_aside`` the unreadable one is renamed
    ``unreadable_<step>`` so that training can write that step again.
    """
    steps = sorted(self.all_steps(), reverse=True)
    if not steps:
      raise CheckpointError(f"no checkpoint found in {self.directory}")
    failures = []
    for step in steps:
      try:
        if check_config is not None:
          check_config(self.saved_config(step))
        return self.restore(state_template, step=step, data_iterator=data_iterator), step
      except ConfigMismatchError:
        raise
      except CheckpointError as error:
        failures.append(f"step {step}: {error}")
        message = f"checkpoint step {step} in {self.directory} is unreadable ({error})"
        if set_aside:
          aside = self.directory / f"unreadable_{step}"
          shutil.rmtree(aside, ignore_errors=True)
          (self.directory / str(step)).rename(aside)
          self.manager.reload()
          message += f"; moved to {aside.name}"
        older = [s for s in steps if s < step]
        logging.warning("%s; %s", message, f"falling back to step {older[0]}" if older else "no older checkpoint")
        print(f"warning: {message}" + (f"; falling back to step {older[0]}" if older else ""), flush=True)
    raise CheckpointError(f"no checkpoint in {self.directory} could be restored: " + "; ".join(failures))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


CALIBRATION_FILE = "calibration.json"


def write_calibration(directory: str | pathlib.Path, step: int, calibration: Mapping[str, Any]) -> pathlib.Path:
  """Saves a calibration beside checkpoint ``step`` (written whole, then renamed), so it
  goes wherever that checkpoint goes."""
  path = pathlib.Path(directory) / str(step) / CALIBRATION_FILE
  workdir_lib.write_text_atomic(path, json.dumps(calibration, indent=1) + "\n")
  return path


def read_calibration(
  directory: str | pathlib.Path, step: int, check: Optional[Callable[[Any, pathlib.Path], None]] = None
) -> Optional[dict[str, Any]]:
  """The calibration saved beside checkpoint ``step``, or None. ``check(calibration,
  path)``: the task's check of its fields (``ValueError`` naming the file and field)."""
  path = pathlib.Path(directory) / str(step) / CALIBRATION_FILE
  if not path.exists():
    return None
  try:
    calibration = json.loads(path.read_text())
  except ValueError as error:
    raise CheckpointError(f"unreadable calibration {path}: {error}") from error
  if check is not None:
    check(calibration, path)
  return calibration


def read_config(directory: str | pathlib.Path, step: Optional[int] = None) -> ml_collections.ConfigDict:
  """The config saved with a checkpoint (the latest by default)."""
  checkpointer = Checkpointer(directory, create=False)
  step = checkpointer.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f"no checkpoint found in {pathlib.Path(directory).absolute()}")
  try:
    restored = checkpointer.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  except Exception as error:
    raise CheckpointError(f"could not read the config of checkpoint step {step} in {directory}: {error}") from error
  finally:
    checkpointer.close()
  return ml_collections.ConfigDict(restored["config"])
