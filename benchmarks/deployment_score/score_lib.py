"""Candidate deployment scores and the leave-videos-out protocol, on the dumps of dump.py.

A candidate is a pair of functions:

  fit(cal)            -> params   (cal: list of plain normal sequences, the calibration videos)
  raw(seq, params)    -> (score [n], region map [n, g, g] or None)

Every candidate is then calibrated the same way (``quantile map``): the calibrated score of
a frame is the share of calibration frames with a lower (smoothed) raw score; an alarm is a
calibrated score above ``1 - target``. Causal smoothing (mean of the last k raw scores of
the same video) is applied before the quantile map, on the calibration videos too.

Sequences are dicts of the arrays written by dump.py plus ``video`` and ``kind``.
"""

import collections
import glob
import os
import re

import numpy as np
from scipy import ndimage

EPS = 1e-4  # floor of a squared error in [0, 1] units (about 2.5 grey levels)


# --------------------------------------------------------------------------- loading
def load_dumps(directory, keys=None):
  """{'plain': {video: seq}, 'speed': {video: [seq]}, 'obj': {video: [seq]}, 'anom': {video: seq}}"""
  out = {"plain": {}, "speed": collections.defaultdict(list), "obj": collections.defaultdict(list), "anom": {}}
  if os.path.isdir(directory.rstrip("/") + "_train"):
    out["train"] = [
      {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in np.load(p).items() if k in ("err_f", "err_s", "err_t", "frames")}
      for p in sorted(glob.glob(os.path.join(directory.rstrip("/") + "_train", "train__*.npz")))
    ]
    for i, t in enumerate(out["train"]):
      t["name"], t["_model"] = f"train{i}", directory
  for path in sorted(glob.glob(os.path.join(directory, "*.npz"))):
    stem = os.path.basename(path)[:-4]
    parts = stem.split("__")
    d = np.load(path)
    seq = {k: (d[k].astype(np.float32) if d[k].dtype == np.float16 else d[k]) for k in d.files if keys is None or k in keys or k in ("label", "mask", "target_index", "region")}
    seq["video"], seq["kind"], seq["name"] = parts[1], parts[0] if len(parts) < 3 else f"{parts[0]}:{parts[2]}", stem
    seq["_model"] = directory
    if parts[0] in ("plain", "anom"):
      out[parts[0]][parts[1]] = seq
    else:
      out[parts[0]][parts[1]].append(seq)
  return out


# --------------------------------------------------------------------------- helpers
_CACHE = {}


def cached(seq, key, fn):
  """Memoised per-sequence arrays (block means, levelled maps) shared by candidates."""
  k = (seq["name"], seq.get("_model", ""), key)
  if k not in _CACHE:
    _CACHE[k] = fn()
  return _CACHE[k]


def clear_cache():
  _CACHE.clear()


def bm(seq, key, cell, stride=None):
  """Cached ``block_mean`` of ``seq[key]`` (or of the motion map for key 'motion')."""
  stride = stride or cell
  src = (lambda: motion_map(seq)) if key == "motion" else (lambda: seq[key])
  return cached(seq, ("bm", key, cell, stride), lambda: block_mean(src().astype(np.float64), cell, stride))


def levelled(seq, err, cell, stride, alpha, eps=1e-6):
  """Cached log(e_b + eps) - alpha * log(frame mean error + eps)."""
  def fn():
    b = bm(seq, err, cell, stride)
    lev = cached(seq, ("mean", err), lambda: seq[err].reshape(len(b), -1).astype(np.float64).mean(1))
    return np.log(b + eps) - alpha * np.log(lev + eps)[:, None, None]
  return cached(seq, ("lev", err, cell, stride, alpha, eps), fn)


def block_mean(maps, cell, stride=None):
  """[n, h, w] -> [n, gh, gw]: mean over cell x cell windows every ``stride`` pixels."""
  stride = stride or cell
  if stride == cell:
    n, h, w = maps.shape
    return maps.reshape(n, h // cell, cell, w // cell, cell).mean(axis=(2, 4))
  c = np.cumsum(np.cumsum(np.pad(maps, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
  s = c[:, cell:, cell:] - c[:, :-cell, cell:] - c[:, cell:, :-cell] + c[:, :-cell, :-cell]
  return s[:, ::stride, ::stride] / (cell * cell)


def psnr_of(mse):
  return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def causal_mean(x, k):
  if k <= 1:
    return x
  c = np.cumsum(np.concatenate([[0.0], x]))
  i = np.arange(1, len(x) + 1)
  lo = np.maximum(0, i - k)
  return (c[i] - c[lo]) / (i - lo)


def robust_std(x, axis=0):
  q75, q25 = np.percentile(x, [75, 25], axis=axis)
  return (q75 - q25) / 1.349


# --------------------------------------------------------------------------- candidates
class Candidate:
  name = "base"
  region_cell = None  # pixels per region cell (for localisation), or None

  def fit(self, cal):
    return {}

  def raw(self, seq, p):
    raise NotImplementedError


class Concentration(Candidate):
  """Today's score (calibration.py, lam 0.8): z(psnr - block_psnr) and z of the memory
  distances, z fitted on the calibration frames."""

  name = "concentration (today)"
  region_cell = 8

  def __init__(self, lam=0.8):
    self.lam = lam

  @staticmethod
  def feats(s):
    return np.stack([s["psnr"] - s["block_psnr"], s["spatial_distance"], s["temporal_distance"]], 1).astype(np.float64)

  def fit(self, cal):
    f = np.concatenate([self.feats(s) for s in cal])
    return {"mean": f.mean(0), "std": np.maximum(f.std(0), 1e-6)}

  def raw(self, seq, p):
    z = (self.feats(seq) - p["mean"]) / p["std"]
    score = self.lam * z[:, 0] + (1 - self.lam) / 2 * (z[:, 1] + z[:, 2])
    return score, block_mean(seq["err_f"], 8)


class FrameMSE(Candidate):
  name = "frame mean error (-PSNR)"

  def raw(self, seq, p):
    return -seq["psnr"].astype(np.float64), None


class BlockZ(Candidate):
  """Per-region z of the log block error: max over regions of
  (log(e_b + eps) - level - mu_b) / sd_b, where level is 0 (``level=None``) or the frame's
  median log block error (``level='median'``); mu_b, sd_b per region from the calibration
  frames; sd_b shrunk towards the frame-wide sd (``shrink``) and spatially smoothed."""

  def __init__(self, cell=8, stride=None, level="median", err="err_f", shrink=0.5, smooth_sigma=0.0, floor=0.0, name=None):
    self.cell, self.stride, self.level, self.err, self.shrink, self.smooth_sigma, self.floor = cell, stride, level, err, shrink, smooth_sigma, floor
    self.region_cell = cell if not stride else stride
    self.name = name or f"block z {err} cell{cell}{'/' + str(stride) if stride else ''} level={level} shrink={shrink} sm={smooth_sigma}"

  def values(self, seq):
    b = np.log(block_mean(seq[self.err].astype(np.float64), self.cell, self.stride) + EPS)
    if self.level == "median":
      b = b - np.median(b.reshape(len(b), -1), axis=1)[:, None, None]
    elif self.level == "mean":
      b = b - np.log(seq[self.err].reshape(len(b), -1).mean(1) + EPS)[:, None, None]
    return b

  def fit(self, cal):
    v = np.concatenate([self.values(s) for s in cal])
    mu, sd = v.mean(0), v.std(0)
    if self.smooth_sigma:
      mu = ndimage.gaussian_filter(mu, self.smooth_sigma, mode="nearest")
      sd = ndimage.gaussian_filter(sd, self.smooth_sigma, mode="nearest")
    glob_sd = v.std()
    sd = np.sqrt((1 - self.shrink) * sd**2 + self.shrink * glob_sd**2)
    return {"mu": mu, "sd": np.maximum(sd, 1e-3)}

  def raw(self, seq, p):
    z = (self.values(seq) - p["mu"]) / p["sd"]
    return z.reshape(len(z), -1).max(1), z


class BlockMax(Candidate):
  """No per-place statistics: max over regions of log(e_b + eps) minus the frame level
  (median block), i.e. the concentration with a given cell and level."""

  def __init__(self, cell=8, stride=None, level="median", err="err_f"):
    self.cell, self.stride, self.level, self.err = cell, stride, level, err
    self.region_cell = stride or cell
    self.name = f"block max {err} cell{cell}{'/' + str(stride) if stride else ''} level={level}"

  def raw(self, seq, p):
    b = np.log(block_mean(seq[self.err].astype(np.float64), self.cell, self.stride) + EPS)
    if self.level == "median":
      b = b - np.median(b.reshape(len(b), -1), axis=1)[:, None, None]
    elif self.level == "mean":
      b = b - np.log(seq[self.err].reshape(len(b), -1).mean(1) + EPS)[:, None, None]
    return b.reshape(len(b), -1).max(1), b


# --------------------------------------------------------------------------- protocol
def roc_auc(labels, scores):
  labels = np.asarray(labels)
  scores = np.asarray(scores, np.float64)
  pos, neg = scores[labels == 1], scores[labels == 0]
  if not len(pos) or not len(neg):
    return float("nan")
  allv = np.concatenate([pos, neg])
  ranks = ndimage_rank(allv)
  return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def ndimage_rank(x):
  from scipy.stats import rankdata

  return rankdata(x)


def events_of(labels):
  edges = np.flatnonzero(np.diff(np.concatenate([[0], (labels == 1).astype(int), [0]])))
  return list(zip(edges[::2], edges[1::2] - 1))


def upsample(region, size=64):
  n, g, _ = region.shape
  f = size // g
  return np.repeat(np.repeat(region, f, axis=1), f, axis=2)


def paint(sel, cell, stride, size):
  """Pixels [n, size, size] covered by the selected windows sel [n, gh, gw]."""
  n, gh, gw = sel.shape
  ry = ((np.arange(size)[:, None] >= np.arange(gh)[None, :] * stride) & (np.arange(size)[:, None] < np.arange(gh)[None, :] * stride + cell)).astype(np.float32)
  rx = ((np.arange(size)[:, None] >= np.arange(gw)[None, :] * stride) & (np.arange(size)[:, None] < np.arange(gw)[None, :] * stride + cell)).astype(np.float32)
  return np.matmul(np.matmul(ry, sel.astype(np.float32)), rx.T) > 0


def localisation(region, masks, delta, cell=None, stride=None):
  """Per frame: argmax-window hit (the best window holds a GT pixel) and the UCSD-style
  cover test (the alarm region, windows within ``delta`` of the frame's best, covers >= 40 %
  of the GT pixels), for frames with a GT mask."""
  if region is None:
    return np.full(len(masks), np.nan), np.full(len(masks), np.nan)
  n, g = region.shape[0], region.shape[1]
  size = masks.shape[1]
  cell = cell or size // g
  stride = stride or cell
  best = region.reshape(n, -1).max(1)
  up_best = paint(region == best[:, None, None], cell, stride, size)
  up_set = paint(region >= (best - delta)[:, None, None], cell, stride, size)
  gt = masks > 0
  gt_n = gt.reshape(n, -1).sum(1)
  hit = (up_best & gt).reshape(n, -1).any(1)
  cover = (up_set & gt).reshape(n, -1).sum(1) / np.maximum(gt_n, 1) >= 0.4
  return hit.astype(float), cover.astype(float)


def track(region, k, pool=3):
  """Causal evidence per place: mean over the last k frames of the region map max-pooled
  over pool x pool cells (an object may move about a cell in k frames); max over places."""
  if pool > 1:
    region = ndimage.maximum_filter(region, size=(1, pool, pool), mode="nearest")
  c = np.cumsum(np.concatenate([np.zeros((1, *region.shape[1:])), region]), axis=0)
  i = np.arange(1, len(region) + 1)
  lo = np.maximum(0, i - k)
  sm = (c[i] - c[lo]) / (i - lo)[:, None, None]
  return sm.reshape(len(sm), -1).max(1), sm


def running_base(region, window=50, q=0.5, onesided=True, min_history=10):
  """Causal per-place baseline of this video: B_t = q-quantile of each place's value over
  the previous ``window`` frames (none before ``min_history`` frames). The corrected map is
  region - max(B_t - median_over_places(B_t), 0) (one-sided: only places whose recent
  error is persistently above the typical place's are lowered) or region - B_t."""
  n = len(region)
  out = region.copy()
  flat = region.reshape(n, -1)
  for t in range(min_history, n):
    hist = flat[max(0, t - window) : t]
    b = np.quantile(hist, q, axis=0)
    corr = np.maximum(b - np.median(b), 0.0) if onesided else b - np.median(b)
    out[t] = region[t] - corr.reshape(region.shape[1:])
  return out.reshape(n, -1).max(1), out


def series(cand, raw, region, k):
  """Frame scores of one video's consecutive frames: region tracking (``cand.track_k``)
  and/or the causal mean of the last k frame scores."""
  rb = getattr(cand, "running", None)
  if rb is not None and region is not None:
    raw, region = running_base(region, *rb)
  tk = getattr(cand, "track_k", 1)
  if tk > 1 and region is not None:
    raw, _ = track(region, tk, getattr(cand, "track_pool", 3))  # boxes still from this frame's map
  return causal_mean(raw, k), region


def video_series(cand, params, k, plain, pseudo=None):
  """Smoothed raw scores (and region maps) of a plain video, or of a pseudo-sequence laid
  over its plain video (frames before and between come from the plain video)."""
  raw_p, reg_p = plain["_raw"]
  if pseudo is None:
    return series(cand, raw_p, reg_p, k)
  raw_s, reg_s = cand.raw(pseudo, params)
  pos = {t: i for i, t in enumerate(plain["target_index"])}
  rows = np.array([pos[t] for t in pseudo["target_index"]])
  full = raw_p.copy()
  full[rows] = raw_s
  reg_full = None
  if reg_p is not None:
    reg_full = reg_p.copy()
    reg_full[rows] = reg_s
  sm, reg = series(cand, full, reg_full, k)
  return sm[rows], (reg[rows] if reg is not None else None)


def rotations_half(videos, count=4, seed=0):
  """Calibrate on half of ``videos``, measure on the other half: ``count`` rotations
  (first/second half, even/odd positions, and their swaps)."""
  v = sorted(videos)
  half = len(v) // 2
  rots = [(v[:half], v[half:]), (v[half:], v[:half]), (v[::2], v[1::2]), (v[1::2], v[::2])]
  return rots[:count]


def rotations_pairs(videos):
  """All (2 calibration, 2 measurement) splits of 4 videos."""
  import itertools

  v = sorted(videos)
  return [(list(c), [x for x in v if x not in c]) for c in itertools.combinations(v, 2)]


TARGETS = (0.01, 0.02)


def _overlay(plain_raw, plain_reg, plain_targets, pseudo, raw_s, reg_s):
  pos = {t: i for i, t in enumerate(plain_targets)}
  rows = np.array([pos[t] for t in pseudo["target_index"]])
  full = plain_raw.copy()
  full[rows] = raw_s
  reg_full = None
  if plain_reg is not None:
    reg_full = plain_reg.copy()
    reg_full[rows] = reg_s
  return full, reg_full, rows


def evaluate(cand, data, rotations, k=1, delta=None):
  return evaluate_multi(cand, data, rotations, [k], delta)[k]


def evaluate_multi(cand, data, rotations, ks, delta=None):
  """The protocol over ``rotations`` of one model's dumps ``data`` for every smoothing
  length in ``ks``: {k: per-rotation records}."""
  delta = 1.0 if delta is None else delta
  out = {k: [] for k in ks}
  cell = getattr(cand, "loc_cell", None) or getattr(cand, "cell", None)
  stride = getattr(cand, "loc_stride", None) or getattr(cand, "stride", None) or cell
  for cal_videos, test_videos in rotations:
    if getattr(cand, "needs_train", False):
      params = cand.fit([data["plain"][v] for v in cal_videos], data.get("train"))
    else:
      params = cand.fit([data["plain"][v] for v in cal_videos])
    raw = {v: cand.raw(s, params) for v, s in data["plain"].items()}
    anom_raw = {v: cand.raw(s, params) for v, s in data["anom"].items()}
    # pseudo-sequences of the measurement videos, laid over their plain video
    pseudo = []  # (video, family, seq, full raw, full region, rows)
    for v in test_videos:
      for fam in ("speed", "obj"):
        for s in data[fam].get(v, []):
          r, g = cand.raw(s, params)
          full, reg_full, rows = _overlay(raw[v][0], raw[v][1], data["plain"][v]["target_index"], s, r, g)
          pseudo.append((v, fam, s, full, reg_full, rows, g))
    # localisation per family (k-independent: this frame's region map)
    loc = {}
    for v, fam, s, _, _, _, g in pseudo:
      sel = s["label"] == 1
      if g is not None and sel.any():
        loc.setdefault(fam, []).append(localisation(g[sel], s["mask"][sel], delta, cell, stride))
    for v, s in data["anom"].items():
      g = anom_raw[v][1]
      sel = s["label"] == 1
      if g is not None and sel.any():
        loc.setdefault("real", []).append(localisation(g[sel], s["mask"][sel], delta, cell, stride))
    for k in ks:
      ser = {v: series(cand, raw[v][0], raw[v][1], k)[0] for v in data["plain"]}
      cal = np.concatenate([ser[v] for v in cal_videos])
      thr = {t: np.quantile(cal, 1 - t) for t in TARGETS}
      normal = {v: ser[v] for v in test_videos}
      normal_scores = np.concatenate(list(normal.values()))
      rec = {"fa": {t: float(np.mean(normal_scores > thr[t])) for t in TARGETS}, "thr": thr}
      groups = {}
      per_video_pos = {}
      for v, fam, s, full, reg_full, rows, _ in pseudo:
        sc = series(cand, full, reg_full, k)[0][rows]
        groups.setdefault(fam, []).append((sc, s["label"]))
        per_video_pos.setdefault(v, []).append(sc[s["label"] == 1])
      anom_normals = []
      for v, s in data["anom"].items():
        sc = series(cand, anom_raw[v][0], anom_raw[v][1], k)[0]
        groups.setdefault("real", []).append((sc, s["label"]))
        anom_normals.append(sc[s["label"] == 0])
      if anom_normals:
        an = np.concatenate(anom_normals)
        rec["fa_anomvid_normals"] = {t: float(np.mean(an > thr[t])) for t in TARGETS}
      rec["auc"], rec["events"], rec["hit"], rec["pix_auc"] = {}, {}, {}, {}
      for fam, items in groups.items():
        pos = np.concatenate([sc[lab == 1] for sc, lab in items])
        neg = normal_scores if fam != "real" else np.concatenate([normal_scores, np.concatenate(anom_normals)])
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
        rec["auc"][fam] = roc_auc(labels, np.concatenate([pos, neg]))
        if fam in loc:
          h = np.concatenate([a for a, _ in loc[fam]])
          c = np.concatenate([b for _, b in loc[fam]])
          rec["hit"][fam] = float(np.mean(h))
          rec["pix_auc"][fam] = roc_auc(labels, np.concatenate([np.where(c > 0, pos, -np.inf), neg]))
        ev = {t: [0, 0] for t in TARGETS}
        for sc, lab in items:
          for a, b in events_of(lab):
            for t in TARGETS:
              ev[t][0] += int((sc[a : b + 1] > thr[t]).any())
              ev[t][1] += 1
        rec["events"][fam] = ev
      x = []
      for va in test_videos:
        for vb in test_videos:
          if va != vb and per_video_pos.get(va):
            p = np.concatenate(per_video_pos[va])
            n = normal[vb]
            x.append(roc_auc(np.r_[np.ones(len(p)), np.zeros(len(n))], np.r_[p, n]))
      rec["xauc"] = float(np.mean(x)) if x else float("nan")
      out[k].append(rec)
  return out


def summarise(rows):
  """Aggregate of per-rotation records: mean FA, worst FA, mean AUC per family, events
  found / total per family, mean hit and pixel-level AUC."""
  out = {}
  for t in TARGETS:
    fa = np.array([r["fa"][t] for r in rows])
    out[f"fa{int(t*100)}"] = fa.mean()
    out[f"fa{int(t*100)}_max"] = fa.max()
  out["xauc"] = np.nanmean([r.get("xauc", np.nan) for r in rows])
  fams = sorted({f for r in rows for f in r["auc"]})
  for f in fams:
    out[f"auc_{f}"] = np.nanmean([r["auc"].get(f, np.nan) for r in rows])
    out[f"hit_{f}"] = np.nanmean([r["hit"].get(f, np.nan) for r in rows]) if any(f in r["hit"] for r in rows) else np.nan
    out[f"pixauc_{f}"] = np.nanmean([r["pix_auc"].get(f, np.nan) for r in rows]) if any(f in r["pix_auc"] for r in rows) else np.nan
    for t in TARGETS:
      found = sum(r["events"][f][t][0] for r in rows if f in r["events"])
      total = sum(r["events"][f][t][1] for r in rows if f in r["events"])
      out[f"ev{int(t*100)}_{f}"] = found / max(total, 1)
  return out


# --------------------------------------------------------------------------- more candidates
def motion_map(seq):
  """Squared change of the target frame from the last input frame, [0, 1] units (the
  error of predicting 'nothing moves')."""
  f = seq["frames"]
  return ((f[:, -1].astype(np.float32) - f[:, -2].astype(np.float32)) / 255.0) ** 2


def _levelled(b, level):
  if level == "median":
    return b - np.median(b.reshape(len(b), -1), axis=1)[:, None, None]
  return b


class Ratio(Candidate):
  """Per region, log((error + c) / (motion + c)) where motion is the squared change of the
  target frame from the last input (what copying the last frame would cost): how much of
  the region's change the network failed to predict. Max over regions, optionally minus
  per-place mean (``per_place``)."""

  def __init__(self, cell=8, stride=None, c=2e-4, err="err_f", per_place=False, sigma=1.0, name=None):
    self.cell, self.stride, self.c, self.err, self.per_place, self.sigma = cell, stride, c, err, per_place, sigma
    self.region_cell = stride or cell
    self.name = name or f"ratio {err} cell{cell}{'/' + str(stride) if stride else ''} c={c} place={per_place}"

  def values(self, seq):
    e = block_mean(seq[self.err].astype(np.float64), self.cell, self.stride)
    m = block_mean(motion_map(seq).astype(np.float64), self.cell, self.stride)
    return np.log((e + self.c) / (m + self.c))

  def fit(self, cal):
    if not self.per_place:
      return {}
    v = np.concatenate([self.values(s) for s in cal])
    return {"mu": ndimage.gaussian_filter(v.mean(0), self.sigma, mode="nearest") if self.sigma else v.mean(0)}

  def raw(self, seq, p):
    v = self.values(seq)
    if self.per_place:
      v = v - p["mu"]
    return v.reshape(len(v), -1).max(1), v


class PlaceScaled(Candidate):
  """Per-place expected error: log(e_b + eps) - log(E_b + eps), E_b the mean block error of
  the calibration frames (spatially smoothed, sigma in cells), minus the frame's median of
  that (level) or not; max over regions."""

  def __init__(self, cell=8, stride=None, err="err_f", sigma=1.0, level="median", eps=EPS, name=None):
    self.cell, self.stride, self.err, self.sigma, self.level, self.eps = cell, stride, err, sigma, level, eps
    self.region_cell = stride or cell
    self.name = name or f"place-scaled {err} cell{cell}{'/' + str(stride) if stride else ''} sigma={sigma} level={level} eps={eps}"

  def fit(self, cal):
    e = np.concatenate([block_mean(s[self.err].astype(np.float64), self.cell, self.stride) for s in cal]).mean(0)
    if self.sigma:
      e = ndimage.gaussian_filter(e, self.sigma, mode="nearest")
    return {"E": e}

  def raw(self, seq, p):
    b = np.log(block_mean(seq[self.err].astype(np.float64), self.cell, self.stride) + self.eps) - np.log(p["E"] + self.eps)
    b = _levelled(b, self.level)
    return b.reshape(len(b), -1).max(1), b


class MemCells(Candidate):
  """Memory distance per cell (bottleneck, 16x16 cells at 64x64), pooled to ``pool`` cells,
  per-place z (mean/std of calibration frames, shrunk to the global std), max over cells;
  ``streams``: 's', 't' or 'st' (sum of z)."""

  def __init__(self, level=2, pool=2, streams="st", shrink=0.5, per_place=True, name=None):
    self.level, self.pool, self.streams, self.shrink, self.per_place = level, pool, streams, shrink, per_place
    self.region_cell = None
    self.name = name or f"memory cells L{level} pool{pool} {streams} place={per_place}"

  def values(self, seq):
    out = 0
    for s in self.streams:
      m = seq[f"mem_{s}{self.level}"].astype(np.float64)
      out = out + block_mean(m, self.pool)
    return out

  def fit(self, cal):
    v = np.concatenate([self.values(s) for s in cal])
    if not self.per_place:
      return {"mu": v.mean(), "sd": v.std()}
    sd = np.sqrt((1 - self.shrink) * v.std(0) ** 2 + self.shrink * v.std() ** 2)
    return {"mu": v.mean(0), "sd": np.maximum(sd, 1e-6)}

  def raw(self, seq, p):
    z = (self.values(seq) - p["mu"]) / p["sd"]
    self.region_cell = 64 // z.shape[1]
    return z.reshape(len(z), -1).max(1), z


class Combo(Candidate):
  """Sum of the z-scores (over calibration frames) of several candidates' raw scores; the
  region map of the first that has one."""

  def __init__(self, parts, weights=None, name=None):
    self.parts, self.weights = parts, weights or [1.0] * len(parts)
    self.region_cell = next((p.region_cell for p in parts if p.region_cell), None)
    self.name = name or " + ".join(p.name for p in parts)

  def fit(self, cal):
    ps = [c.fit(cal) for c in self.parts]
    raws = [np.concatenate([c.raw(s, p)[0] for s in cal]) for c, p in zip(self.parts, ps)]
    return {"parts": ps, "mean": [r.mean() for r in raws], "std": [max(r.std(), 1e-9) for r in raws]}

  def raw(self, seq, p):
    total, region = 0.0, None
    for c, w, pp, mu, sd in zip(self.parts, self.weights, p["parts"], p["mean"], p["std"]):
      r, reg = c.raw(seq, pp)
      total = total + w * (r - mu) / sd
      if region is None and reg is not None:
        region = reg
    return total, region


class LevelBlock(Candidate):
  """log(e_b + eps) - alpha * log(level + eps) - beta * log(E_b + eps), max over regions b,
  plus ``lam``-weighted memory distances as in today's score (z-scored, lam = 1: none).

  level: 'mean' (the frame's mean error: alpha = 1 is today's concentration), 'median'
  (median block). E_b: per-place mean block error of the calibration frames (Gaussian-
  smoothed by ``sigma`` cells); beta = 0: no per-place term."""

  def __init__(self, cell=8, stride=None, alpha=1.0, level="mean", beta=0.0, sigma=1.0, eps=1e-6, err="err_f", lam=1.0, name=None):
    self.cell, self.stride, self.alpha, self.level, self.beta, self.sigma, self.eps, self.err, self.lam = cell, stride, alpha, level, beta, sigma, eps, err, lam
    self.region_cell = stride or cell
    self.loc_cell, self.loc_stride = cell, stride or cell
    self.name = name or f"levelblock {err} cell{cell}{'/' + str(stride) if stride else ''} a={alpha}({level}) b={beta} eps={eps} lam={lam}"

  def fit(self, cal):
    p = {}
    if self.beta:
      e = np.concatenate([self.blocks(s) for s in cal]).mean(0)
      p["E"] = ndimage.gaussian_filter(e, self.sigma, mode="nearest") if self.sigma else e
    if self.lam < 1:
      p["lam_fit"] = True
      r = np.concatenate([self._local(s, p)[0] for s in cal])
      dist = np.concatenate([np.stack([s["spatial_distance"], s["temporal_distance"]], 1) for s in cal]).astype(np.float64)
      p["r_mu"], p["r_sd"] = r.mean(), max(r.std(), 1e-9)
      p["d_mu"], p["d_sd"] = dist.mean(0), np.maximum(dist.std(0), 1e-9)
    return p

  def blocks(self, seq):
    return bm(seq, self.err, self.cell, self.stride)

  def _local(self, seq, p):
    if self.level == "mean":
      v = levelled(seq, self.err, self.cell, self.stride, self.alpha, self.eps)
    else:
      b = self.blocks(seq)
      v = np.log(b + self.eps) - self.alpha * np.log(np.median(b.reshape(len(b), -1), axis=1) + self.eps)[:, None, None]
    if self.beta:
      v = v - self.beta * np.log(p["E"] + self.eps)
    return v.reshape(len(v), -1).max(1), v

  def raw(self, seq, p):
    r, v = self._local(seq, p)
    if self.lam >= 1:
      return r, v
    dist = np.stack([seq["spatial_distance"], seq["temporal_distance"]], 1).astype(np.float64)
    zd = ((dist - p["d_mu"]) / p["d_sd"]).mean(1)
    return self.lam * (r - p["r_mu"]) / p["r_sd"] + (1 - self.lam) * zd, v


class PlacePrior(Candidate):
  """Per-place normal range learnt from the frames the model TRAINED on (all of them, so
  every place walkers use is covered), the frame-level threshold from held-out normal
  videos as for every candidate.

    r_b = log(e_b + eps) - alpha * log(frame mean error + eps)          (levelled block error)
    prior 'mean':  v_b = r_b - beta * log(E_b),  E_b = mean of e_b / frame level over training frames
    prior 'quant': v_b = (r_b - U_b) / S_b,      U_b = q-quantile of r_b over training frames,
                                                 S_b = U_b - median_b (the region's normal spread)
    prior 'motion': v_b = r_b - beta * log(M_b + cm), M_b = mean squared frame change at b
  score = max over regions of v_b. Maps are Gaussian-smoothed by ``sigma`` cells."""

  needs_train = True

  def __init__(self, cell=8, stride=None, alpha=0.5, prior="quant", q=0.99, beta=1.0, sigma=0.0, eps=1e-6, cm=1e-5, err="err_f", shrink=0.0, name=None):
    self.cell, self.stride, self.alpha, self.prior, self.q, self.beta, self.sigma, self.eps, self.cm, self.err, self.shrink = cell, stride, alpha, prior, q, beta, sigma, eps, cm, err, shrink
    self.region_cell = stride or cell
    self.loc_cell, self.loc_stride = cell, stride or cell
    self.name = name or f"placeprior-{prior} {err} cell{cell}{'/' + str(stride) if stride else ''} a={alpha} q={q} b={beta} sig={sigma} shrink={shrink}"

  def levelled(self, seq):
    return levelled(seq, self.err, self.cell, self.stride, self.alpha, self.eps)

  def _sm(self, x):
    return ndimage.gaussian_filter(x, self.sigma, mode="nearest") if self.sigma else x

  def fit(self, cal, train=None):
    src = train if (train and getattr(self, "source", "train") == "train") else cal
    if self.prior == "motion":
      m = np.concatenate([block_mean(motion_map(s).astype(np.float64), self.cell, self.stride) for s in src]).mean(0)
      return {"P": self._sm(np.log(m + self.cm))}
    r = np.concatenate([self.levelled(s) for s in src])
    if self.prior == "mean":
      return {"P": self._sm(np.log(np.exp(r).mean(0)))}
    u = np.quantile(r, self.q, axis=0)
    med = np.median(r, axis=0)
    s = u - med
    s = (1 - self.shrink) * s + self.shrink * s.mean()
    return {"U": self._sm(u), "S": np.maximum(self._sm(s), 1e-3)}

  def raw(self, seq, p):
    r = self.levelled(seq)
    if self.prior in ("mean", "motion"):
      v = r - self.beta * p["P"]
    else:
      v = (r - p["U"]) / p["S"]
    return v.reshape(len(v), -1).max(1), v


class Tracked(Candidate):
  """Any region-map candidate with per-place causal evidence (``track``)."""

  def __init__(self, base, track_k=5, track_pool=3, name=None):
    self.base, self.track_k, self.track_pool = base, track_k, track_pool
    self.region_cell = base.region_cell
    self.loc_cell, self.loc_stride = getattr(base, "loc_cell", None), getattr(base, "loc_stride", None)
    self.needs_train = getattr(base, "needs_train", False)
    self.name = name or f"{base.name} track{track_k}/pool{track_pool}"

  def fit(self, cal, train=None):
    return self.base.fit(cal, train) if self.needs_train else self.base.fit(cal)

  def raw(self, seq, p):
    return self.base.raw(seq, p)


class PlaceClip(Candidate):
  """Levelled block error with a ONE-SIDED per-place correction: places whose normal error
  is above the typical place's are scaled down, quiet places are never boosted.

    r_b = log(e_b + eps) - alpha * log(frame mean error + eps)
    P_b = log(mean over normal frames of exp(r_b))      (per-place normal level, smoothed)
    v_b = r_b - beta * max(P_b - P_ref, 0),  P_ref = q-quantile of P_b over places
  score = max_b v_b. ``source``: 'train' (the frames the model trained on) or 'cal'."""

  def __init__(self, cell=8, stride=4, alpha=0.5, q=0.5, beta=1.0, sigma=0.0, source="cal", eps=1e-6, err="err_f", name=None):
    self.cell, self.stride, self.alpha, self.q, self.beta, self.sigma, self.source, self.eps, self.err = cell, stride, alpha, q, beta, sigma, source, eps, err
    self.needs_train = source == "train"
    self.region_cell = stride or cell
    self.loc_cell, self.loc_stride = cell, stride or cell
    self.name = name or f"placeclip {err} cell{cell}/{stride} a={alpha} q={q} b={beta} sig={sigma} src={source}"

  def levelled(self, seq):
    return levelled(seq, self.err, self.cell, self.stride, self.alpha, self.eps)

  def fit(self, cal, train=None):
    src = train if (self.source == "train" and train) else cal
    r = np.concatenate([self.levelled(s) for s in src])
    P = np.log(np.exp(r).mean(0))
    if self.sigma:
      P = ndimage.gaussian_filter(P, self.sigma, mode="nearest")
    ref = np.quantile(P, self.q)
    return {"corr": self.beta * np.maximum(P - ref, 0.0)}

  def raw(self, seq, p):
    v = self.levelled(seq) - p["corr"]
    return v.reshape(len(v), -1).max(1), v


def active_blocks(seq, cell=8, factor=2.0):
  """Blocks (cell x cell) whose squared frame change exceeds ``factor`` x the frame's median
  block change (the noise floor): how many places are busy in this frame."""
  m = block_mean(motion_map(seq).astype(np.float64), cell)
  flat = m.reshape(len(m), -1)
  floor = np.median(flat, axis=1, keepdims=True)
  return (flat > factor * floor + 1e-6).sum(1)


class CrowdCorrected(Candidate):
  """A base candidate's raw score minus gamma * log(1 + N), N the number of busy blocks
  (``active_blocks``): the max over more moving objects is larger by itself. gamma: fixed,
  or 'fit' (least squares on the calibration frames)."""

  def __init__(self, base, gamma="fit", factor=2.0, name=None):
    self.base, self.gamma, self.factor = base, gamma, factor
    self.region_cell = base.region_cell
    self.loc_cell, self.loc_stride = getattr(base, "loc_cell", None), getattr(base, "loc_stride", None)
    self.needs_train = getattr(base, "needs_train", False)
    self.track_k, self.track_pool = getattr(base, "track_k", 1), getattr(base, "track_pool", 3)
    self.name = name or f"{base.name} crowd-corrected g={gamma}"

  def fit(self, cal, train=None):
    p = self.base.fit(cal, train) if self.needs_train else self.base.fit(cal)
    if self.gamma == "fit":
      r = np.concatenate([self.base.raw(s, p)[0] for s in cal])
      x = np.log1p(np.concatenate([active_blocks(s, factor=self.factor) for s in cal]))
      g = np.polyfit(x, r, 1)[0] if x.std() > 0 else 0.0
    else:
      g = float(self.gamma)
    return {"base": p, "g": g}

  def raw(self, seq, p):
    r, v = self.base.raw(seq, p["base"])
    n = np.log1p(active_blocks(seq, factor=self.factor))
    return r - p["g"] * n, (None if v is None else v - p["g"] * n[:, None, None])


class Running(Candidate):
  """A region-map candidate with the causal per-place baseline of ``running_base``."""

  def __init__(self, base, window=50, q=0.5, onesided=True, min_history=10, name=None):
    self.base, self.running = base, (window, q, onesided, min_history)
    self.region_cell = base.region_cell
    self.loc_cell, self.loc_stride = getattr(base, "loc_cell", None), getattr(base, "loc_stride", None)
    self.needs_train = getattr(base, "needs_train", False)
    self.name = name or f"{base.name} running W={window} q={q} {'one' if onesided else 'two'}-sided"

  def fit(self, cal, train=None):
    return self.base.fit(cal, train) if self.needs_train else self.base.fit(cal)

  def raw(self, seq, p):
    return self.base.raw(seq, p)
