"""The training state and everything that creates or restores one.

Used by the training loop, evaluation, detection and the benchmark alike, so that a
state is built one way: the task's model is initialised from the task's example batch
under ``jax.jit`` with replicated output shardings (shapes first, with
``jax.eval_shape``), wrapped in ``TrainState`` with the configured optimizer; a
checkpoint restores into the template's shapes and shardings (``abstract_state``, nothing
initialised) on the current mesh, whatever mesh wrote it.
"""

import pathlib
from typing import Any, Optional

import flax
import jax
import ml_collections
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import Mesh

from vad_jax import checkpointing, tasks
from vad_jax import sharding as sharding_lib

Array = Any


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, BatchNorm statistics and memory items.

  Models without BatchNorm or memory keep empty collections; the checkpointed tree
  (``checkpointing.STATE_FIELDS``) is the same for every task.
  """

  batch_stats: Any = None
  memory: Any = None

  @property
  def variables(self) -> dict[str, Any]:
    """The collections ``model.apply`` takes."""
    return {"params": self.params, "batch_stats": self.batch_stats, "memory": self.memory}


def learning_rate(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """The learning rate by update count: cosine-annealed from ``optimizer.learning_rate``."""
  return optax.cosine_decay_schedule(config.optimizer.learning_rate, decay_steps=max(total_steps, 1))


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam (rho_1, rho_2 from the config) with the ``learning_rate`` schedule."""
  opt = config.optimizer
  return optax.adam(learning_rate(config, total_steps), b1=opt.b1, b2=opt.b2)


def create(model: flax.linen.Module, variables: dict[str, Any], tx: optax.GradientTransformation) -> TrainState:
  """A step-0 state from initialised ``variables``."""
  return TrainState.create(
    apply_fn=model.apply,
    params=variables["params"],
    tx=tx,
    batch_stats=variables.get("batch_stats", {}),
    memory=variables.get("memory", {}),
  )


def _initializer(
  task: tasks.Trainable, model: flax.linen.Module, config: ml_collections.ConfigDict, tx: optax.GradientTransformation
):
  """``rng -> state``: the task's model initialised on the task's example batch."""
  batch, _ = task.example_batch(config, 1)

  def init(rng):
    return create(model, task.init_variables(model, config, rng, batch), tx)

  return init


def initial_state(
  task: tasks.Trainable,
  model: flax.linen.Module,
  config: ml_collections.ConfigDict,
  tx: optax.GradientTransformation,
  mesh: Mesh,
) -> TrainState:
  """A freshly initialised state replicated over ``mesh`` (each leaf's ``sharding``)."""
  init = _initializer(task, model, config, tx)
  return jax.jit(init, out_shardings=sharding_lib.replicated(mesh))(jax.random.key(config.seed))


def abstract_state(
  task: tasks.Trainable,
  model: flax.linen.Module,
  config: ml_collections.ConfigDict,
  tx: optax.GradientTransformation,
  mesh: Mesh,
) -> TrainState:
  """What ``initial_state`` returns, as shapes, dtypes and replicated shardings only: a
  template to restore a checkpoint into, without compiling or running the initialiser."""
  abstract = jax.eval_shape(_initializer(task, model, config, tx), jax.random.key(config.seed))
  replicated = sharding_lib.replicated(mesh)
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated), abstract)


def restore(
  checkpoint_dir: str | pathlib.Path, step: Optional[int], mesh: Mesh
) -> tuple[ml_collections.ConfigDict, TrainState]:
  """``(config, state)`` of a run's checkpoint, the state placed on ``mesh``; the config
  is the one saved with the checkpoint.

  ``step=None`` takes the newest checkpoint that restores: an unreadable newer one is
  reported (a warning naming it) and skipped. A given ``step`` must restore.
  """
  checkpointer = checkpointing.Checkpointer(checkpoint_dir, create=False)
  try:
    steps = [step] if step is not None else sorted(checkpointer.all_steps(), reverse=True)
    if not steps:
      raise checkpointing.CheckpointError(f"no checkpoint found in {checkpointer.directory}")
    for candidate in steps:
      try:
        config = ml_collections.ConfigDict(checkpointer.saved_config(candidate))
        task = tasks.for_config(config)
        model = task.build_model(config)
        template = abstract_state(task, model, config, make_optimizer(config, 1), mesh)
        return config, checkpointer.restore(template, step=candidate)
      except checkpointing.CheckpointError as error:
        if step is not None or candidate == steps[-1]:
          raise
        message = f"checkpoint step {candidate} in {checkpointer.directory} is unreadable ({error})"
        logging.warning("%s; falling back to an older one", message)
        print(f"warning: {message}; falling back to an older checkpoint", flush=True)
    raise AssertionError("unreachable")
  finally:
    checkpointer.close()


def parse_checkpoint_path(path: str | pathlib.Path) -> tuple[pathlib.Path, Optional[int], pathlib.Path]:
  """``(checkpoint directory, step or None, workdir)`` from a step directory
  (``run/checkpoints/300``) or a training workdir (``run``: its latest step)."""
  path = pathlib.Path(path).absolute()
  if path.name.isdigit():
    return path.parent, int(path.name), path.parent.parent
  return path / "checkpoints", None, path
