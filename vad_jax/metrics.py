"""Host-side evaluation metrics (numpy): ROC/AUC/EER, confusion matrix, classification report.

Everything here runs on the host over complete score arrays (all frames or all clips of
a split), after the device has produced per-example scores. Inputs are converted with
``np.asarray`` and flattened; padded examples must be removed by the caller (or passed
through ``valid``-style masking before calling).

Conventions:

* Labels are binary ``{0, 1}`` for the ROC functions (1 = anomalous = positive class);
  higher scores mean "more anomalous".
* Undefined quantities are reported, not hidden: the ROC AUC and EER of single-class
  input are ``nan`` with an :class:`UndefinedMetricWarning`; precision/recall/F1 with an
  empty denominator take the explicit ``zero_division`` value.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any


class UndefinedMetricWarning(UserWarning):
  """A metric is mathematically undefined for the given input (e.g. AUC of one class)."""


def _binary_inputs(labels: Array, scores: Array) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"labels and scores differ in size: {labels.shape} vs {scores.shape}")
  if not np.all(np.isin(labels, (0, 1))):
    raise ValueError(f"labels must be 0/1, got values {np.unique(labels)[:10]}")
  if not np.all(np.isfinite(scores)):
    raise ValueError("scores contain NaN or inf")
  return labels.astype(bool), scores


def _single_class(labels: np.ndarray, what: str) -> bool:
  if labels.size == 0:
    warnings.warn(f"{what} is undefined for empty input; returning nan.", UndefinedMetricWarning, stacklevel=3)
    return True
  n_pos = int(labels.sum())
  if n_pos == 0 or n_pos == labels.size:
    present = "positive" if n_pos else "negative"
    warnings.warn(
      f"{what} is undefined when only one class is present (all {labels.size} labels are {present}); returning nan.",
      UndefinedMetricWarning,
      stacklevel=3,
    )
    return True
  return False


def undefined_auc_reason(count: int, anomalous: int, what: str = "frames") -> str:
  """Why the AUC (and EER) of ``count`` labelled ``what`` of which ``anomalous`` are
  anomalous is ``nan``, for a person reading a summary; ``""`` when it is defined."""
  if count == 0:
    return f"no labelled {what} to score: an AUC needs labels"
  if anomalous == count:
    return f"all {count} scored {what} are anomalous: an AUC needs both classes"
  if anomalous == 0:
    return f"all {count} scored {what} are normal: an AUC needs both classes"
  return ""


def roc_curve(labels: Array, scores: Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Receiver operating characteristic of a binary score.

  One ROC point per distinct score value (tied scores move together, so a tie between a
  positive and a negative gives a diagonal segment, never an optimistic step). The first
  point is ``(0, 0)`` at threshold ``+inf``; the last is ``(1, 1)``. A sample is called
  positive at threshold ``th`` when ``score >= th``.

  Args:
    labels: ``[n]`` 0/1 ground truth (1 = positive / anomalous).
    scores: ``[n]`` real scores, larger = more positive.

  Returns:
    ``(fpr, tpr, thresholds)``, each ``[k + 1]`` for ``k`` distinct scores, thresholds
    decreasing. With one class present the rate of the missing class is ``nan``.
  """
  labels, scores = _binary_inputs(labels, scores)
  if labels.size == 0:
    return np.zeros(1), np.zeros(1), np.array([np.inf])
  order = np.argsort(-scores, kind="mergesort")
  scores, labels = scores[order], labels[order]
  # Last index of each run of equal scores: the ROC only moves there.
  ends = np.flatnonzero(np.diff(scores) != 0)
  ends = np.concatenate([ends, [scores.size - 1]])
  tps = np.cumsum(labels)[ends].astype(np.float64)
  fps = (ends + 1) - tps
  tps = np.concatenate([[0.0], tps])
  fps = np.concatenate([[0.0], fps])
  thresholds = np.concatenate([[np.inf], scores[ends]])
  n_pos, n_neg = tps[-1], fps[-1]
  with np.errstate(invalid="ignore", divide="ignore"):
    tpr = tps / n_pos if n_pos > 0 else np.full_like(tps, np.nan)
    fpr = fps / n_neg if n_neg > 0 else np.full_like(fps, np.nan)
  return fpr, tpr, thresholds


def roc_auc(labels: Array, scores: Array) -> float:
  """Area under the ROC curve (trapezoidal, ties count one half).

  Equals the Mann-Whitney statistic ``P(score_pos > score_neg) + 0.5 P(equal)``.
  Single-class (or empty) input returns ``nan`` with an :class:`UndefinedMetricWarning`.
  """
  labels_b, _ = _binary_inputs(labels, scores)
  if _single_class(labels_b, "ROC AUC"):
    return float("nan")
  fpr, tpr, _ = roc_curve(labels, scores)
  return float(np.trapezoid(tpr, fpr))


def mann_whitney_auc(labels: Array, scores: Array) -> float:
  """AUC from average ranks (the Mann-Whitney U statistic divided by ``n_pos * n_neg``).

  An independent route to :func:`roc_auc`, used to cross-check it.
  """
  labels, scores = _binary_inputs(labels, scores)
  if _single_class(labels, "ROC AUC"):
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  sorted_scores = scores[order]
  ranks = np.empty(scores.size, dtype=np.float64)
  # Average rank (1-based) inside each group of ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  n_pos = labels.sum()
  n_neg = labels.size - n_pos
  u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def equal_error_rate(labels: Array, scores: Array) -> tuple[float, float]:
  """Equal error rate: the point of the ROC where ``fpr == 1 - tpr``.

  The ROC is treated as piecewise linear between its points (as for the AUC); the EER is
  the crossing of ``fnr - fpr`` through zero, linearly interpolated between the two ROC
  points around it. The returned threshold is the score threshold of the ROC point
  nearest to the crossing (finite; the ``+inf`` start point maps to the top score).

  Returns:
    ``(eer, threshold)``; ``(nan, nan)`` with a warning for single-class input.
  """
  labels_b, scores_arr = _binary_inputs(labels, scores)
  if _single_class(labels_b, "Equal error rate"):
    return float("nan"), float("nan")
  fpr, tpr, thresholds = roc_curve(labels, scores)
  fnr = 1.0 - tpr
  diff = fnr - fpr  # starts at 1 (fpr=0, fnr=1), ends at -1; non-increasing
  i = int(np.flatnonzero(diff <= 0)[0])  # first point at or past the crossing
  if diff[i] == 0 or i == 0:
    eer = fpr[i]
    j = i
  else:
    # Crossing between points i-1 (diff > 0) and i (diff <= 0).
    a = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = fpr[i - 1] + a * (fpr[i] - fpr[i - 1])
    j = i if a >= 0.5 else i - 1
  th = thresholds[j]
  if not np.isfinite(th):
    th = scores_arr.max()
  return float(eer), float(th)


def confusion_matrix(y_true: Array, y_pred: Array, num_classes: int | None = None) -> np.ndarray:
  """``[num_classes, num_classes]`` counts; rows = true class, columns = predicted class.

  For binary labels this is ``[[tn, fp], [fn, tp]]``. ``num_classes`` defaults to
  ``max(label) + 1`` over both arrays (at least 2).
  """
  y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
  y_pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred differ in size: {y_true.shape} vs {y_pred.shape}")
  if y_true.size and (y_true.min() < 0 or y_pred.min() < 0):
    raise ValueError("class labels must be non-negative integers")
  if num_classes is None:
    num_classes = max(2, int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)
  if y_true.size and max(y_true.max(), y_pred.max()) >= num_classes:
    raise ValueError(f"label >= num_classes={num_classes}")
  cm = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(cm, (y_true, y_pred), 1)
  return cm


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
  num = np.asarray(num, dtype=np.float64)
  den = np.asarray(den, dtype=np.float64)
  out = np.full(np.broadcast(num, den).shape, float(zero_division))
  np.divide(num, den, out=out, where=den > 0)
  return out


def classification_report(
  y_true: Array,
  y_pred: Array,
  *,
  num_classes: int | None = None,
  class_names: Sequence[str] | None = None,
  zero_division: float = 0.0,
) -> dict[str, Any]:
  """Accuracy and per-class / macro / weighted precision, recall, F1.

  Args:
    y_true: ``[n]`` integer class labels.
    y_pred: ``[n]`` integer predicted classes.
    num_classes: number of classes (default ``max label + 1``, at least 2).
    class_names: optional names used as keys of ``per_class`` (default ``"0"``, ``"1"``...).
    zero_division: value used for precision (no predicted samples of a class), recall (no
      true samples) and F1 (precision + recall == 0). ``0.0`` (default) or ``nan``.

  Returns:
    ``{"accuracy", "per_class": {name: {"precision", "recall", "f1", "support"}},
    "macro": {...}, "weighted": {...}, "confusion_matrix", "support"}``. Macro averages
    are unweighted means over classes; weighted averages use the true-class supports (and
    equal ``zero_division`` when there are no samples). With ``zero_division = nan`` the
    averages are ``nan`` when any class is undefined.
  """
  cm = confusion_matrix(y_true, y_pred, num_classes)
  k = cm.shape[0]
  if class_names is None:
    class_names = [str(i) for i in range(k)]
  if len(class_names) != k:
    raise ValueError(f"{len(class_names)} class names for {k} classes")
  tp = np.diag(cm).astype(np.float64)
  support = cm.sum(axis=1).astype(np.float64)
  predicted = cm.sum(axis=0).astype(np.float64)
  precision = _safe_div(tp, predicted, zero_division)
  recall = _safe_div(tp, support, zero_division)
  f1 = _safe_div(2 * precision * recall, precision + recall, zero_division)
  total = support.sum()
  accuracy = float(tp.sum() / total) if total > 0 else float(zero_division)
  per_class = {
    name: {
      "precision": float(precision[i]),
      "recall": float(recall[i]),
      "f1": float(f1[i]),
      "support": int(support[i]),
    }
    for i, name in enumerate(class_names)
  }

  def _avg(values: np.ndarray, weights: np.ndarray | None) -> float:
    if weights is None:
      return float(np.mean(values))
    if weights.sum() == 0:
      return float(zero_division)
    return float(np.sum(values * weights) / weights.sum())

  macro = {"precision": _avg(precision, None), "recall": _avg(recall, None), "f1": _avg(f1, None)}
  weighted = {
    "precision": _avg(precision, support),
    "recall": _avg(recall, support),
    "f1": _avg(f1, support),
  }
  return {
    "accuracy": accuracy,
    "per_class": per_class,
    "macro": macro,
    "weighted": weighted,
    "confusion_matrix": cm,
    "support": int(total),
  }


def moving_average_alarm(probs: Array, window: int = 90, threshold: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
  """Alarm state from a trailing moving average of per-frame probabilities.

  ``avg[t]`` is the mean of ``probs[max(0, t - window + 1) : t + 1]`` (the first frames
  average over what has been seen so far, like a bounded queue that is still filling);
  the alarm is on where ``avg[t] > threshold``. Defaults (90, 0.4) follow the authors'
  public code (see docs/hybrid.md).

  Args:
    probs: ``[t]`` per-frame anomaly probabilities of one video, in time order.
    window: number of most recent frames averaged (>= 1).
    threshold: alarm threshold on the moving average.

  Returns:
    ``(avg [t] float64, alarm [t] bool)``.
  """
  if window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  probs = np.asarray(probs, dtype=np.float64)
  if probs.ndim != 1:
    raise ValueError(f"expected probs of rank 1 [time], got shape {probs.shape}")
  # Direct window sums (no running cumulative sum, whose rounding drifts on long videos).
  sums = np.convolve(probs, np.ones(window))[: probs.size]
  counts = np.minimum(np.arange(1, probs.size + 1), window)
  avg = sums / counts
  return avg, avg > threshold
