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
"""

from collections.abc import Mapping, Sequence

import numpy as np

from vad_jax import metrics

VERSION = 2  # 1: z-scored PSNR (did not carry over between videos)
FEATURES = ("concentration", "spatial_concentration", "temporal_concentration", "spatial_distance", "temporal_distance")
STREAM_TERMS = {
  "fused": ("concentration", ("spatial_distance", "temporal_distance")),
  "spatial": ("spatial_concentration", ("spatial_distance",)),
  "temporal": ("temporal_concentration", ("temporal_distance",)),
}
QUANTILES = 1001  # stored points of each stream's distribution of normal raw scores


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
  stats: Mapping[str, np.ndarray], lam: float, false_alarm_rate: float, videos: Sequence[str]
) -> dict[str, object]:
  """The calibration (a JSON-able dict) from the statistics of normal frames."""
  if not 0.0 < false_alarm_rate < 1.0:
    raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
  count = len(next(iter(stats.values())))
  if count < 20:
    raise ValueError(f"calibration needs at least 20 normal frames, got {count} (videos {list(videos)})")
  features = {}
  for key, values in feature_values(stats).items():
    features[key] = {"mean": float(values.mean()), "std": float(max(values.std(), 1e-6))}
  raws = raw_scores(stats, features, lam)
  levels = np.linspace(0.0, 1.0, QUANTILES)
  return {
    "version": VERSION,
    "lam": float(lam),
    "features": features,
    "quantiles": {stream: np.quantile(raw, levels).tolist() for stream, raw in raws.items()},
    "false_alarm_rate": float(false_alarm_rate),
    "threshold": float(1.0 - false_alarm_rate),
    # Mean squared error per pixel of the normal frames (for drawing heat maps to scale).
    "pixel_error": float(np.mean(10.0 ** (-np.asarray(stats["psnr"], np.float64) / 10.0))),
    "frames": int(count),
    "videos": [str(v) for v in videos],
  }


def calibrated_scores(stats: Mapping[str, np.ndarray], calibration: Mapping[str, object]) -> dict[str, np.ndarray]:
  """``{stream: calibrated score in [0, 1] per frame}``."""
  if calibration.get("version") != VERSION:
    raise ValueError(
      f"calibration version {calibration.get('version')!r} is not {VERSION}; fit it again "
      f"(python -m vad_jax.calibrate --workdir RUN)"
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
