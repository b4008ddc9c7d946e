"""Host-side metrics against hand-computed values and edge cases."""

import warnings

import numpy as np
import pytest

from vad_jax.metrics import (
  UndefinedMetricWarning,
  classification_report,
  confusion_matrix,
  equal_error_rate,
  mann_whitney_auc,
  moving_average_alarm,
  roc_auc,
  roc_curve,
  undefined_auc_reason,
)


def test_roc_curve_groups_ties():
  labels = [0, 1, 1, 0, 1]
  scores = [0.1, 0.4, 0.4, 0.4, 0.9]
  fpr, tpr, th = roc_curve(labels, scores)
  # Distinct thresholds inf, .9, .4, .1; the three tied .4s move together.
  np.testing.assert_array_equal(th, [np.inf, 0.9, 0.4, 0.1])
  np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
  # Pairs (pos, neg): 0.9 beats both, each 0.4 beats 0.1 and ties 0.4:
  # (2 + 1.5 + 1.5) / 6.
  assert roc_auc(labels, scores) == pytest.approx(5 / 6)


def test_auc_known_rankings_and_mann_whitney():
  assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
  assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
  assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
  assert roc_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.75)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 500)
  scores = np.round(rng.random(500) + 0.3 * labels, 1)  # many ties
  assert roc_auc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores), abs=1e-12)
  # Brute force over all positive/negative pairs.
  pos, neg = scores[labels == 1], scores[labels == 0]
  brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
  assert roc_auc(labels, scores) == pytest.approx(brute, abs=1e-12)


def test_single_class_is_nan_with_warning():
  with pytest.warns(UndefinedMetricWarning, match="only one class"):
    assert np.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
  with pytest.warns(UndefinedMetricWarning):
    eer, th = equal_error_rate([0, 0], [0.3, 0.2])
  assert np.isnan(eer) and np.isnan(th)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fpr, tpr, _ = roc_curve([0, 0], [0.3, 0.2])
  assert np.isnan(tpr).all() and fpr[-1] == 1.0
  with pytest.warns(UndefinedMetricWarning, match="empty"):
    assert np.isnan(roc_auc([], []))
  with pytest.raises(ValueError, match="0/1"):
    roc_auc([0, 2], [0.1, 0.2])
  with pytest.raises(ValueError, match="NaN"):
    roc_auc([0, 1], [0.1, np.nan])


def test_equal_error_rate():
  # Perfect separation: EER 0.
  eer, th = equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
  assert eer == 0.0 and 0.2 < th <= 0.8
  # ROC points (fpr, tpr): (0,0), (0,.5), (.5,.5), (.5,1), (1,1) for scores
  # .9(+) .8(-) .7(+) .6(-): fnr - fpr is 0 at (.5, .5): EER 0.5.
  eer, _ = equal_error_rate([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
  assert eer == pytest.approx(0.5)
  # Crossing inside a segment: a positive and a negative tied at .8 give the diagonal
  # segment (0, .5) -> (.5, 1); fnr = fpr on it at fpr = .25.
  eer, th = equal_error_rate([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
  assert eer == pytest.approx(0.25) and th == pytest.approx(0.8)
  # Crossing where the ROC is vertical: (.5, 1/3) -> (.5, 1): EER = .5.
  eer, _ = equal_error_rate([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.7, 0.1])
  assert eer == pytest.approx(0.5)


def test_confusion_matrix_and_report_hand_computed():
  y_true = [0, 0, 0, 1, 1, 1, 1, 0]
  y_pred = [0, 1, 0, 1, 1, 0, 1, 0]
  cm = confusion_matrix(y_true, y_pred)
  np.testing.assert_array_equal(cm, [[3, 1], [1, 3]])  # [[tn, fp], [fn, tp]]
  rep = classification_report(y_true, y_pred, class_names=["normal", "anomaly"])
  assert rep["accuracy"] == pytest.approx(6 / 8)
  for name in ("normal", "anomaly"):
    assert rep["per_class"][name]["precision"] == pytest.approx(0.75)
    assert rep["per_class"][name]["recall"] == pytest.approx(0.75)
    assert rep["per_class"][name]["support"] == 4
  # Unbalanced: true [1 x 2, 0 x 4]; predicted positives: one right, one wrong.
  y_true = [1, 1, 0, 0, 0, 0]
  y_pred = [1, 0, 1, 0, 0, 0]
  rep = classification_report(y_true, y_pred)
  p1, r1 = 1 / 2, 1 / 2
  p0, r0 = 3 / 4, 3 / 4
  f1 = lambda p, r: 2 * p * r / (p + r)
  assert rep["per_class"]["1"]["f1"] == pytest.approx(f1(p1, r1))
  assert rep["macro"]["precision"] == pytest.approx((p0 + p1) / 2)
  assert rep["weighted"]["recall"] == pytest.approx((4 * r0 + 2 * r1) / 6)
  assert rep["weighted"]["f1"] == pytest.approx((4 * f1(p0, r0) + 2 * f1(p1, r1)) / 6)
  np.testing.assert_array_equal(rep["confusion_matrix"], [[3, 1], [1, 1]])


def test_report_zero_division_and_single_class():
  # Nothing predicted positive and no positives: class 1 precision/recall/F1 are 0/0.
  rep = classification_report([0, 0, 0], [0, 0, 0])
  assert rep["accuracy"] == 1.0
  assert rep["per_class"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
  assert rep["per_class"]["0"]["f1"] == 1.0
  assert rep["macro"]["f1"] == pytest.approx(0.5)
  assert rep["weighted"]["f1"] == pytest.approx(1.0)  # support-weighted: class 1 has none
  rep = classification_report([0, 0, 0], [0, 0, 0], zero_division=np.nan)
  assert np.isnan(rep["per_class"]["1"]["precision"]) and np.isnan(rep["macro"]["f1"])
  # All predicted negative with positives present: precision of class 1 is 0/0.
  rep = classification_report([1, 1, 0], [0, 0, 0])
  assert rep["per_class"]["1"]["precision"] == 0.0 and rep["per_class"]["1"]["recall"] == 0.0
  np.testing.assert_array_equal(confusion_matrix([1, 1, 0], [0, 0, 0]), [[1, 0], [2, 0]])
  np.testing.assert_array_equal(confusion_matrix([2, 0], [1, 0]), [[1, 0, 0], [0, 0, 0], [0, 1, 0]])
  with pytest.raises(ValueError):
    confusion_matrix([0, 1], [0])


def test_moving_average_alarm():
  probs = [0.0, 0.75, 0.75, 0.0, 0.0, 0.5]
  avg, alarm = moving_average_alarm(probs, window=2, threshold=0.375)
  # First frame: mean of what has been seen; then the last two frames.
  np.testing.assert_array_equal(avg, [0.0, 0.375, 0.75, 0.375, 0.0, 0.25])
  np.testing.assert_array_equal(alarm, [False, False, True, False, False, False])  # strict >
  avg, _ = moving_average_alarm([0.0, 0.6, 0.9, 0.3], window=3)
  np.testing.assert_allclose(avg, [0.0, 0.3, 0.5, 0.6])
  avg, _ = moving_average_alarm(np.full(200, 0.5))
  np.testing.assert_allclose(avg, 0.5)
  with pytest.raises(ValueError):
    moving_average_alarm(probs, window=0)


@pytest.mark.parametrize(
  "count, anomalous, reason",
  [
    (0, 0, "no labelled frames to score: an AUC needs labels"),
    (1, 1, "all 1 scored frames are anomalous: an AUC needs both classes"),
    (5, 0, "all 5 scored frames are normal: an AUC needs both classes"),
    (5, 2, ""),
  ],
)
def test_the_reason_an_auc_is_undefined(count, anomalous, reason):
  assert undefined_auc_reason(count, anomalous) == reason
