"""Several trained runs evaluated as one detector: ``python -m vad_jax.studies.ensemble``.

  python -m vad_jax.studies.ensemble --workdirs RUN1,RUN2,RUN3 --output OUT
  python -m vad_jax.studies.ensemble --workdirs RUN1/checkpoints/1800,RUN2 --split train --output OUT

Each run's latest checkpoint (or the step directory given) is restored with the config
saved beside it. The runs are trained independently, for example the same recipe with
other seeds (``--config.seed=S --config.data.seed=S``); their per-frame outputs are
averaged and scored by the task as one model (the task's ``evaluate_ensemble`` hook): for the
dual-stream network the mean of the members' PSNRs and memory distances goes into
Eq. (16), for the classifiers the mean of their probabilities. The members must see the
same frames: the settings in ``SAME`` must agree, and a member that differs is named
before anything is evaluated. Outputs as ``vad_jax.evaluate``'s, in ``--output``; its
``metrics.json`` adds each member's own figures (``members``) and those of the ensembles
of the first 1, 2, ... members (``first``), the cost-against-accuracy curve of adding
members.
"""

import json
import pathlib

import jax
from absl import app, flags

from vad_jax import cli, metric_writers, tasks, workdir
from vad_jax import sharding as sharding_lib
from vad_jax import state as state_lib

# Settings that decide which frames are scored and how: equal in every member.
SAME = (
  "model.name",
  "model.sequence_length",
  "data.name",
  "data.builder_config",
  "data.eval_split",
  "data.image_size",
  "data.channels",
  "data.frame_stride",
  "data.clip_frames",
  "data.fold",
  "data.eval_videos",
  "score.lam",
)


def define_flags() -> None:
  flags.DEFINE_list("workdirs", [], "Training workdirs (their latest checkpoints) or checkpoint step directories.")
  flags.DEFINE_string("split", None, "Split to evaluate (default: the members' data.eval_split).")
  flags.DEFINE_string("data_dir", None, "Override the TFDS data directory saved in the configs.")
  flags.DEFINE_string("output", None, "Output directory (required).")


def setting(config, field: str):
  """``config``'s value of a dotted ``field`` (None where the config has no such field),
  with sequences as tuples so that a list and a tuple compare equal."""
  value = config
  for part in field.split("."):
    if part not in value:
      return None
    value = value[part]
  return tuple(value) if isinstance(value, (list, tuple)) else value


def check_members(members) -> None:
  """``ValueError`` naming the first member and setting that differ from the first member's."""
  if len(members) < 2:
    raise ValueError(f"an ensemble needs at least two runs, got {len(members)}")
  first_name, first, _ = members[0]
  for name, config, _ in members[1:]:
    for field in SAME:
      if setting(config, field) != setting(first, field):
        raise ValueError(
          f"ensemble member {name} has {field}={setting(config, field)!r} but {first_name} has "
          f"{setting(first, field)!r}; the members of an ensemble must score the same frames the same way"
        )


def restore_members(paths, mesh, data_dir=None) -> tuple[list[tuple[str, object, object]], list[float]]:
  """``(name, config, state)`` of each run or step directory, in the order given, and
  the minutes each took to train (from its run's ``metrics.jsonl``; NaN where unknown)."""
  members, minutes = [], []
  for path in paths:
    checkpoint_dir, step, run = state_lib.parse_checkpoint_path(path)
    config, state = state_lib.restore(checkpoint_dir, step, mesh)
    if data_dir:
      config.data.data_dir = data_dir
    members.append((str(path), config, state))
    minutes.append(metric_writers.training_minutes(metric_writers.read_records(run / "metrics.jsonl"), int(state.step)))
  return members, minutes


def add_training_minutes(results: dict, minutes: list[float]) -> None:
  """Each member's training minutes, and their sum for each first-k ensemble."""
  for member, m in zip(results["members"], minutes):
    member["training_minutes"] = m
  for k, first in enumerate(results["first"], start=1):
    first["training_minutes"] = float(sum(minutes[:k]))


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  if not f.output:
    raise app.UsageError("--output is required")
  if len(f.workdirs) < 2:
    raise app.UsageError(f"--workdirs needs at least two runs, got {f.workdirs}")
  mesh = sharding_lib.make_mesh()
  members, minutes = restore_members(f.workdirs, mesh, f.data_dir)
  check_members(members)
  task = tasks.for_config(members[0][1])
  evaluate_ensemble = tasks.hook(task, "evaluate_ensemble")
  if evaluate_ensemble is None:
    raise ValueError(f"model.name={members[0][1].model.name!r} has no ensemble evaluation")
  for _, config, _ in members:
    task.prepare(config)
    if f.split:
      config.data.eval_split = f.split
    task.check_config(config)
  output = pathlib.Path(f.output)
  results = evaluate_ensemble(members, mesh, f.split, output)
  add_training_minutes(results, minutes)
  if jax.process_index() == 0:
    workdir.write_text_atomic(
      output / "metrics.json", json.dumps(results, indent=2, sort_keys=True, default=float) + "\n"
    )
    for member in results["members"]:
      print(f"member {member['name']} ({member['training_minutes']:.1f} min):\n{task.summary(member)}", flush=True)
    for first in results["first"][1:-1]:
      print(
        f"first {first['members']} members ({first['training_minutes']:.1f} min):\n{task.summary(first)}", flush=True
      )
    total = results["first"][-1]["training_minutes"]
    print(f"ensemble of {len(members)} ({total:.1f} min):\n{task.summary(results)}", flush=True)
    print(f"wrote {output}", flush=True)


COMMAND = cli.Command("ensemble", __doc__, define_flags, main, distributed=True)

if __name__ == "__main__":
  cli.run(COMMAND)
