"""A deployment score for the dual-stream network that needs no future frames.

The literature's score (Eq. 16) min-max normalises each video's series, so it only
exists once the video has ended, always reaches 1 somewhere, and cannot be compared
between videos. For deployment the statistics are instead standardised with constants
fitted on normal frames that training did not see (held-out training videos, or a
user's normal footage).

The frame's PSNR itself does not carry over between videos: on the 16 UCSD Ped2
training videos (CPU-sized model, docs/RESULTS.md) each video's mean PSNR lies anywhere
between 38.9 and 44.1 dB while it varies by 0.3-1.2 dB within a video (lighting, how
many people walk), so a threshold fitted on two held-out videos alarmed on 19.5 % of
the frames of the other fourteen. The deployment score therefore uses how concentrated
the prediction error is: ``concentration = psnr - block_psnr``, in dB, the error of the
worst 1/64 of the frame over the frame's mean error (``scoring.block_psnr``). A scene's
overall error level cancels out, and an anomaly (a cyclist, a cart) is a region
predicted much worse than the rest. Fitted on the same two videos it alarmed on 0.4 %
of the other fourteen's frames at a 1 % target (with the memory distances, lam = 0.8).
The choice was made on training videos only.

  z_k = (x_k - mean_k) / std_k      (x: the concentration or a memory distance)
  raw = lam z_concentration + (1 - lam) / 2 (z_spatial_distance + z_temporal_distance)

(per stream: ``lam z_<stream>_concentration + (1 - lam) z_<stream>_distance``), and the
calibrated score is the share of the normal calibration frames whose raw score is lower:
a frame at 0.995 scores higher than 99.5 % of normal frames. An alarm is a calibrated
score above ``1 - false_alarm_rate``, so the false-alarm rate on normal frames like the
calibration frames is the target. Every term is computed per frame: streaming and
offline scoring agree frame for frame.

Version 3 adds where an alarm is (``regions.py``): ``region_level`` is the
``1 - false_alarm_rate`` quantile of the calibration frames' fused concentration, the
concentration of each frame's worst block. On an alarmed frame every block at or above
it is part of the alarm's region. The quantile is taken over each frame's worst block,
not over all blocks pooled: pooled, ``false_alarm_rate`` of all blocks would reach it,
and a normal frame, with 64 blocks, would then hold such a block far more often than
``false_alarm_rate`` of the time; over the worst blocks, a normal frame holds one on
``false_alarm_rate`` of the frames, as often as it alarms.

``fit`` also checks the fit on frames it did not see (``held_out_check``: fitted
without the last video, or without the last third of a single video, the false-alarm
rate on what was left out), and ``summary`` words the result with a ``warning:`` when
that rate is over 1.5 times the target or when there are too few frames to measure
the target at all. Files are checked field by field on reading (``check``).
"""

import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from vad_jax import metrics

VERSION = 3  # 1: z-scored PSNR (did not carry over between videos); 2: no region_level
FEATURES = ("concentration", "spatial_concentration", "temporal_concentration", "spatial_distance", "temporal_distance")
STREAM_TERMS = {
  "fused": ("concentration", ("spatial_distance", "temporal_distance")),
  "spatial": ("spatial_concentration", ("spatial_distance",)),
  "temporal": ("temporal_concentration", ("temporal_distance",)),
}
QUANTILES = 1001  # stored points of each stream's distribution of normal raw scores
MIN_FRAMES = 20  # the fewest normal frames a calibration is fitted on
MEASURABLE_ALARMS = 20  # expected false alarms on the normal frames for the target to be measurable
WARN_RATIO = 1.5  # a held-out false-alarm rate over this times the target is warned about


def feature_values(stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """``FEATURES`` per frame from the model's statistics (``scoring.STAT_KEYS``); higher
  is more anomalous."""
  values = {}
  for prefix in ("", "spatial_", "temporal_"):
    psnr = np.asarray(stats[f"{prefix}psnr"], np.float64)
    values[f"{prefix}concentration"] = psnr - np.asarray(stats[f"{prefix}block_psnr"], np.float64)
  for key in ("spatial_distance", "temporal_distance"):
    values[key] = np.asarray(stats[key], np.float64)
  return values


def raw_scores(stats: Mapping[str, np.ndarray], features: Mapping[str, Mapping[str, float]], lam: float):
  """``{stream: raw score per frame}`` from per-frame statistics (``STAT_KEYS``)."""
  values = feature_values(stats)
  z = {k: (values[k] - f["mean"]) / f["std"] for k, f in features.items()}
  return {
    stream: lam * z[psnr] + (1.0 - lam) * np.mean([z[d] for d in distances], axis=0)
    for stream, (psnr, distances) in STREAM_TERMS.items()
  }


def fit(
  stats: Mapping[str, np.ndarray],
  lam: float,
  false_alarm_rate: float,
  videos: Sequence[str],
  video_of_frame: Optional[np.ndarray] = None,
) -> dict[str, object]:
  """The calibration (a JSON-able dict) from the statistics of normal frames, with the
  ``held_out_check`` of the fit. ``video_of_frame``: each frame's position in
  ``videos`` (frames of a video in order; ``None``: a single video)."""
  calibration = _fit(stats, lam, false_alarm_rate, videos)
  count = calibration["frames"]
  video_of_frame = np.zeros(count, int) if video_of_frame is None else np.asarray(video_of_frame)
  calibration["held_out"] = held_out_check(stats, lam, false_alarm_rate, videos, video_of_frame)
  return calibration


def _fit(
  stats: Mapping[str, np.ndarray], lam: float, false_alarm_rate: float, videos: Sequence[str]
) -> dict[str, object]:
  if not 0.0 < false_alarm_rate < 1.0:
    raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
  count = len(next(iter(stats.values())))
  if count < MIN_FRAMES:
    raise ValueError(f"calibration needs at least {MIN_FRAMES} normal frames, got {count} (videos {list(videos)})")
  features = {}
  values = feature_values(stats)
  for key, value in values.items():
    features[key] = {"mean": float(value.mean()), "std": float(max(value.std(), 1e-6))}
  raws = raw_scores(stats, features, lam)
  levels = np.linspace(0.0, 1.0, QUANTILES)
  return {
    "version": VERSION,
    "lam": float(lam),
    "features": features,
    "quantiles": {stream: np.quantile(raw, levels).tolist() for stream, raw in raws.items()},
    "false_alarm_rate": float(false_alarm_rate),
    "threshold": float(1.0 - false_alarm_rate),
    # Alarm regions (regions.py): blocks as concentrated as the worst block of all but
    # false_alarm_rate of the normal frames.
    "region_level": float(np.quantile(values["concentration"], 1.0 - false_alarm_rate)),
    # Mean squared error per pixel of the normal frames (for drawing heat maps to scale).
    "pixel_error": float(np.mean(10.0 ** (-np.asarray(stats["psnr"], np.float64) / 10.0))),
    "frames": int(count),
    "videos": [str(v) for v in videos],
  }


def held_out_check(
  stats: Mapping[str, np.ndarray],
  lam: float,
  false_alarm_rate: float,
  videos: Sequence[str],
  video_of_frame: np.ndarray,
) -> dict[str, object]:
  """The fit tried on normal frames it did not see: fitted on all videos but the last
  (the highest ``video_of_frame``), or on the first two thirds of a single video's
  frames, the fused stream's false-alarm rate on the rest at the fitted threshold.
  ``{"skipped": reason}`` when the first part is too short to fit."""
  video_of_frame = np.asarray(video_of_frame)
  last = int(video_of_frame.max())
  name = videos[last] if 0 <= last < len(videos) else f"video {last}"
  if np.unique(video_of_frame).size > 1:
    held, part = video_of_frame == last, f"video {name}"
  else:
    held, part = np.arange(video_of_frame.size) >= math.ceil(2 * video_of_frame.size / 3), f"the last third of {name}"
  if (~held).sum() < MIN_FRAMES:
    return {"skipped": f"{int((~held).sum())} frames besides {part}, fewer than the {MIN_FRAMES} a fit needs"}
  fitted = _fit({k: np.asarray(v)[~held] for k, v in stats.items()}, lam, false_alarm_rate, videos)
  scores = calibrated_scores({k: np.asarray(v)[held] for k, v in stats.items()}, fitted)["fused"]
  alarms = int(np.sum(scores > fitted["threshold"]))
  return {
    "part": part,
    "fit_frames": int((~held).sum()),
    "frames": int(held.sum()),
    "false_alarms": alarms,
    "false_alarm_rate": alarms / int(held.sum()),
  }


def _percent(rate: float) -> str:
  return f"{100.0 * rate:.3g} %"


def summary(calibration: Mapping[str, object]) -> list[str]:
  """What a fit gives, in lines for the person running it: the threshold and the target,
  the frames and videos, the held-out check, and ``warning:`` lines when the held-out
  false-alarm rate is over ``WARN_RATIO`` times the target or when there are too few
  frames to measure the target (fewer than ``MEASURABLE_ALARMS / target``)."""
  target, frames, videos = calibration["false_alarm_rate"], calibration["frames"], calibration["videos"]
  lines = [
    f"alarm threshold {calibration['threshold']:g} on the calibrated score (target false-alarm rate "
    f"{_percent(target)}), fitted on {frames} normal frames of {len(videos)} video(s); alarm regions: blocks "
    f"{calibration['region_level']:.2f} dB or more above the frame's mean error"
  ]
  check = calibration.get("held_out") or {"skipped": "not run"}
  if "skipped" in check:
    lines.append(f"held-out check skipped: {check['skipped']}")
  else:
    rate = check["false_alarm_rate"]
    lines.append(
      f"held-out check: fitted on the other {check['fit_frames']} frames, {_percent(rate)} false alarms on "
      f"{check['part']} ({check['false_alarms']} of {check['frames']} frames; target {_percent(target)})"
    )
    if rate > WARN_RATIO * target:
      lines.append(
        f"warning: the held-out false-alarm rate {_percent(rate)} is over {WARN_RATIO:g} times the target "
        f"{_percent(target)}: normal video unlike the calibration frames will alarm more often than the target; "
        f"calibrate on more, or more varied, normal video"
      )
  needed = math.ceil(MEASURABLE_ALARMS / target)
  if frames < needed:
    lines.append(
      f"warning: {frames} normal frames are too few to measure a {_percent(target)} false-alarm rate (about "
      f"{frames * target:.2g} false alarms expected); give at least {needed} frames, or a higher --false_alarm_rate"
    )
  return lines


def check(calibration: object, path: Optional[pathlib.Path] = None) -> None:
  """``ValueError`` naming the file (``path``, the ``calibration.json`` beside a
  checkpoint) and the field when a calibration is of another version or a field is
  missing or of the wrong type."""
  where = f"calibration {path}" if path is not None else "calibration"
  refit = f"fit it again: vad-jax calibrate --workdir {path.parent if path is not None else 'RUN'}"
  refit += " (with --videos NORMAL_VIDEOS if it was fitted on your own footage)"
  if not isinstance(calibration, Mapping):
    raise ValueError(f"{where} is not a JSON object but {type(calibration).__name__}; {refit}")
  version = calibration.get("version")
  if version != VERSION or isinstance(version, bool):
    raise ValueError(
      f"{where} has version {version!r}, not {VERSION} (version 3 adds region_level for the alarm regions); {refit}"
    )
  fields = {k: (calibration.get(k), *rule) for k, rule in _FIELDS.items()}
  features = calibration.get("features")
  for key in FEATURES:
    entry = features.get(key) if isinstance(features, Mapping) else None
    for name, rule in (("mean", _NUMBER), ("std", _POSITIVE)):
      fields[f"features.{key}.{name}"] = (entry.get(name) if isinstance(entry, Mapping) else None, *rule)
  quantiles = calibration.get("quantiles")
  for stream in STREAM_TERMS:
    value = quantiles.get(stream) if isinstance(quantiles, Mapping) else None
    fields[f"quantiles.{stream}"] = (value, *_QUANTILE_LIST)
  for field, (value, valid, expected) in fields.items():
    if value is None and field != "held_out":
      raise ValueError(f"{where}: field {field!r} is missing (expected {expected}); {refit}")
    if not valid(value):
      shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
      raise ValueError(f"{where}: field {field!r} must be {expected}, got {type(value).__name__} {shown}; {refit}")


def _is_number(value: object) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_NUMBER = (_is_number, "a finite number")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a positive number")
_QUANTILE_LIST = (
  lambda v: isinstance(v, list) and len(v) == QUANTILES and all(map(_is_number, v)),
  f"a list of {QUANTILES} finite numbers",
)
_FIELDS = {
  "lam": _NUMBER,
  "false_alarm_rate": (lambda v: _is_number(v) and 0 < v < 1, "a number between 0 and 1"),
  "threshold": _NUMBER,
  "region_level": _NUMBER,
  "pixel_error": _POSITIVE,
  "frames": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
  "videos": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of names"),
  "held_out": (lambda v: v is None or isinstance(v, Mapping), "an object"),
}


def calibrated_scores(stats: Mapping[str, np.ndarray], calibration: Mapping[str, object]) -> dict[str, np.ndarray]:
  """``{stream: calibrated score in [0, 1] per frame}`` (a calibration ``check`` passes)."""
  if calibration.get("version") != VERSION:
    raise ValueError(
      f"calibration version {calibration.get('version')!r} is not {VERSION}; fit it again "
      f"(vad-jax calibrate --workdir RUN)"
    )
  raws = raw_scores(stats, calibration["features"], calibration["lam"])
  levels = np.linspace(0.0, 1.0, QUANTILES)
  out = {}
  for stream, raw in raws.items():
    quantiles = np.asarray(calibration["quantiles"][stream])
    # Share of normal frames below: interpolated between stored quantiles, 0 and 1 outside.
    unique, first = np.unique(quantiles, return_index=True)
    out[stream] = np.interp(raw, unique, levels[first], left=0.0, right=1.0)
  return out


def events(labels: np.ndarray) -> list[tuple[int, int]]:
  """``(first, last)`` positions of each run of anomalous (1) labels."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], (labels == 1).astype(int), [0]])))
  return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def deployment_metrics(
  videos: Sequence[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]], threshold: float
) -> dict[str, float]:
  """The deployment protocol over ``(frame indices, labels, {stream: calibrated})`` per
  video: per stream, the AUC of the pooled calibrated scores (no per-video
  normalisation), the false-alarm rate on normal frames, the share of anomalous events
  (runs of anomalous frames) with at least one alarm, and the mean delay in frames from
  an event's start to its first alarm (over detected events)."""
  results = {}
  for stream in STREAM_TERMS:
    labels = np.concatenate([v[1] for v in videos])
    scores = np.concatenate([v[2][stream] for v in videos])
    known = labels >= 0
    results[f"{stream}_deployment_auc"] = metrics.roc_auc(labels[known], scores[known])
    normal = labels == 0
    results[f"{stream}_false_alarm_rate"] = float(np.mean(scores[normal] > threshold)) if normal.any() else float("nan")
    found, delays, total = 0, [], 0
    for frames, video_labels, video_scores in videos:
      for first, last in events(video_labels):
        total += 1
        alarmed = np.flatnonzero(video_scores[stream][first : last + 1] > threshold)
        if alarmed.size:
          found += 1
          delays.append(int(frames[first + alarmed[0]] - frames[first]))
    results[f"{stream}_events_detected"] = found / total if total else float("nan")
    results[f"{stream}_detection_delay"] = float(np.mean(delays)) if delays else float("nan")
  results["anomalous_events"] = float(total)
  return results
