"""Cross-validation over video folds: every classifier, ablation and control on every fold.

  python -m vad_jax.studies.folds --dataset ucsd_ped2 --size cpu --workdir runs/ped2_folds \\
      [--folds 4] [--models hybrid,convlstm,effnet_hog] [--only full,motion_energy] \\
      [--set data.manual_dir=../shared/data/ucsd_ped2 --set num_train_steps=600]

Fold ``i`` of ``k`` (``data.fold = "i/k"``, ``configs/classifier.py``) evaluates on
part ``i`` of the evaluation split's videos and trains on the training split plus the
other parts, so no video has frames on both sides. Each model config is
``configs/classifier.py:MODEL,DATASET,SIZE`` with the ``--set`` values (each applied
where the config has the field). The first model also runs its ablations and the
controls (``vad_jax.studies.ablations``); the others run in full only. Everything runs in
``DIR/<model>/fold<i>/<variant>``; a finished run is not repeated (its scalar metrics
are kept in ``fold_result.json`` beside the config they came from), so a killed
command resumes where it stopped.

The table (``DIR/folds.md``, ``DIR/folds.csv`` with one line per run) gives, for each
row, the mean and the sample standard deviation over the folds of each metric, and
every fold's value. It is rewritten after every run.
"""

import ast
import json
import math
import pathlib
from collections.abc import Mapping, Sequence

import jax
import ml_collections
from absl import flags, logging

from vad_jax import checkpointing, cli
from vad_jax import workdir as workdir_lib
from vad_jax.configs import classifier
from vad_jax.studies import ablations

# Columns of the Markdown table (all are in folds.csv).
TABLE_METRICS = ("frame_auc", "clip_auc", "frame_accuracy", "frame_precision", "frame_recall", "alarm_auc")


def parse_sets(values: Sequence[str]) -> dict[str, object]:
  """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (Python literals, else strings)."""
  out = {}
  for item in values:
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
      raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    out[key.strip()] = value
  return out


def _has_field(config: ml_collections.ConfigDict, key: str) -> bool:
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def model_configs(
  models: Sequence[str], dataset: str, size: str, sets: Mapping[str, object]
) -> dict[str, ml_collections.ConfigDict]:
  """``{model: config}``; a model is ``MODEL`` or ``MODEL+CHANGE`` (a labelled change of
  ``configs/classifier.py``, e.g. ``hybrid+differences``). Raises on a ``--set`` key
  that no model's config has."""
  configs = {}
  for model in models:
    name, *changes = model.split("+")
    config = classifier.get_config(",".join(p for p in (name, dataset, size, *changes) if p))
    config.update_from_flattened_dict({k: v for k, v in sets.items() if _has_field(config, k)})
    configs[model] = config
  unused = [k for k in sets if not any(_has_field(c, k) for c in configs.values())]
  if unused:
    raise ValueError(f"--set {unused}: no such field in the configs of {list(models)}")
  return configs


def fold_config(config: ml_collections.ConfigDict, fold: int, folds: int) -> ml_collections.ConfigDict:
  out = ml_collections.ConfigDict(config.to_dict())
  out.data.fold = f"{fold}/{folds}"
  return out


def plan(configs: Mapping[str, ml_collections.ConfigDict], only: Sequence[str] = ()) -> list[tuple[str, str]]:
  """``[(model, variant)]`` in run order: every model in full, then the first model's
  controls, then its ablations (``only`` keeps those variants)."""
  models = list(configs)
  first = configs[models[0]]
  names = ablations.variants(first)
  controls = [v for v in names if v in ablations.controls_of(first)]
  rows = [(m, "full") for m in models]
  rows += [(models[0], v) for v in controls]
  rows += [(models[0], v) for v in names if v != "full" and v not in controls]
  if only:
    known = {v for _, v in rows}
    unknown = [v for v in only if v not in known]
    if unknown:
      raise ValueError(f"unknown variant(s) {unknown}; expected some of {sorted(known)}")
    rows = [(m, v) for m, v in rows if v in only]
  return rows


def row_name(model: str, variant: str) -> str:
  """The table's name of a run: the model, ``MODEL ABLATION`` or ``CONTROL (control)``."""
  if variant == "full":
    return model
  return f"{model} {variant}" if variant in classifier.ABLATIONS else f"{variant} (control)"


def run_one(config: ml_collections.ConfigDict, variant: str, directory: pathlib.Path) -> dict[str, float]:
  """The scalar metrics of ``variant`` trained and evaluated in ``directory`` (kept in
  ``fold_result.json``; reused when the config is the same)."""
  saved = directory / variant / "fold_result.json"
  config_json = json.loads(config.to_json())
  if saved.exists():
    kept = json.loads(saved.read_text())
    if not checkpointing.config_differences(kept.get("config", {}), config_json):
      return kept["metrics"]
    logging.warning("%s was made with another config: running again", saved)
  metrics = ablations.run_all(config, directory, only=[variant])[variant]
  if jax.process_index() == 0:
    saved.parent.mkdir(parents=True, exist_ok=True)
    workdir_lib.write_text_atomic(saved, json.dumps({"config": config_json, "metrics": metrics}, indent=1) + "\n")
  return metrics


def summarise(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (0 for one value); NaN values are skipped."""
  finite = [v for v in values if not math.isnan(v)]
  if not finite:
    return math.nan, math.nan
  mean = sum(finite) / len(finite)
  if len(finite) == 1:
    return mean, 0.0
  return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def table(results: Mapping[str, Mapping[int, Mapping[str, float]]], folds: int) -> str:
  """Markdown: one row per model/variant, mean ± std over the folds done, fold values."""
  head = "| row | folds | " + " | ".join(TABLE_METRICS) + " | frame_auc per fold |"
  lines = [head, "|---|---|" + "---|" * (len(TABLE_METRICS) + 1)]
  for row, per_fold in results.items():
    cells = []
    for metric in TABLE_METRICS:
      mean, std = summarise([m.get(metric, math.nan) for m in per_fold.values()])
      cells.append("-" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}")
    each = " / ".join(
      f"{per_fold[i]['frame_auc']:.3f}" if i in per_fold and "frame_auc" in per_fold[i] else "-" for i in range(folds)
    )
    lines.append(f"| {row} | {len(per_fold)}/{folds} | " + " | ".join(cells) + f" | {each} |")
  return "\n".join(lines) + "\n"


def write(workdir: pathlib.Path, results: Mapping[str, Mapping[int, Mapping[str, float]]], folds: int) -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  workdir_lib.write_text_atomic(workdir / "folds.md", table(results, folds))
  names = list(dict.fromkeys(k for per_fold in results.values() for m in per_fold.values() for k in m))
  lines = [",".join(["row", "fold", *names])]
  for row, per_fold in results.items():
    for fold, metrics in sorted(per_fold.items()):
      lines.append(",".join([row, str(fold), *(f"{metrics[n]:.6g}" if n in metrics else "" for n in names)]))
  workdir_lib.write_text_atomic(workdir / "folds.csv", "\n".join(lines) + "\n")


def run_folds(
  configs: Mapping[str, ml_collections.ConfigDict],
  workdir: pathlib.Path,
  folds: int,
  only: Sequence[str] = (),
) -> dict[str, dict[int, dict[str, float]]]:
  """Every planned run on every fold; returns ``{row: {fold: scalar metrics}}``."""
  if folds < 2:
    raise ValueError(f"--folds must be at least 2, got {folds}")
  results: dict[str, dict[int, dict[str, float]]] = {}
  for model, variant in plan(configs, only):
    row = row_name(model, variant)
    for fold in range(folds):
      logging.info("folds: %s, fold %d of %d", row, fold, folds)
      config = fold_config(configs[model], fold, folds)
      results.setdefault(row, {})[fold] = run_one(config, variant, workdir / model / f"fold{fold}")
      if jax.process_index() == 0:
        write(workdir, results, folds)
  return results


def define_flags() -> None:
  flags.DEFINE_string("dataset", "ucsd_ped2", "Dataset of configs/classifier.py (folds of its evaluation split).")
  flags.DEFINE_string("size", "cpu", "Size of configs/classifier.py (cpu, test, or '' for the published size).")
  flags.DEFINE_integer("folds", 4, "Number of folds over the evaluation split's videos.")
  flags.DEFINE_string("models", ",".join(classifier.MODELS), "Comma-separated models; the first runs ablations.")
  flags.DEFINE_string("only", "", "Comma-separated subset of the variants (full, ablations, controls).")
  flags.DEFINE_multi_string("set", [], "KEY=VALUE for every model config that has KEY (repeatable).")
  flags.DEFINE_string("workdir", None, "Directory of the runs and the table.", required=True)


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  models = [m.strip() for m in f.models.split(",") if m.strip()]
  only = [v.strip() for v in f.only.split(",") if v.strip()]
  configs = model_configs(models, f.dataset, f.size, parse_sets(f.set))
  results = run_folds(configs, pathlib.Path(f.workdir), f.folds, only)
  if jax.process_index() == 0:
    print(table(results, f.folds), flush=True)


COMMAND = cli.Command("folds", __doc__, define_flags, main, distributed=True)

if __name__ == "__main__":
  cli.run(COMMAND)
