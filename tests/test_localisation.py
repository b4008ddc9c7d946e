"""Localisation metrics (``vad_jax/localisation.py``) against values computed by hand on
frames of 4x4 and 8x8 pixels."""

import numpy as np
import pytest

from vad_jax import localisation, metrics


def _frame(shape, cells=(), value=1.0):
  """A ``shape`` array, ``value`` at the ``(row, col)`` cells."""
  out = np.zeros(shape)
  for cell in cells:
    out[cell] = value
  return out


# --------------------------------------------------------------------- pixel AUROC


def _pixel_example():
  """Two 4x4 frames: anomalous pixels scored 3 and 1; normal pixels 2, 1 and 28 zeros."""
  mask1, scores1 = _frame((4, 4), [(0, 0), (0, 1)]), np.zeros((4, 4))
  scores1[0, 0], scores1[0, 1], scores1[2, 2] = 3, 1, 2
  mask2, scores2 = np.zeros((4, 4)), _frame((4, 4), [(3, 3)], 1)
  return [(scores1, mask1), (scores2, mask2)]


def test_pixel_auroc_by_hand_and_exact_when_the_grid_separates_the_scores():
  acc = localisation.LocalisationAccumulator([0.5, 1.5, 2.5])
  for scores, mask in _pixel_example():
    acc.add(scores, mask)
  # Positive 3 beats all 30 negatives; positive 1 beats 28 zeros, ties with the 1 and
  # loses to the 2: (30 + 28.5) / (2 * 30).
  assert acc.result()["pixel_auroc"] == pytest.approx(58.5 / 60)
  labels = np.concatenate([m.ravel() for _, m in _pixel_example()])
  scores = np.concatenate([s.ravel() for s, _ in _pixel_example()])
  assert acc.result()["pixel_auroc"] == pytest.approx(metrics.roc_auc(labels, scores))


def test_pixel_auroc_is_the_auc_of_the_quantised_scores():
  acc = localisation.LocalisationAccumulator([1.5])  # 3, 2 -> bin 1; 1, 0 -> bin 0
  for scores, mask in _pixel_example():
    acc.add(scores, mask)
  # Positive in bin 1: beats 29, ties with the 2 -> 29.5; positive in bin 0: ties with 29 -> 14.5.
  assert acc.result()["pixel_auroc"] == pytest.approx(44 / 60)


def test_pixel_auroc_matches_the_exact_auc_on_random_frames_of_another_size():
  rng = np.random.default_rng(0)
  maps = rng.integers(0, 50, size=(6, 4, 4)).astype(np.float32)  # enlarged x2 to the masks
  masks = rng.random((6, 8, 8)) < 0.2
  masks[0] = False  # a normal frame too
  acc = localisation.LocalisationAccumulator(np.arange(-0.5, 50.5, 0.25), region_thresholds=[25.0])
  for score_map, mask in zip(maps, masks):
    acc.add(score_map, mask)
  big = np.stack([localisation.resize_map(m, (8, 8)) for m in maps])
  assert big.shape == (6, 8, 8) and big.min() >= 0 and big.max() <= 49
  quantised = np.searchsorted(acc.thresholds, big, side="right")
  assert acc.result()["pixel_auroc"] == pytest.approx(metrics.roc_auc(masks.ravel(), quantised.ravel()))
  assert acc.pixels.shape == (2, acc.thresholds.size + 1)  # per bin, whatever the frame count


def test_resize_map_is_bilinear_to_the_mask_size():
  small = np.array([[0.0, 1.0], [0.0, 1.0]])
  big = localisation.resize_map(small, (2, 4))
  assert big.shape == (2, 4) and big.dtype == np.float32
  np.testing.assert_allclose(big[0], [0.0, 0.25, 0.75, 1.0])
  with pytest.raises(ValueError, match=r"must be \[height, width\]"):
    localisation.resize_map(np.zeros((2, 2, 3)), (4, 4))


# ------------------------------------------------------- UCSD pixel-level criterion


def _criterion_frames():
  """4x4 frames. F1: 5 anomalous pixels scored 0.9, 0.8, 0.3, 0.2, 0.1. F2: 2 anomalous
  pixels scored 0.1 and an alarm of 0.9 on another object. F3: normal, one pixel 0.5.
  F4: normal, all 0."""
  f1_mask = _frame((4, 4), [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)])
  f1 = np.zeros((4, 4))
  f1[0, :4], f1[1, 0] = [0.9, 0.8, 0.3, 0.2], 0.1
  f2_mask = _frame((4, 4), [(3, 2), (3, 3)])
  f2 = _frame((4, 4), [(3, 2), (3, 3)], 0.1) + _frame((4, 4), [(0, 0)], 0.9)
  f3 = _frame((4, 4), [(2, 1)], 0.5)
  return [(f1, f1_mask), (f2, f2_mask), (f3, np.zeros((4, 4))), (np.zeros((4, 4)), np.zeros((4, 4)))]


def test_pixel_criterion_by_hand():
  acc = localisation.LocalisationAccumulator([0.15, 0.25, 0.45, 0.7, 0.85])
  for scores, mask in _criterion_frames():
    acc.add(scores, mask)
  # F1 has 4/5, 3/5, 2/5 (exactly 40 %: detected), 2/5 and 1/5 of its pixels flagged; F2
  # none of its own, whatever its alarm elsewhere; F3 is a false positive up to 0.5.
  np.testing.assert_array_equal(acc.criterion[1], [1, 1, 1, 1, 0])
  np.testing.assert_array_equal(acc.criterion[0], [1, 1, 1, 0, 0])
  fpr, tpr = acc.criterion_roc()
  np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 0.5, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 0, 0.5, 0.5, 0.5, 0.5, 1])
  result = acc.result()
  assert result["pixel_criterion_auc"] == pytest.approx(0.25 + 0.375)
  assert result["pixel_criterion_eer"] == pytest.approx(0.5)
  assert result["mask_frames"] == 4 and result["anomalous_mask_frames"] == 2


# ----------------------------------------------------------------------- RBDC, TBDC


def _region_frames():
  """8x8 frames of one video. A: a 2x2 object, alarm exactly on it. B: the object
  elsewhere, alarm on the other object's place (wrong object). C: normal, a 2x2 blob of
  0.5. D: normal, all 0."""
  obj = [(1, 1), (1, 2), (2, 1), (2, 2)]
  other = [(5, 5), (5, 6), (6, 5), (6, 6)]
  a = (_frame((8, 8), obj, 0.9), _frame((8, 8), obj))
  b = (_frame((8, 8), obj, 0.9), _frame((8, 8), other))
  c = (_frame((8, 8), [(0, 6), (0, 7), (1, 6), (1, 7)], 0.5), np.zeros((8, 8)))
  return [a, b, c, (np.zeros((8, 8)), np.zeros((8, 8)))]


def test_an_alarm_on_the_wrong_object_is_a_false_positive_region_not_a_detection():
  acc = localisation.LocalisationAccumulator([0.5], region_thresholds=[0.35, 0.75])
  scores, mask = _region_frames()[1]
  acc.add(scores, mask, video="v")
  np.testing.assert_array_equal(acc.detected, [0, 0])
  np.testing.assert_array_equal(acc.false_regions, [1, 1])
  assert acc.gt_regions == 1


def test_rbdc_and_tbdc_by_hand():
  acc = localisation.LocalisationAccumulator([0.5], region_thresholds=[0.35, 0.75])
  for scores, mask in _region_frames():
    acc.add(scores, mask, video="v")
  fp, rbdr, tbdr = acc.region_curves()
  # At 0.75: A detected, B's alarm a false positive (1 per 4 frames); at 0.35 also C's blob.
  np.testing.assert_allclose(fp, [0, 0.25, 0.5])
  np.testing.assert_allclose(rbdr, [0, 0.5, 0.5])
  np.testing.assert_allclose(tbdr, [0, 0.5, 0.5])  # A's and B's objects do not overlap: 2 tracks
  result = acc.result()
  # (0, 0) -> (0.25, 0.5) -> (0.5, 0.5), then flat to 1: 0.0625 + 0.125 + 0.25.
  assert result["rbdc"] == pytest.approx(0.4375)
  assert result["tbdc"] == pytest.approx(0.4375)
  # Up to 0.05 false positives per frame: the rate reaches 0.1 at 0.05, area 0.0025 / 0.05.
  assert result["rbdc_005"] == pytest.approx(0.05)
  assert result["gt_regions"] == 2 and result["gt_tracks"] == 2


def test_a_response_split_in_two_regions_on_one_object_is_no_false_positive():
  mask = _frame((4, 8), [(r, c) for r in (1, 2) for c in range(1, 5)])  # box 2 x 4
  scores = _frame((4, 8), [(1, 1), (2, 1), (1, 4), (2, 4)], 0.9)  # two 2 x 1 blobs, IoU 0.25 each
  acc = localisation.LocalisationAccumulator([0.5])
  acc.add(scores, mask)
  np.testing.assert_array_equal(acc.detected, [1])
  np.testing.assert_array_equal(acc.false_regions, [0])


@pytest.mark.parametrize("frames, detected_tracks", [(10, 1.0), (11, 0.0)])
def test_tracks_link_overlapping_regions_and_need_ten_percent_detected(frames, detected_tracks):
  """One object over ``frames`` frames, detected in the first only: 1/10 of a track is
  enough (alpha = 0.1), 1/11 is not; without the video name every region is a track."""
  mask = _frame((4, 4), [(1, 1), (1, 2)])
  linked = localisation.LocalisationAccumulator([0.5])
  unlinked = localisation.LocalisationAccumulator([0.5])
  for i in range(frames):
    scores = mask * 0.9 if i == 0 else np.zeros((4, 4))
    linked.add(scores, mask, video="v")
    unlinked.add(scores, mask)
  assert len(linked.track_length) == 1 and linked.track_length == [frames]
  assert linked.region_curves()[2][-1] == pytest.approx(detected_tracks)
  assert linked.region_curves()[1][-1] == pytest.approx(1 / frames)
  assert len(unlinked.track_length) == frames
  assert unlinked.region_curves()[2][-1] == pytest.approx(1 / frames)


def test_area_up_to_takes_the_best_rate_at_no_more_false_positives():
  # Regions merging at a lower threshold: fewer false positives with a higher rate.
  fp, rate = np.array([0.0, 0.5, 0.4]), np.array([0.0, 0.2, 0.6])
  # Ordered (0, 0), (0.4, 0.6), (0.5, 0.6 kept over 0.2), then flat to 1.
  assert localisation.area_up_to(fp, rate, 1.0) == pytest.approx(0.12 + 0.06 + 0.3)


# ------------------------------------------------------------------------ edge cases


def test_no_anomalous_frame_gives_nan_with_a_warning():
  acc = localisation.LocalisationAccumulator([0.5])
  acc.add(_frame((4, 4), [(0, 0)], 0.9), np.zeros((4, 4)))
  acc.add(np.zeros((4, 4)), np.zeros((4, 4)))
  with pytest.warns(metrics.UndefinedMetricWarning):
    result = acc.result()
  assert np.isnan(result["pixel_auroc"]) and np.isnan(result["pixel_criterion_auc"])
  assert np.isnan(result["rbdc"]) and np.isnan(result["tbdc"])
  assert result["gt_regions"] == 0 and result["mask_frames"] == 2
  np.testing.assert_array_equal(acc.false_regions, [1])


def test_only_anomalous_frames_leave_the_pixel_auroc_and_rbdc_defined():
  acc = localisation.LocalisationAccumulator([0.5])
  acc.add(_frame((4, 4), [(0, 0)], 0.9), _frame((4, 4), [(0, 0)]))
  with pytest.warns(metrics.UndefinedMetricWarning, match="pixel-level criterion"):
    result = acc.result()
  assert result["pixel_auroc"] == 1.0 and result["rbdc"] == 1.0
  assert np.isnan(result["pixel_criterion_auc"])


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="strictly increasing"):
    localisation.LocalisationAccumulator([0.5, 0.2])
  acc = localisation.LocalisationAccumulator([0.5])
  with pytest.raises(ValueError, match="NaN or inf"):
    acc.add(np.full((4, 4), np.nan), np.zeros((4, 4)))
  with pytest.raises(ValueError, match=r"a mask must be \[height, width\]"):
    acc.add(np.zeros((4, 4)), np.zeros((1, 4, 4)))
