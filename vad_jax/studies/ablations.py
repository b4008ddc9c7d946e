"""Runs a model, its ablations and its controls and writes a comparison table.

  python -m vad_jax.studies.ablations --config hybrid_synthetic:cpu --workdir DIR \\
      [--only no_affm,bce,motion_energy] [--config.num_train_steps=600 ...]

The variants are ``full`` plus the task's ablations (the ``ablations`` hook): for
HybridModel-1 no AFFM, BCE instead of TCR, spatial branch only, temporal branch only, no
object features; for the dual-stream network no RTSM, no RCAM, no memory. Each is
trained and evaluated by the training loop (``vad_jax.loop``) in ``DIR/<variant>`` with everything else
equal (same data, seed and steps). A rerun resumes unfinished variants and re-evaluates
finished ones. The task's controls (the ``controls`` hook: for the classifiers the
motion-energy logistic regression) are simple baselines fitted without training a
network, on the same clips and evaluated by the same code (``DIR/<control>/eval``). The
table (``DIR/ablations.md`` and ``DIR/ablations.csv``) lists the task's scalar metrics.
"""

import copy
import csv
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
from absl import flags, logging

from vad_jax import cli, config_flags, loop, sharding, tasks


def ablations_of(config) -> Mapping[str, Any]:
  """The task's ablation switches for ``config`` (none when it has no ``ablations`` hook)."""
  found = tasks.hook(tasks.for_config(config), "ablations")
  return found(config) if found is not None else {}


def controls_of(config) -> Mapping[str, Any]:
  """The task's controls for ``config`` (none when it has no ``controls`` hook)."""
  found = tasks.hook(tasks.for_config(config), "controls")
  return found(config) if found is not None else {}


def variants(config) -> tuple[str, ...]:
  """``full``, the names of the config's ablations and those of its controls."""
  return ("full", *ablations_of(config), *controls_of(config))


def variant_config(base, variant: str):
  """A copy of ``base`` switched to ``variant`` (a control keeps the base config)."""
  config = copy.deepcopy(base)
  if variant != "full" and variant not in controls_of(base):
    with config.unlocked():
      ablations_of(base)[variant](config)
  return config


def run_all(base, workdir: pathlib.Path, only: Sequence[str] = ()) -> dict[str, dict[str, float]]:
  """Trains and evaluates every variant, and fits and evaluates every control (or those
  in ``only``); returns ``{variant: scalar metrics}``."""
  known = variants(base)
  if len(known) == 1:
    raise ValueError(f"model.name={base.model.name!r} has no ablations or controls")
  unknown = [v for v in only if v not in known]
  if unknown:
    raise ValueError(f"unknown variant(s) {unknown}; expected some of {known}")
  task = tasks.for_config(base)
  controls = controls_of(base)
  rows = {}
  for variant in only or known:
    logging.info("ablation %s", variant)
    if variant in controls:
      task.prepare(base)
      mesh = sharding.make_mesh()
      results = controls[variant](base, mesh, workdir / variant / "eval")
    else:
      results = loop.train_and_evaluate(variant_config(base, variant), str(workdir / variant))
    rows[variant] = task.scalar_metrics(results)
  return rows


def columns(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
  """The metrics of the table, in first-seen order."""
  return list(dict.fromkeys(k for metrics in rows.values() for k in metrics))


def table(rows: Mapping[str, Mapping[str, float]]) -> str:
  """A Markdown table of the metrics (``-`` where a variant lacks one)."""
  cols = columns(rows)
  lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for variant, metrics in rows.items():
    cells = [f"{metrics[c]:.3f}" if c in metrics else "-" for c in cols]
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_table(workdir: pathlib.Path, rows: Mapping[str, Mapping[str, Any]]) -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "ablations.md").write_text(table(rows))
  cols = columns(rows)
  with open(workdir / "ablations.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["variant", *cols])
    for variant, metrics in rows.items():
      writer.writerow([variant, *(f"{metrics[c]:.6g}" if c in metrics else "" for c in cols)])


def define_flags() -> None:
  config_flags.define_config(
    "config", "hybrid_synthetic:cpu", "Base configuration (shipped name or file; --config.FIELD=VALUE overrides)."
  )
  flags.DEFINE_string("workdir", None, "Directory with one sub-directory per variant.", required=True)
  flags.DEFINE_string("only", "", "Comma-separated subset of the variants (default: all).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  only = [v.strip() for v in f.only.split(",") if v.strip()]
  workdir = pathlib.Path(f.workdir)
  rows = run_all(f.config, workdir, only)
  if jax.process_index() == 0:
    write_table(workdir, rows)
    print(table(rows), flush=True)


COMMAND = cli.Command("ablations", __doc__, define_flags, main, distributed=True)

if __name__ == "__main__":
  cli.run(COMMAND)
