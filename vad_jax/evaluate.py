"""Evaluating a checkpoint: ``python -m vad_jax.evaluate``.

  python -m vad_jax.evaluate --workdir DIR            # latest checkpoint of a run
  python -m vad_jax.evaluate --checkpoint DIR/checkpoints/1000
  python -m vad_jax.evaluate --workdir DIR --builder_config supervised --split train --output OUT

The state and the config saved with it are restored on the current devices (any count)
and evaluated by the config's task (``vad_jax.tasks``): the frame-prediction
literature's protocol for the dual-stream network (``vad_jax/dual_stream/evaluation.py``),
classification metrics for the supervised classifiers
(``vad_jax/hybrid/evaluation.py``). Outputs go to ``<workdir>/eval/`` unless
``--output`` says otherwise.
"""

import pathlib

import jax
from absl import app, flags

from vad_jax import checkpointing, metric_writers, tasks
from vad_jax import sharding as sharding_lib
from vad_jax import state as state_lib


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir: evaluates its latest checkpoint.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory (<workdir>/checkpoints/<step>).")
  flags.DEFINE_string("split", None, "Split to evaluate (default: the config's data.eval_split).")
  flags.DEFINE_string("data_dir", None, "Override the TFDS data directory saved in the config.")
  flags.DEFINE_string(
    "builder_config", None, "Override the TFDS builder config saved in the config (another set of the same dataset)."
  )
  flags.DEFINE_string("output", None, "Output directory (default: <workdir>/eval).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  metric_writers.quiet_library_logs()
  f = flags.FLAGS
  if bool(f.workdir) == bool(f.checkpoint):
    raise app.UsageError("give exactly one of --workdir or --checkpoint")
  sharding_lib.maybe_initialize_distributed()
  if f.checkpoint:
    path = pathlib.Path(f.checkpoint).absolute()
    if not path.name.isdigit():
      raise app.UsageError(f"--checkpoint must be a step directory such as run/checkpoints/1000, got {path}")
    checkpoint_dir, step, workdir = path.parent, int(path.name), path.parent.parent
  else:
    workdir = pathlib.Path(f.workdir).absolute()
    checkpoint_dir, step = workdir / "checkpoints", None
  mesh = sharding_lib.make_mesh()
  try:
    config, state = state_lib.restore(checkpoint_dir, step, mesh)
  except checkpointing.CheckpointError as error:
    raise SystemExit(f"error: {error}") from None
  if f.data_dir:
    config.data.data_dir = f.data_dir
  if f.builder_config:
    config.data.builder_config = f.builder_config
  task = tasks.for_config(config)
  output = pathlib.Path(f.output or workdir / "eval")
  try:
    task.prepare(config)
    if f.split:
      config.data.eval_split = f.split
    task.check_config(config)
  except (ValueError, FileNotFoundError) as error:
    raise SystemExit(f"error: {error}") from None
  calibration = checkpointing.read_calibration(checkpoint_dir, int(state.step))
  results = task.evaluate(config, state, mesh, f.split, output, calibration=calibration)
  if jax.process_index() == 0:
    print(task.summary(results), flush=True)
    print(f"wrote {output}", flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
