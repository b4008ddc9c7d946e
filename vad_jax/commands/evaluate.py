"""Evaluate a trained model's checkpoint.

  vad-jax evaluate --workdir DIR                    # the latest checkpoint of a run
  vad-jax evaluate --checkpoint DIR/checkpoints/1000
  vad-jax evaluate --workdir DIR --builder_config supervised --split train --output OUT

The state and the config saved with it are restored on the current devices (any count)
and evaluated by the config's task: the frame-prediction literature's protocol for the
dual-stream network (and the deployment protocol when the checkpoint has a
calibration), classification metrics for the supervised classifiers. Outputs go to
<workdir>/eval/ unless --output says otherwise.
"""

import pathlib

import jax
from absl import app, flags

from vad_jax import checkpointing, cli, precision, sharding, tasks
from vad_jax import state as state_lib


def define_flags() -> None:
  cli.define_precision_flag()
  flags.DEFINE_string("workdir", None, "Training workdir: evaluates its latest checkpoint.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory (<workdir>/checkpoints/<step>).")
  flags.DEFINE_string("split", None, "Split to evaluate (default: the config's data.eval_split).")
  flags.DEFINE_string("data_dir", None, "Override the TFDS data directory saved in the config.")
  flags.DEFINE_string(
    "builder_config", None, "Override the TFDS builder config saved in the config (another set of the same dataset)."
  )
  flags.DEFINE_string("output", None, "Output directory (default: <workdir>/eval).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  if bool(f.workdir) == bool(f.checkpoint):
    raise app.UsageError("give exactly one of --workdir or --checkpoint")
  if f.checkpoint and not pathlib.Path(f.checkpoint).name.isdigit():
    raise app.UsageError(f"--checkpoint must be a step directory such as run/checkpoints/1000, got {f.checkpoint}")
  checkpoint_dir, step, workdir = state_lib.parse_checkpoint_path(f.checkpoint or f.workdir)
  mesh = sharding.make_mesh()
  config, state = state_lib.restore(checkpoint_dir, step, mesh)
  if f.precision:
    config.model.dtype = f.precision
  if jax.process_index() == 0:
    print(precision.of_config(config).describe(), flush=True)
  if f.data_dir:
    config.data.data_dir = f.data_dir
  if f.builder_config:
    config.data.builder_config = f.builder_config
  task = tasks.for_config(config)
  output = pathlib.Path(f.output or workdir / "eval")
  task.prepare(config)
  if f.split:
    config.data.eval_split = f.split
  task.check_config(config)
  calibration = checkpointing.read_calibration(checkpoint_dir, int(state.step), tasks.hook(task, "check_calibration"))
  kwargs = {"calibration": calibration} if calibration is not None else {}
  results = task.evaluate(config, state, mesh, f.split, output, **kwargs)
  if jax.process_index() == 0:
    print(task.summary(results), flush=True)
    print(f"wrote {output}", flush=True)


COMMAND = cli.Command("evaluate", __doc__, define_flags, main, distributed=True)

if __name__ == "__main__":
  cli.run(COMMAND)
