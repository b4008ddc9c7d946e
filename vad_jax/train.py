"""Training: ``python -m vad_jax.train --config configs/<name>.py --workdir DIR``.

``train_step`` and ``eval_step`` are module-level pure functions; static settings are
bound with ``functools.partial`` and ``jax.jit`` (with shardings and donation) is applied
once where the loop is built. One mesh with a ``data`` axis spans all devices of all
hosts: the state is replicated, batches are sharded; memory-item updates and BatchNorm
statistics reduce over the global batch, so every device holds the same state.

Metrics stay on the device between logging steps and are fetched in one transfer; a
non-finite loss stops training there, before any later checkpoint is written.
Starting again with the same workdir resumes from its latest checkpoint, with the data
iterator at the exact next batch.
"""

import functools
import pathlib
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging
from flax.training import train_state
from ml_collections import config_flags

from vad_jax import checkpointing, classification, metric_writers, scoring
from vad_jax import sharding as sharding_lib
from vad_jax.data import indexing, input_pipeline
from vad_jax.data import prepare as data_prep
from vad_jax.losses import dual_stream_loss
from vad_jax.models.build import build_model, is_classifier

Array = Any
MUTABLE = ("batch_stats", "memory")


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, BatchNorm statistics and memory items."""

  batch_stats: Any = None
  memory: Any = None

  @property
  def variables(self) -> dict[str, Any]:
    return {"params": self.params, "batch_stats": self.batch_stats, "memory": self.memory}


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam (rho_1, rho_2 from the config) with cosine-annealed learning rate."""
  opt = config.optimizer
  schedule = optax.cosine_decay_schedule(opt.learning_rate, decay_steps=max(total_steps, 1))
  return optax.adam(schedule, b1=opt.b1, b2=opt.b2)


def create_train_state(model: flax.linen.Module, tx: optax.GradientTransformation, rng: Array,
                       frames: Array) -> TrainState:
  """Initialises a state from example ``frames`` ``[batch, T, h, w, c]`` (shape only matters)."""
  variables = model.init(rng, frames, train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                           batch_stats=variables.get("batch_stats", {}), memory=variables.get("memory", {}))


def train_step(state: TrainState, batch: dict[str, Array], *, model: flax.linen.Module,
               loss_config: ml_collections.ConfigDict) -> tuple[TrainState, dict[str, Array]]:
  """One optimisation step on ``batch["frames"]``; returns the new state and loss terms."""

  def loss_fn(params):
    (_, aux), new_vars = model.apply({**state.variables, "params": params}, batch["frames"],
                                     train=True, mutable=list(MUTABLE))
    loss, terms = dual_stream_loss(aux, loss_config.alpha, loss_config.beta, loss_config.gamma_i,
                                   loss_config.gamma_x)
    return loss, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars["batch_stats"], memory=new_vars["memory"])
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def eval_step(state: TrainState, batch: dict[str, Array], *, model: flax.linen.Module,
              memory_level: int = -1) -> dict[str, Array]:
  """Per-frame score inputs (PSNR of fused and per-stream frames, memory distances)."""
  fused, aux = model.apply(state.variables, batch["frames"], train=False)
  return scoring.frame_statistics(aux, fused, memory_level)


def bind_steps(model, config):
  """The two steps with their static settings bound (not yet jitted)."""
  return (functools.partial(train_step, model=model, loss_config=config.loss),
          functools.partial(eval_step, model=model, memory_level=config.score.memory_level))


# --------------------------------------------------------------------------------------
# The training loop.
# --------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


def total_train_steps(config: ml_collections.ConfigDict, num_train_clips: int) -> int:
  """``num_train_steps`` if set, else ``num_epochs`` passes over the training clips.

  Raises ``ValueError`` when there is no training clip at all (an endless iterator over
  nothing would otherwise never yield).
  """
  if num_train_clips <= 0:
    field = "data.clip_frames" if is_classifier(config) else "model.sequence_length"
    length = config.data.clip_frames if is_classifier(config) else config.model.sequence_length
    raise ValueError(f"the training split has no clip of {field} frames ({length} frames, split "
                     f"{config.data.train_split!r} of {config.data.name})")
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(config.num_epochs) * -(-num_train_clips // config.batch_size)


def first_non_finite(history: list[dict[str, Any]], first_step: int) -> Optional[tuple[int, dict]]:
  """``(step, terms)`` of the first host-fetched metrics with a non-finite loss."""
  for offset, terms in enumerate(history):
    if not all(np.isfinite(float(v)) for v in terms.values()):
      return first_step + offset, {k: float(v) for k, v in terms.items()}
  return None


def init_variables(model, config: ml_collections.ConfigDict, rng: Array) -> dict[str, Any]:
  """Model variables from example inputs of the configured shapes."""
  if is_classifier(config):
    return classification.init_variables(model, config, rng, classification.example_batch(config))
  h, w = config.data.image_size
  example = jnp.zeros((1, config.model.sequence_length, h, w, config.data.channels), jnp.float32)
  return model.init(rng, example, train=False)


def build_state(model, tx, config, mesh) -> tuple[TrainState, Any]:
  """A replicated, freshly initialised state and its sharding tree."""

  def init(rng):
    variables = init_variables(model, config, rng)
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                             batch_stats=variables.get("batch_stats", {}), memory=variables.get("memory", {}))

  abstract = jax.eval_shape(init, jax.random.key(config.seed))
  state_sharding = jax.tree.map(lambda _: sharding_lib.replicated(mesh), abstract)
  state = jax.jit(init, out_shardings=state_sharding)(jax.random.key(config.seed))
  return state, state_sharding


def steps_for(model, config):
  """``(train_step, eval_step)`` of the configured task, static settings bound."""
  return classification.bind_steps(model, config) if is_classifier(config) else bind_steps(model, config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_after_steps: Optional[int] = None) -> dict[str, float]:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), then evaluates.

  Args:
    config: see ``configs/default.py``.
    workdir: checkpoints, ``metrics.jsonl``, TensorBoard events and ``eval/``.
    stop_after_steps: leave after this many steps of *this* invocation, once the
      checkpoint of that step is written (time-sliced jobs; tests use it to simulate a
      killed run). ``None`` trains to the end.

  Returns:
    The evaluation metrics (empty when evaluation is off or the run stopped early).
  """
  from vad_jax import evaluate  # noqa: PLC0415  (evaluate imports this module)

  workdir_path = pathlib.Path(workdir)
  mesh = sharding_lib.make_mesh()
  data_prep.ensure_prepared(config.data)
  evaluate_state, _ = evaluate.for_config(config)
  if is_classifier(config):
    train_iter, table = classification.create_iterator(config, mesh, train=True)
    num_clips = len(table)
  else:
    train_split = input_pipeline.open_split(config.data, config.data.train_split)
    num_clips = len(indexing.ClipIndex.from_videos(train_split.videos, config.model.sequence_length,
                                                   config.data.frame_stride))
    train_iter = input_pipeline.create_train_iterator(config, mesh, split=train_split)
  total_steps = total_train_steps(config, num_clips)
  model = build_model(config)
  state, state_sharding = build_state(model, make_optimizer(config, total_steps), config, mesh)
  if is_classifier(config) and config.model.get("pretrained"):
    state = load_pretrained(state, config)

  checkpointer = checkpointing.Checkpointer(
      workdir_path / "checkpoints", max_to_keep=config.max_checkpoints_to_keep,
      best_metric=config.best_metric or None)
  start_step = checkpointer.latest_step() or 0
  if start_step:
    state = checkpointer.restore(state, data_iterator=train_iter)
    logging.info("resumed from %s at step %d", checkpointer.directory, start_step)

  step_fn = jax.jit(steps_for(model, config)[0],
                    in_shardings=(state_sharding, sharding_lib.data_sharded(mesh)),
                    out_shardings=(state_sharding, sharding_lib.replicated(mesh)), donate_argnums=0)
  writer = metric_writers.MetricWriter(workdir_path, resume_step=start_step)
  progress = metric_writers.Progress(total_steps, start_step)
  log_every = max(1, config.log_every_steps)
  ckpt_every = max(log_every, config.checkpoint_every_steps // log_every * log_every)
  last_step = total_steps if stop_after_steps is None else min(total_steps, start_step + stop_after_steps)
  pending, pending_start = [], start_step
  try:
    for step in range(start_step + 1, last_step + 1):
      state, terms = step_fn(state, next(train_iter))
      pending.append(terms)  # stays on the device until the next log step
      if step % log_every and step % ckpt_every and step != last_step:
        continue
      history = jax.device_get(pending)
      bad = first_non_finite(history, pending_start + 1)
      if bad is not None:
        raise NonFiniteLossError(
            f"non-finite loss at step {bad[0]}: {bad[1]}; training stopped, the last good checkpoint "
            f"(step {checkpointer.latest_step()}) in {checkpointer.directory} is kept")
      pending, pending_start = [], step
      mean_terms = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
      mean_terms["steps_per_second"] = progress.rate(step)
      writer.write_scalars(step, mean_terms, prefix="train/")
      progress.update(step, mean_terms)
      if step % ckpt_every == 0 or step == last_step:
        save_metrics = None
        if config.best_metric:
          save_metrics = scalar_metrics(config, evaluate_state(
              config, state, mesh, split_name=config.best_metric_split or None, eval_dir=None))
          writer.write_scalars(step, save_metrics, prefix="val/")
        checkpointer.save(step, state, train_iter, config, save_metrics)
  finally:
    progress.close()
    checkpointer.close()
    writer.close()

  if last_step < total_steps or not config.eval_at_end:
    return {}
  results = evaluate_state(config, state, mesh, eval_dir=workdir_path / "eval")
  writer = metric_writers.MetricWriter(workdir_path)
  writer.write_scalars(total_steps, scalar_metrics(config, results), prefix="eval/")
  writer.close()
  return results


def scalar_metrics(config, results: dict[str, Any]) -> dict[str, float]:
  """The float metrics of an evaluation (flattened for the classifiers)."""
  if is_classifier(config):
    return classification.headline(results)
  return {k: v for k, v in results.items() if isinstance(v, float)}


def load_pretrained(state: TrainState, config) -> TrainState:
  """Backbone weights from the Keras ``.h5`` file named by ``model.pretrained``."""
  from vad_jax.models import keras_weights  # noqa: PLC0415  (needs h5py)

  variables = {"params": state.params, "batch_stats": state.batch_stats}
  loaded, report = keras_weights.load_keras_h5(config.model.pretrained, jax.device_get(variables),
                                               subtree=("backbone",))
  logging.info("loaded backbone weights from %s (unused layers of the file: %s)", config.model.pretrained,
               report.get("unused", []))
  loaded = jax.device_put(loaded, jax.tree.map(lambda x: x.sharding, variables))
  return state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", "configs/default.py", "Training configuration.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and evaluation output.", required=True)
  flags.DEFINE_integer("stop_after_steps", None, "Leave after this many steps (with a checkpoint); rerun to resume.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from vad_jax import evaluate  # noqa: PLC0415

  sharding_lib.maybe_initialize_distributed()
  logging.set_verbosity(logging.INFO)
  config = flags.FLAGS.config
  results = train_and_evaluate(config, flags.FLAGS.workdir, flags.FLAGS.stop_after_steps)
  if results and jax.process_index() == 0:
    print(evaluate.for_config(config)[1](results), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
