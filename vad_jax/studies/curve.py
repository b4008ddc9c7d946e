"""Every checkpoint of a run evaluated: ``python -m vad_jax.studies.curve``.

  python -m vad_jax.studies.curve --workdir RUN            # validation figures of each checkpoint
  python -m vad_jax.studies.curve --workdir RUN --test     # and the test split's, once the recipe is fixed

For each checkpoint, in step order: the training time it took (from the step rates the
loop logged in ``metrics.jsonl``), the task's validation figures (the task's ``validate`` hook: for
the dual-stream network the prediction PSNR of the held-out training videos and the
detection of sped-up regions in them, ``vad_jax/dual_stream/validation.py``) and, with
``--test``, the evaluation of ``data.eval_split``. A recipe and its checkpoint are chosen
by the validation columns; the test columns are the AUC-versus-training-time curve that
is reported beside them afterwards. Writes ``<workdir>/curve.json`` (or ``--output``).
"""

import json
import pathlib

from absl import app, flags

from vad_jax import checkpointing, cli, metric_writers, sharding, tasks, workdir
from vad_jax import state as state_lib

HEADLINE = ("validation_psnr", "pseudo_fused_micro_auc", "test_fused_micro_auc")


def curve(run: str | pathlib.Path, steps=(), test: bool = False, speedup: int = 3) -> list[dict]:
  """One row per checkpoint: step, minutes, validation figures, test figures."""
  run = pathlib.Path(run).absolute()
  checkpoint_dir = run / "checkpoints"
  checkpointer = checkpointing.Checkpointer(checkpoint_dir, create=False)
  try:
    available = sorted(checkpointer.all_steps())
  finally:
    checkpointer.close()
  missing = sorted(set(steps) - set(available))
  if missing:
    raise ValueError(f"{checkpoint_dir} has no checkpoint at steps {missing} (it has {available})")
  if not available:
    raise ValueError(f"{checkpoint_dir} has no checkpoint")
  records = metric_writers.read_records(run / "metrics.jsonl")
  mesh = sharding.make_mesh()
  rows = []
  for step in sorted(steps) or available:
    config, state = state_lib.restore(checkpoint_dir, step, mesh)
    task = tasks.for_config(config)
    task.prepare(config)
    row = {"step": step, "training_minutes": metric_writers.training_minutes(records, step)}
    validate = tasks.hook(task, "validate")
    validation = validate(config, state, mesh, speedup) if validate is not None else None
    if validation is None and not test:
      raise ValueError(
        f"{run}: nothing to evaluate without --test: training held no video out (calibration.videos) "
        f"or the task ({config.model.name!r}) has no validation of its own"
      )
    row.update(validation or {})
    if test:
      results = task.scalar_metrics(task.evaluate(config, state, mesh))
      row.update({f"test_{k}": v for k, v in results.items()})
    metric_writers.say("  ".join(f"{k} {row[k]:.4g}" for k in ("step", "training_minutes", *HEADLINE) if k in row))
    rows.append(row)
  return rows


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Training workdir whose checkpoints are evaluated.", required=True)
  flags.DEFINE_bool("test", False, "Also evaluate the config's test split (data.eval_split) at every checkpoint.")
  flags.DEFINE_list("steps", [], "Only these checkpoint steps (default: all).")
  flags.DEFINE_integer("speedup", 3, "How many times faster the pseudo-anomalous regions move.")
  flags.DEFINE_string("output", None, "Output file (default: <workdir>/curve.json).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  if not all(s.isdigit() for s in f.steps):
    raise app.UsageError(f"--steps must be checkpoint step numbers, got {f.steps}")
  output = pathlib.Path(f.output or pathlib.Path(f.workdir) / "curve.json")
  rows = curve(f.workdir, [int(s) for s in f.steps], f.test, f.speedup)
  workdir.write_text_atomic(output, json.dumps(rows, indent=1) + "\n")
  print(f"wrote {output}", flush=True)


COMMAND = cli.Command("curve", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
