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
import json
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from vad_jax import metrics, plots


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
    lines.append(
      f"{level:<5} ({r['count']}, {r['anomalous']} anomalous)  AUC {r['roc_auc']:.4f}  "
      f"acc {r['accuracy']:.4f}  P {a['precision']:.4f}  R {a['recall']:.4f}  F1 {a['f1']:.4f}  "
      f"macro F1 {r['macro']['f1']:.4f}  weighted F1 {r['weighted']['f1']:.4f}  "
      f"confusion [[TN FP] [FN TP]] {cm}"
    )
  return "\n".join(lines)
