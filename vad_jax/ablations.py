"""Runs HybridModel-1 and its ablations and writes a comparison table.

  python -m vad_jax.ablations --config configs/hybrid_synthetic.py:cpu --workdir DIR \\
      [--only no_affm,bce] [--config.num_train_steps=600 ...]

Each variant (``full`` plus ``configs.classifier.ABLATIONS``: no AFFM, BCE instead of
TCR, spatial branch only, temporal branch only, no object features) is trained and
evaluated by ``vad_jax.train`` in ``DIR/<variant>`` with everything else equal (same
data, seed and steps). A rerun resumes unfinished variants and re-evaluates finished
ones. The table (``DIR/ablations.md`` and ``DIR/ablations.csv``) lists clip- and
frame-level ROC-AUC, F1 and accuracy, and the alarm F1.
"""

import copy
import csv
import pathlib
from typing import Any, Mapping, Sequence

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from configs import classifier
from vad_jax import classification, sharding, train

VARIANTS = ("full", *classifier.ABLATIONS)
COLUMNS = ("clip_auc", "clip_f1", "clip_accuracy", "frame_auc", "frame_f1", "frame_accuracy", "alarm_f1")


def variant_config(base, variant: str):
  config = copy.deepcopy(base)
  if variant != "full":
    with config.unlocked():
      classifier.apply_ablation(config, variant)
  return config


def run_all(base, workdir: pathlib.Path, variants: Sequence[str] = VARIANTS) -> dict[str, dict[str, float]]:
  """Trains and evaluates every variant; returns ``{variant: headline metrics}``."""
  if base.model.name != "hybrid":
    raise ValueError(f"ablations apply to the hybrid model, the config has model.name={base.model.name!r}")
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise ValueError(f"unknown variant(s) {unknown}; expected some of {VARIANTS}")
  rows = {}
  for variant in variants:
    logging.info("ablation %s", variant)
    results = train.train_and_evaluate(variant_config(base, variant), str(workdir / variant))
    rows[variant] = classification.headline(results)
  return rows


def table(rows: Mapping[str, Mapping[str, float]]) -> str:
  """A Markdown table of the headline metrics (``-`` where a level is absent)."""
  lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
  for variant, metrics in rows.items():
    cells = [f"{metrics[c]:.3f}" if c in metrics else "-" for c in COLUMNS]
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_table(workdir: pathlib.Path, rows: Mapping[str, Mapping[str, Any]]) -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "ablations.md").write_text(table(rows))
  with open(workdir / "ablations.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["variant", *COLUMNS])
    for variant, metrics in rows.items():
      writer.writerow([variant, *(f"{metrics[c]:.6g}" if c in metrics else "" for c in COLUMNS)])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  sharding.maybe_initialize_distributed()
  logging.set_verbosity(logging.INFO)
  variants = [v.strip() for v in f.only.split(",") if v.strip()] if f.only else VARIANTS
  workdir = pathlib.Path(f.workdir)
  rows = run_all(f.config, workdir, variants)
  if jax.process_index() == 0:
    write_table(workdir, rows)
    print(table(rows), flush=True)


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", "configs/hybrid_synthetic.py:cpu", "Base HybridModel-1 configuration.",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory with one sub-directory per variant.", required=True)
  flags.DEFINE_string("only", "", "Comma-separated subset of the variants (default: all).")
  app.run(main)
