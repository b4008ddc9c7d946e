"""Evaluation of the supervised classifiers (the hybrid task).

Clip-level and frame-level accuracy, precision, recall, F1 (per class, macro,
weighted), ROC-AUC and confusion matrix; the alarm state (moving average of the last
``alarm.window`` frame probabilities above ``alarm.threshold``, as in the authors' code)
scored against the frame labels. A frame sampled by several clips counts once, with its
mean probability.

Outputs in ``<workdir>/eval/``: ``metrics.json``, ``clip_scores.csv``,
``frame_scores.csv`` and ``roc.png``.
"""

import csv
import functools
import json
import pathlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax import metric_writers, metrics, plots, sharding
from vad_jax.data import input_pipeline, sources
from vad_jax.hybrid import inputs, networks, steps

Array = Any


def _report(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
  """Threshold metrics and ROC-AUC of one level (clip or frame)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
    report = metrics.classification_report(
      labels, (probs > threshold).astype(int), num_classes=2, class_names=["normal", "anomalous"]
    )
    auc = metrics.roc_auc(labels, probs)
  report["confusion_matrix"] = report["confusion_matrix"].tolist()
  return {**report, "roc_auc": auc, "count": int(labels.size), "anomalous": int(labels.sum())}


def frame_series(arrays: Mapping[str, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Per video: ``(frame indices, probabilities, labels)`` in time order, each frame once
  (a frame sampled by two clips keeps its mean probability)."""
  series = {}
  video = np.repeat(arrays["video_index"], arrays["frame_index"].shape[1])
  frame = arrays["frame_index"].reshape(-1)
  prob = arrays["frame_probs"].reshape(-1)
  label = arrays["frame_labels"].reshape(-1)
  for v in np.unique(video):
    rows = video == v
    frames, inverse = np.unique(frame[rows], return_inverse=True)
    mean_prob = np.bincount(inverse, prob[rows]) / np.bincount(inverse)
    labels = np.full(frames.size, -1)
    labels[inverse] = label[rows]
    series[int(v)] = (frames, mean_prob, labels)
  return series


def classification_metrics(arrays: Mapping[str, np.ndarray], config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Clip-level, frame-level and alarm metrics (see the module docstring)."""
  threshold = config.decision_threshold
  clip_known = arrays["label"] >= 0
  results: dict[str, Any] = {"clip": _report(arrays["label"][clip_known], arrays["clip_probs"][clip_known], threshold)}
  series = frame_series(arrays)
  labels = np.concatenate([s[2] for s in series.values()])
  known = labels >= 0
  if known.any():
    probs = np.concatenate([s[1] for s in series.values()])
    results["frame"] = _report(labels[known], probs[known], threshold)
    alarms = np.concatenate(
      [metrics.moving_average_alarm(s[1], config.alarm.window, config.alarm.threshold)[1] for s in series.values()]
    )
    results["alarm"] = _report(labels[known], alarms[known].astype(np.float64), 0.5)
  results["videos"] = len(series)
  return results


LEVELS = ("clip", "frame", "alarm")
HEADLINE_NAMES = tuple(
  f"{level}_{name}" for level in LEVELS for name in ("auc", "accuracy", "precision", "recall", "f1", "macro_f1")
)


def headline(results: Mapping[str, Any]) -> dict[str, float]:
  """Flat scalars for logs and best-checkpoint selection (``clip_auc``, ``frame_f1``...)."""
  flat = {}
  for level in ("clip", "frame", "alarm"):
    if level in results:
      r = results[level]
      flat.update(
        {
          f"{level}_auc": r["roc_auc"],
          f"{level}_accuracy": r["accuracy"],
          f"{level}_precision": r["per_class"]["anomalous"]["precision"],
          f"{level}_recall": r["per_class"]["anomalous"]["recall"],
          f"{level}_f1": r["per_class"]["anomalous"]["f1"],
          f"{level}_macro_f1": r["macro"]["f1"],
        }
      )
  return {k: float(v) for k, v in flat.items()}


def write_outputs(
  eval_dir: pathlib.Path,
  arrays: Mapping[str, np.ndarray],
  results: Mapping[str, Any],
  video_names: list[str],
  plot: bool = True,
) -> None:
  eval_dir.mkdir(parents=True, exist_ok=True)
  (eval_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")
  with open(eval_dir / "clip_scores.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "first_frame", "label", "probability"])
    for v, first, label, p in zip(
      arrays["video_index"], arrays["frame_index"][:, 0], arrays["label"], arrays["clip_probs"]
    ):
      writer.writerow([video_names[int(v)], int(first), int(label), f"{float(p):.6g}"])
  with open(eval_dir / "frame_scores.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "frame", "label", "probability"])
    for v, (frames, probs, labels) in frame_series(arrays).items():
      for i in range(frames.size):
        writer.writerow([video_names[v], int(frames[i]), int(labels[i]), f"{probs[i]:.6g}"])
  if plot and len(np.unique(arrays["label"][arrays["label"] >= 0])) == 2:
    plots.roc_curves(
      eval_dir / "roc.png", arrays["label"][arrays["label"] >= 0], {"clip": arrays["clip_probs"][arrays["label"] >= 0]}
    )


def summary(results: Mapping[str, Any]) -> str:
  lines = []
  for level in ("clip", "frame", "alarm"):
    if level not in results:
      continue
    r = results[level]
    a = r["per_class"]["anomalous"]
    cm = r["confusion_matrix"]
    reason = metrics.undefined_auc_reason(r["count"], r["anomalous"], "clips" if level == "clip" else "frames")
    auc = f"AUC {r['roc_auc']:.4f}" + (f" ({reason})" if reason else "")
    lines.append(
      f"{level:<5} ({r['count']}, {r['anomalous']} anomalous)  {auc}  "
      f"acc {r['accuracy']:.4f}  P {a['precision']:.4f}  R {a['recall']:.4f}  F1 {a['f1']:.4f}  "
      f"macro F1 {r['macro']['f1']:.4f}  weighted F1 {r['weighted']['f1']:.4f}  "
      f"confusion [[TN FP] [FN TP]] {cm}"
    )
  return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Evaluating a trained classifier.
# --------------------------------------------------------------------------------------


def score_clips(
  config, mesh, split: sources.VideoSplit, step: Callable[[dict[str, Array]], Mapping[str, Array]]
) -> dict[str, np.ndarray]:
  """``step``'s outputs on every clip of ``split`` with labels and indices (padding
  dropped): the evaluation iterator of the classifiers, shared by their controls."""
  iterator, table = inputs.create_iterator(config, mesh, train=False, split=split)
  batch_size = config.data.eval_batch_size or config.batch_size
  iterator = metric_writers.counting(iterator, "evaluation", -(-len(table) // batch_size))
  keys = ("label", "frame_labels", "video_index", "frame_index", "valid")
  outputs = sharding.dispatch_in_order(lambda batch: {**step(batch), **{k: batch[k] for k in keys}}, iterator)
  if not outputs:
    raise ValueError(
      f"the evaluation split of {config.data.name} has no clip of at least {config.data.clip_frames} frames"
    )
  return sharding.fetch(outputs)


def collect(config, state, mesh, split: sources.VideoSplit) -> dict[str, np.ndarray]:
  """Probabilities of every clip of ``split`` with labels and indices (padding dropped)."""
  step = jax.jit(functools.partial(steps.eval_step, model=networks.build(config), config=config))
  return score_clips(config, mesh, split, functools.partial(step, state))


def report(
  config, arrays: Mapping[str, np.ndarray], split: sources.VideoSplit, eval_dir: Optional[pathlib.Path] = None
) -> dict[str, Any]:
  """Clip, frame and alarm metrics of ``frame_probs``/``clip_probs`` (``arrays`` as
  ``score_clips`` returns them); writes the outputs to ``eval_dir`` (process 0)."""
  results = classification_metrics(arrays, config)
  if eval_dir is not None and jax.process_index() == 0:
    write_outputs(
      pathlib.Path(eval_dir), arrays, results, [str(v["name"]) for v in split.videos], plot=config.eval_plots
    )
  return results


def evaluate(
  config,
  state,
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
) -> dict[str, Any]:
  """Evaluates a classifier on ``split_name`` (default ``data.eval_split`` with
  ``data.eval_videos``); writes outputs to ``eval_dir`` (process 0)."""
  split = evaluation_split(config, split_name)
  return report(config, collect(config, state, mesh, split), split, eval_dir)


def evaluation_split(config, split_name: Optional[str] = None) -> sources.VideoSplit:
  """``split_name`` (default ``data.eval_split`` with its fold or ``data.eval_videos``)."""
  if split_name in (None, config.data.eval_split):
    return inputs.open_split(config, train=False)
  return sources.select_videos(input_pipeline.open_split(config.data, split_name), config.data.eval_videos)


def evaluate_ensemble(
  members: Sequence[tuple[str, ml_collections.ConfigDict, Any]],
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
) -> dict[str, Any]:
  """Evaluates classifiers ``(name, config, state)`` together: the ensemble's clip and
  frame probabilities are the mean of the members'. The members must score the same
  clips (``vad_jax.studies.ensemble`` checks their data settings). Beside the ensemble's figures:
  ``members``, each classifier's own, and ``first``, those of the first 1, 2, ... members."""
  config = members[0][1]
  split = evaluation_split(config, split_name)
  collected = [collect(member_config, state, mesh, split) for _, member_config, state in members]
  probabilities = [key for key in collected[0] if key.endswith("_probs")]
  for (name, _, _), arrays in zip(members, collected):
    for key, value in arrays.items():
      if key not in probabilities and not np.array_equal(value, collected[0][key]):
        raise ValueError(f"ensemble member {name} scored other clips than {members[0][0]} ({key} differs)")

  def mean(chosen: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {**chosen[0], **{key: np.mean([a[key] for a in chosen], axis=0) for key in probabilities}}

  ensemble = mean(collected)
  results = classification_metrics(ensemble, config)
  results["members"] = [
    {"name": name, **classification_metrics(arrays, config)} for (name, _, _), arrays in zip(members, collected)
  ]
  results["first"] = [
    {"members": k, **classification_metrics(mean(collected[:k]), config)} for k in range(1, len(members) + 1)
  ]
  if eval_dir is not None and jax.process_index() == 0:
    write_outputs(
      pathlib.Path(eval_dir), ensemble, results, [str(v["name"]) for v in split.videos], plot=config.eval_plots
    )
  return results
