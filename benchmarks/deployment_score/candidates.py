"""The candidate set compared by run_all.py (fixed at 21:40, before the final table)."""

import score_lib as sl


def _placeprior_cal():
  c = sl.PlacePrior(prior="quant", q=0.99, sigma=1.0, name="per-region quantile exceedance (calibration frames) cell8/4 a=0.5 q=0.99 sig=1")
  c.source = "cal"
  c.stride, c.region_cell, c.loc_stride = 4, 4, 4
  return c


def all_candidates():
  lb = lambda **kw: sl.LevelBlock(stride=4, **kw)
  return [
    # today's and frame-wide baselines
    sl.Concentration(),
    sl.FrameMSE(),
    # per-place statistics (the proposal), calibration frames
    sl.BlockZ(8, shrink=0.5, name="per-region z (calibration frames) cell8 shrink0.5"),
    sl.BlockZ(8, shrink=0.5, smooth_sigma=1.0, name="per-region z (calibration frames) cell8 shrink0.5 smoothed"),
    _placeprior_cal(),
    sl.PlaceClip(q=0.5, name="one-sided per-place level (calibration frames) cell8/4 a=0.5 q=0.5"),
    # per-place statistics from the training frames
    sl.PlacePrior(prior="quant", q=0.99, sigma=1.0, stride=4, name="per-region quantile exceedance (training frames) cell8/4 a=0.5 q=0.99 sig=1"),
    sl.PlaceClip(q=0.75, sigma=1.0, source="train", name="one-sided per-place level (training frames) cell8/4 a=0.5 q=0.75 sig=1"),
    sl.PlacePrior(prior="motion", beta=0.25, stride=4, name="motion prior (training frames) cell8/4 a=0.5 b=0.25"),
    # memory distances per cell, ratio to motion
    sl.MemCells(streams="s", name="memory distance per cell (spatial, bottleneck) per-place z"),
    sl.MemCells(streams="st", name="memory distance per cell (both streams) per-place z"),
    sl.Ratio(8, stride=4, name="error/motion ratio cell8/4"),
    # levelled block error, no per-place statistics
    lb(alpha=1.0, name="levelled block cell8/4 a=1 (concentration w/o memory)"),
    sl.LevelBlock(alpha=0.5, name="levelled block cell8 a=0.5"),
    lb(alpha=0.5, name="levelled block cell8/4 a=0.5"),
    lb(alpha=0.0, name="levelled block cell8/4 a=0 (worst block)"),
    lb(alpha=0.5, err="err_s", name="levelled block cell8/4 a=0.5 spatial stream"),
    lb(alpha=0.5, lam=0.8, name="levelled block cell8/4 a=0.5 + memory distances (lam 0.8)"),
    sl.Combo([lb(alpha=0.5), lb(alpha=0.5, err="err_s")], name="levelled block a=0.5 fused + spatial (z sum)"),
    sl.Combo([sl.FrameMSE(), lb(alpha=0.5)], name="frame-wide mean error + levelled block a=0.5 (z sum)"),
    # crowd correction, per-place tracking, causal per-video baseline
    sl.CrowdCorrected(lb(alpha=0.5), name="crowd-corrected levelled block cell8/4 a=0.5"),
    sl.CrowdCorrected(lb(alpha=0.0), name="crowd-corrected worst block cell8/4 a=0"),
    sl.CrowdCorrected(sl.PlaceClip(q=0.5), name="crowd-corrected one-sided per-place (calibration) a=0.5 q=0.5"),
    sl.Tracked(lb(alpha=0.5), 5, 3, name="levelled block cell8/4 a=0.5, per-place causal track 5 frames"),
    sl.Running(lb(alpha=0.5), name="levelled block cell8/4 a=0.5, causal per-place baseline of the video (W=50)"),
  ]


SETS = {"all": all_candidates}
