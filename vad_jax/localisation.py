"""Localisation metrics on pixel masks (host side, numpy): pixel-level AUROC, the UCSD
pixel-level criterion, and the region- and track-based detection criteria (RBDC, TBDC).

``LocalisationAccumulator.add(score_map, mask, video)`` takes one frame at a time; what it
keeps grows with the number of thresholds and of ground-truth tracks, never with the
number of frames or pixels. ``result()`` gives the figures, ``*_curve()`` the curves.

Inputs and conventions:

* Per frame a score map ``[h, w]`` (larger = more anomalous) and its mask ``[H, W]``
  (nonzero = anomalous pixel). Only frames that have a mask are added. A map of another
  size is resized to the mask's bilinearly (``resize_map``): the ground truth is defined
  at the mask's (native) resolution, and shrinking masks instead would change what is
  evaluated (thin regions vanish or merge, the 40 % rule counts other pixels, region
  counts change), while a smooth score map loses nothing by being enlarged.
* One increasing grid of thresholds ``t_0 < ... < t_{K-1}`` (and optionally a coarser one
  for the regions, which cost a labelling per threshold and frame); a pixel is flagged at
  ``t_k`` when its score is ``>= t_k``. The curves are exact at the grid's thresholds and
  linear between them, with the end points "nothing flagged" (threshold +inf) and
  "everything flagged" (-inf). Undefined figures are ``nan`` with an
  ``metrics.UndefinedMetricWarning``.

What is computed (own statement of the definitions; references in CITATIONS.bib):

* ``pixel_auroc``: every pixel of every frame is one sample, labelled by its mask. Counts
  per threshold bin are accumulated, so the area equals the exact ROC AUC of the scores
  quantised to the grid (pixels in one bin are ties, counted half); it is the exact
  AUROC when no bin holds two different scores of different classes.
* UCSD pixel-level criterion (Mahadevan et al., CVPR 2010; Li et al., TPAMI 2014): at a
  threshold, a frame whose mask has anomalous pixels is a true positive when at least
  40 % of those pixels are flagged (otherwise a miss, whatever else is flagged); a frame
  with an empty mask is a false positive when any pixel is flagged. TPR = true positives /
  anomalous frames, FPR = false positives / normal frames. ``pixel_criterion_auc`` is the
  trapezoidal area of that ROC, ``pixel_criterion_eer`` the FPR where FPR = 1 - TPR.
* RBDC / TBDC (Ramachandra and Jones, WACV 2020, as in the evaluation script of
  Georgescu et al., TPAMI 2021, which the former checked): ground-truth regions are the
  8-connected components of the mask, predicted regions at a threshold the 8-connected
  components of the flagged pixels (of at least ``min_area`` pixels); regions are
  compared by the IoU of their bounding boxes. A ground-truth region is detected when a
  predicted region of its frame has IoU >= beta = 0.1 with it; a predicted region is a
  false positive when its IoU with every ground-truth region of its frame is < beta (the
  paper's rule; the script also counts a second region on an already detected
  ground-truth region as one). RBDR = detected regions / ground-truth regions, FPR =
  false-positive regions / frames (all frames added). Ground-truth tracks: masks carry
  no track numbers, so a region continues the track of the region of the previous frame
  of its video that it overlaps most (in pixels), else starts a new track; a track is
  detected when at least alpha = 10 % of its regions are; TBDR = detected tracks /
  tracks. Each curve starts at (0, 0); where fewer false positives do not come with a
  lower threshold (regions merge), a point's detection rate is the best of the points
  with no more false positives. ``rbdc`` / ``tbdc`` are the areas under RBDR / TBDR for
  0 to 1 false positives per frame (the literature's figure; the curve is cut at 1 by
  interpolation or, if it stops short, extended with its last rate, as in the script),
  ``rbdc_005`` / ``tbdc_005`` the areas for 0 to 0.05 divided by 0.05.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from vad_jax.metrics import UndefinedMetricWarning

DETECTION_FRACTION = 0.4  # UCSD pixel-level criterion: share of anomalous pixels flagged
REGION_IOU = 0.1  # beta: box IoU for a region to count as detected
TRACK_FRACTION = 0.1  # alpha: share of a track's regions detected for the track to count
FALSE_POSITIVE_LIMITS = {"": 1.0, "_005": 0.05}  # key suffix -> false positives per frame
_EIGHT = np.ones((3, 3), dtype=bool)


def resize_map(score_map: Any, size: Sequence[int]) -> np.ndarray:
  """A ``[h, w]`` score map as float32 ``[H, W]`` with ``size == (H, W)``; bilinear."""
  score_map = np.asarray(score_map, dtype=np.float32)
  if score_map.ndim != 2:
    raise ValueError(f"a score map must be [height, width], got shape {score_map.shape}")
  height, width = (int(s) for s in size)
  if score_map.shape == (height, width):
    return score_map
  image = Image.fromarray(score_map, mode="F").resize((width, height), Image.Resampling.BILINEAR)
  return np.asarray(image, dtype=np.float32)


def regions(binary: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """8-connected components of a ``[H, W]`` boolean image.

  Returns:
    ``(labels, boxes)``: int32 ``[H, W]`` (0 background, ``1..n`` the components in
    ``boxes``' order; components under ``min_area`` pixels are 0) and int64 ``[n, 4]``
    half-open bounding boxes ``(y0, x0, y1, x1)``.
  """
  labels, count = ndimage.label(binary, structure=_EIGHT)
  if count and min_area > 1:
    small = np.flatnonzero(np.bincount(labels.ravel(), minlength=count + 1)[1:] < min_area) + 1
    if small.size:
      labels[np.isin(labels, small)] = 0
      labels, count = ndimage.label(labels > 0, structure=_EIGHT)
  slices = ndimage.find_objects(labels)
  boxes = np.array([(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices], dtype=np.int64)
  return labels.astype(np.int32), boxes.reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """``[n, m]`` IoU of half-open boxes ``a`` ``[n, 4]`` and ``b`` ``[m, 4]`` (y0, x0, y1, x1)."""
  a, b = np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[None, :, :]
  height = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
  width = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
  inter = height * width
  area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
  area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / np.maximum(area_a + area_b - inter, 1e-12)


def _grid(thresholds: Any, what: str) -> np.ndarray:
  grid = np.asarray(thresholds, dtype=np.float64).reshape(-1)
  if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
    raise ValueError(f"{what} must be a non-empty, finite, strictly increasing 1-D array, got {grid[:8]}")
  return grid


def _undefined(what: str, why: str) -> float:
  warnings.warn(f"{what} is undefined: {why}; returning nan.", UndefinedMetricWarning, stacklevel=3)
  return float("nan")


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
  return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
  """FPR where FPR = 1 - TPR on the piecewise linear curve (fpr, tpr both increasing)."""
  gap = fpr - (1.0 - tpr)  # -1 at (0, 0), +1 at (1, 1), non-decreasing
  i = int(np.argmax(gap >= 0))
  if i == 0:
    return float(fpr[0])
  w = -gap[i - 1] / (gap[i] - gap[i - 1])
  return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def area_up_to(fp_per_frame: np.ndarray, rate: np.ndarray, limit: float) -> float:
  """Area under ``rate`` against false positives per frame from 0 to ``limit``, / ``limit``.

  Points are ordered by false positives (the first one (0, 0)); each point's rate is the
  best rate of the points with no more false positives; the curve is cut at ``limit``
  by linear interpolation, or extended at its last rate when it stops short of it.
  """
  order = np.lexsort((-rate, fp_per_frame))  # by false positives, the better rate first
  x, y = fp_per_frame[order], np.maximum.accumulate(rate[order])
  inside = x <= limit
  xs, ys = x[inside], y[inside]
  if inside.all():
    xs, ys = np.append(xs, limit), np.append(ys, ys[-1])
  else:
    j = int(np.argmin(inside))  # the first point past the limit
    w = (limit - x[j - 1]) / (x[j] - x[j - 1])
    xs, ys = np.append(xs, limit), np.append(ys, y[j - 1] + w * (y[j] - y[j - 1]))
  return _trapezoid(xs, ys) / limit


class LocalisationAccumulator:
  """Frame-by-frame accumulation of the module's metrics (see the module docstring).

  Args:
    thresholds: ``[K]`` increasing score thresholds of the pixel AUROC and criterion.
    region_thresholds: ``[R]`` increasing thresholds of the region criteria (default
      ``thresholds``); each costs one connected-component labelling per frame whose
      maximum score reaches it.
    detection_fraction, region_iou, track_fraction: 0.4, beta and alpha above.
    min_area: predicted regions under this many pixels are ignored.
  """

  def __init__(
    self,
    thresholds: Any,
    region_thresholds: Any = None,
    *,
    detection_fraction: float = DETECTION_FRACTION,
    region_iou: float = REGION_IOU,
    track_fraction: float = TRACK_FRACTION,
    min_area: int = 1,
  ):
    self.thresholds = _grid(thresholds, "thresholds")
    self.region_thresholds = _grid(thresholds if region_thresholds is None else region_thresholds, "region_thresholds")
    self.detection_fraction, self.region_iou = float(detection_fraction), float(region_iou)
    self.track_fraction, self.min_area = float(track_fraction), int(min_area)
    k, r = self.thresholds.size, self.region_thresholds.size
    self.pixels = np.zeros((2, k + 1), np.int64)  # [normal, anomalous] pixels per bin
    self.frames = np.zeros(2, np.int64)  # [normal, anomalous] frames
    self.criterion = np.zeros((2, k), np.int64)  # [false positive, true positive] frames per threshold
    self.detected = np.zeros(r, np.int64)  # detected ground-truth regions per threshold
    self.false_regions = np.zeros(r, np.int64)
    self.gt_regions = 0
    self.track_hits: list[np.ndarray] = []  # per track: regions detected per threshold
    self.track_length: list[int] = []
    self._previous: tuple[Any, np.ndarray, np.ndarray] | None = None  # video, labels, track ids

  def add(self, score_map: Any, mask: Any, video: Any = None) -> None:
    """Adds one frame: its ``[h, w]`` score map and ``[H, W]`` mask (nonzero anomalous).

    ``video`` names the frame's video: consecutive frames of one video, added in order,
    link their ground-truth regions into tracks; None leaves every region its own track.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
      raise ValueError(f"a mask must be [height, width], got shape {mask.shape}")
    scores = resize_map(score_map, mask.shape)
    if not np.all(np.isfinite(scores)):
      raise ValueError("the score map contains NaN or inf")
    anomalous = mask != 0
    bins = np.searchsorted(self.thresholds, scores, side="right")  # flagged at t_k iff bin > k
    k = self.thresholds.size
    self.pixels[1] += np.bincount(bins[anomalous], minlength=k + 1)
    self.pixels[0] += np.bincount(bins[~anomalous], minlength=k + 1)
    positives = int(anomalous.sum())
    if positives:
      flagged = positives - np.cumsum(np.bincount(bins[anomalous], minlength=k + 1))[:k]
      self.criterion[1] += flagged >= self.detection_fraction * positives - 1e-9
    else:
      self.criterion[0, : int(bins.max())] += 1
    self.frames[int(positives > 0)] += 1
    self._add_regions(scores, anomalous, video)

  def _add_regions(self, scores: np.ndarray, anomalous: np.ndarray, video: Any) -> None:
    gt_labels, gt_boxes = regions(anomalous)
    m = len(gt_boxes)
    hits = np.zeros((m, self.region_thresholds.size), bool)
    top = float(scores.max())
    for i, threshold in enumerate(self.region_thresholds):
      if threshold > top:
        break  # nothing flagged at this or any higher threshold
      _, boxes = regions(scores >= threshold, self.min_area)
      match = box_iou(boxes, gt_boxes) >= self.region_iou  # [predicted, ground truth]
      hits[:, i] = match.any(axis=0)
      self.false_regions[i] += int((~match.any(axis=1)).sum())
    self.detected += hits.sum(axis=0)
    self.gt_regions += m
    tracks = self._link(video, gt_labels, m)
    for j, track in enumerate(tracks):
      self.track_hits[track] += hits[j]
      self.track_length[track] += 1

  def _link(self, video: Any, labels: np.ndarray, m: int) -> np.ndarray:
    """Track ids of a frame's ``m`` ground-truth regions (``labels`` 1..m), new ones added."""
    tracks = np.full(m, -1, np.int64)
    previous = self._previous
    if m and video is not None and previous is not None and previous[0] == video and previous[2].size:
      _, before, before_tracks = previous
      both = (labels > 0) & (before > 0)
      n = before_tracks.size + 1
      overlap = np.bincount(labels[both] * n + before[both], minlength=(m + 1) * n).reshape(m + 1, n)[1:, 1:]
      linked = overlap.max(axis=1) > 0
      tracks[linked] = before_tracks[overlap.argmax(axis=1)[linked]]
    for j in np.flatnonzero(tracks < 0):
      tracks[j] = len(self.track_length)
      self.track_hits.append(np.zeros(self.region_thresholds.size, np.int64))
      self.track_length.append(0)
    self._previous = (video, labels, tracks)
    return tracks

  # ------------------------------------------------------------------------ results

  def pixel_roc(self) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of the pixel ROC, ``[K + 2]`` each, from (0, 0) to (1, 1)."""
    below = np.concatenate([np.zeros((2, 1), np.int64), np.cumsum(self.pixels, axis=1)], axis=1)
    flagged = (below[:, -1:] - below)[:, ::-1]  # pixels flagged at +inf, t_{K-1}, ..., t_0, -inf
    return flagged[0] / max(below[0, -1], 1), flagged[1] / max(below[1, -1], 1)

  def criterion_roc(self) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of the UCSD pixel-level criterion, ``[K + 2]``, (0, 0) to (1, 1)."""
    rates = self.criterion[:, ::-1] / np.maximum(self.frames, 1)[:, None]
    return np.concatenate([[0.0], rates[0], [1.0]]), np.concatenate([[0.0], rates[1], [1.0]])

  def region_curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(false positives per frame, RBDR, TBDR)``, ``[R + 1]`` each: (0, 0, 0) at
    threshold +inf, then the region thresholds from the highest down."""
    frames = max(int(self.frames.sum()), 1)
    fp = np.concatenate([[0.0], self.false_regions[::-1] / frames])
    rbdr = np.concatenate([[0.0], self.detected[::-1] / max(self.gt_regions, 1)])
    if self.track_length:
      hits, length = np.stack(self.track_hits), np.array(self.track_length)[:, None]
      tbdr = (hits >= self.track_fraction * length - 1e-9).mean(axis=0)[::-1]
    else:
      tbdr = np.zeros(self.region_thresholds.size)
    return fp, rbdr, np.concatenate([[0.0], tbdr])

  def result(self) -> dict[str, float]:
    """``pixel_auroc``, ``pixel_criterion_auc`` / ``_eer``, ``rbdc``, ``tbdc``,
    ``rbdc_005``, ``tbdc_005``, and the counts ``mask_frames``, ``anomalous_mask_frames``,
    ``gt_regions``, ``gt_tracks``."""
    out: dict[str, float] = {
      "mask_frames": int(self.frames.sum()),
      "anomalous_mask_frames": int(self.frames[1]),
      "gt_regions": int(self.gt_regions),
      "gt_tracks": len(self.track_length),
    }
    if self.pixels[0].sum() and self.pixels[1].sum():
      out["pixel_auroc"] = _trapezoid(*self.pixel_roc())
    else:
      out["pixel_auroc"] = _undefined("pixel AUROC", "the masks need anomalous and normal pixels")
    if self.frames.all():
      fpr, tpr = self.criterion_roc()
      out["pixel_criterion_auc"], out["pixel_criterion_eer"] = _trapezoid(fpr, tpr), _equal_error_rate(fpr, tpr)
    else:
      why = "it needs frames with and without anomalous pixels"
      out["pixel_criterion_auc"] = _undefined("the pixel-level criterion's AUC", why)
      out["pixel_criterion_eer"] = float("nan")
    fp, rbdr, tbdr = self.region_curves()
    for suffix, limit in FALSE_POSITIVE_LIMITS.items():
      if self.gt_regions:
        out[f"rbdc{suffix}"], out[f"tbdc{suffix}"] = area_up_to(fp, rbdr, limit), area_up_to(fp, tbdr, limit)
      else:
        out[f"rbdc{suffix}"] = _undefined("RBDC", "no frame has an anomalous region")
        out[f"tbdc{suffix}"] = float("nan")
    return out
