"""``evaluation.pixel_level_metrics`` on fake anomaly maps: a perfect detector, its
inverse, frames without masks left out, grids that follow the scores' scale."""

import numpy as np
import pytest

from vad_jax.dual_stream import evaluation


def _fake_test_split():
  """Two videos of 8x8 frames: video 0 an object moving one pixel a frame over frames
  0-2, then a normal frame; video 1 a normal frame, then a second object."""
  masks = np.zeros((6, 8, 8), np.uint8)
  for f in range(3):
    masks[f, 2:4, 1 + f : 3 + f] = 1
  masks[5, 5:7, 5:8] = 1
  return masks, np.array([0, 0, 0, 0, 1, 1])


def test_a_perfect_map_scores_one_and_its_inverse_zero():
  masks, videos = _fake_test_split()
  perfect = evaluation.pixel_level_metrics(masks.astype(float), masks, np.ones(6, bool), videos)
  for key in ("pixel_auroc", "pixel_criterion_auc", "rbdc", "tbdc", "rbdc_005", "tbdc_005"):
    assert perfect[key] == pytest.approx(1.0), key
  assert perfect["pixel_criterion_eer"] == pytest.approx(0.0)
  assert perfect["mask_frames"] == 6 and perfect["anomalous_mask_frames"] == 4
  assert perfect["gt_regions"] == 4 and perfect["gt_tracks"] == 2  # video 0's object is one track
  inverse = evaluation.pixel_level_metrics(1.0 - masks, masks, np.ones(6, bool), videos)
  assert inverse["pixel_auroc"] == pytest.approx(0.0) and inverse["pixel_criterion_auc"] == pytest.approx(0.0)
  assert inverse["rbdc"] < 0.5


def test_frames_without_masks_are_left_out_and_the_grids_follow_the_scale():
  masks, videos = _fake_test_split()
  rng = np.random.default_rng(0)
  maps = masks * 0.3 + rng.random((6, 8, 8)) * 0.5  # overlapping classes: figures below 1
  reference = evaluation.pixel_level_metrics(maps, masks, np.ones(6, bool), videos)
  assert 0.5 < reference["pixel_auroc"] < 1.0
  # Two more frames without masks, scored high everywhere: no effect.
  with_unmasked = evaluation.pixel_level_metrics(
    np.concatenate([maps, np.full((2, 8, 8), 9.0)]),
    np.concatenate([masks, np.zeros((2, 8, 8), np.uint8)]),
    np.array([True] * 6 + [False] * 2),
    np.concatenate([videos, [1, 1]]),
  )
  assert with_unmasked == pytest.approx(reference)
  # Scores in other units give the same figures: the default grids follow them.
  assert evaluation.pixel_level_metrics(maps * 100 + 5, masks, np.ones(6, bool), videos) == pytest.approx(reference)
  # Maps at half the masks' resolution are enlarged to them.
  half = evaluation.pixel_level_metrics(masks[:, ::2, ::2].astype(float), masks, np.ones(6, bool), videos)
  assert half["pixel_auroc"] > 0.8
  assert evaluation.pixel_level_metrics(maps, masks, np.zeros(6, bool), videos) == {}
