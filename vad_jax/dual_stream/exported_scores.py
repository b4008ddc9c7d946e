"""The calibrated deployment score in JAX, for programs exported with their calibration.

``calibration.calibrated_scores`` computes the score on the host, in numpy, from the
frame statistics. An exported program (``vad_jax.export``) computes it inside the
program instead, so that a user with JAX alone gets scores and alarms rather than raw
PSNR: the same z-scores with the calibration's means and standard deviations, the same
mix with ``lam``, and the share of normal frames below by ``jnp.interp`` over the
stored quantiles (deduplicated with their first levels here, once; 0 below the lowest,
1 above the highest). The calibration's numbers become constants of the program.

The program works in float32 where the host works in float64; ``calibrated_outputs``
checks, before anything is exported, that the two agree on statistics spread over the
calibration's range, so a change of the host's formula (a new calibration version)
cannot go out silently as a different score in the program.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vad_jax.dual_stream import calibration as calibration_lib
from vad_jax.dual_stream import scoring

Array = Any
SCORE_NAMES = {"fused": "score", "spatial": "spatial_score", "temporal": "temporal_score"}
CHECK_TOLERANCE = 1e-4  # host float64 vs program float32, on the check's statistics
# What ``_features`` computes (``calibration.feature_values``'s features at version 2).
FEATURES = ("concentration", "spatial_concentration", "temporal_concentration", "spatial_distance", "temporal_distance")


def _features(stats: Mapping[str, Array]) -> dict[str, Array]:
  """``calibration.feature_values`` in JAX (float32)."""
  values = {}
  for prefix in ("", "spatial_", "temporal_"):
    # Exact in float32 while the worst block's PSNR is at least half the frame's (Sterbenz).
    values[f"{prefix}concentration"] = stats[f"{prefix}psnr"] - stats[f"{prefix}block_psnr"]
  for key in ("spatial_distance", "temporal_distance"):
    values[key] = stats[key]
  return values


def _split(value: float) -> tuple[np.float32, np.float32]:
  """``value`` as float32 ``high + low``: ``(x - high) - low`` keeps the float64 mean's
  digits where a standard deviation is small next to the mean (a memory distance of
  0.747 varying by 0.002: one float32 rounding of the mean would move its z-score by
  1e-5)."""
  high = np.float32(value)
  return high, np.float32(value - np.float64(high))


def _interpolation_points(quantiles) -> tuple[np.ndarray, np.ndarray]:
  """``(distinct quantiles, the first level of each)``, as float32 (ties in float32
  keep their first level, as ``np.unique`` does for the host's ties)."""
  levels = np.linspace(0.0, 1.0, len(quantiles))
  unique, first = np.unique(np.asarray(quantiles, np.float64).astype(np.float32), return_index=True)
  return unique, levels[first].astype(np.float32)


def scores_function(calibration: Mapping[str, Any]) -> Callable[[Mapping[str, Array]], dict[str, Array]]:
  """``fn(statistics) -> {score, spatial_score, temporal_score, alarm}`` per frame, in
  JAX; ``statistics`` as ``eval_step`` returns them (``scoring.STAT_KEYS``)."""
  lam = np.float32(calibration["lam"])
  needed = {
    k for concentration, distances in calibration_lib.STREAM_TERMS.values() for k in (concentration, *distances)
  }
  version = calibration.get("version")
  if needed - set(FEATURES):
    raise ValueError(
      f"the calibration (version {version!r}) scores {sorted(needed - set(FEATURES))}, which the exported "
      f"program does not compute; vad_jax/dual_stream/exported_scores.py must follow calibration.py"
    )
  if needed - set(calibration["features"]):
    raise ValueError(
      f"the calibration (version {version!r}) lacks the features {sorted(needed - set(calibration['features']))}; "
      f"fit it again (vad-jax calibrate --workdir RUN)"
    )
  features = {
    k: (*_split(calibration["features"][k]["mean"]), np.float32(calibration["features"][k]["std"])) for k in needed
  }
  points = {stream: _interpolation_points(calibration["quantiles"][stream]) for stream in SCORE_NAMES}
  threshold = np.float32(calibration["threshold"])

  def fn(stats: Mapping[str, Array]) -> dict[str, Array]:
    values = _features(stats)
    z = {k: ((values[k] - high) - low) / std for k, (high, low, std) in features.items()}
    out = {}
    for stream, (concentration, distances) in calibration_lib.STREAM_TERMS.items():
      raw = lam * z[concentration] + (1.0 - lam) * sum(z[d] for d in distances) / len(distances)
      xp, fp = points[stream]
      out[SCORE_NAMES[stream]] = jnp.interp(raw, xp, fp, left=0.0, right=1.0)
    out["alarm"] = out["score"] > threshold
    return out

  return fn


def _check_statistics(calibration: Mapping[str, Any], n: int = 512) -> dict[str, np.ndarray]:
  """Statistics whose features spread over -6 to 6 standard deviations of the
  calibration's normal frames (float32, as a model gives them)."""
  rng = np.random.default_rng(0)
  features = calibration["features"]

  def spread(key: str) -> np.ndarray:
    f = features.get(key, {"mean": 1.0, "std": 1.0})
    return f["mean"] + f["std"] * rng.uniform(-6.0, 6.0, n)

  stats = {}
  for prefix in ("", "spatial_", "temporal_"):
    stats[f"{prefix}psnr"] = rng.uniform(25.0, 45.0, n)
    stats[f"{prefix}block_psnr"] = stats[f"{prefix}psnr"] - spread(f"{prefix}concentration")
  for key in ("spatial_distance", "temporal_distance"):
    stats[key] = spread(key)
  return {k: np.asarray(stats[k], np.float32) for k in scoring.STAT_KEYS}


def check(fn: Callable[[Mapping[str, Array]], dict[str, Array]], calibration: Mapping[str, Any]) -> None:
  """``ValueError`` unless ``fn`` gives ``calibration.calibrated_scores``' scores (and
  the calibration is one the host reads: its version is checked there)."""
  stats = _check_statistics(calibration)
  host = calibration_lib.calibrated_scores({k: v.astype(np.float64) for k, v in stats.items()}, calibration)
  program = jax.device_get(jax.jit(fn)(stats))
  for stream, name in SCORE_NAMES.items():
    if stream not in host:
      raise ValueError(f"the calibration (version {calibration.get('version')!r}) has no {stream!r} score to export")
    error = float(np.max(np.abs(np.asarray(program[name], np.float64) - host[stream])))
    if not error <= CHECK_TOLERANCE:
      raise ValueError(
        f"the exported {name} would differ from the calibrated score by up to {error:.3g} (calibration version "
        f"{calibration.get('version')!r}); vad_jax/dual_stream/exported_scores.py must follow calibration.py"
      )


def calibrated_outputs(
  config, calibration: Mapping[str, Any]
) -> tuple[Callable[[Mapping[str, Array]], dict[str, Array]], dict[str, Any]]:
  """``(fn, description)``: ``fn`` adds to ``eval_step``'s outputs the calibrated
  scores and the alarm, checked against the host's (``check``); ``description``
  records the calibration for the JSON beside the program."""
  del config  # the calibration holds lam
  fn = scores_function(calibration)
  check(fn, calibration)
  description = {
    "version": calibration.get("version"),
    "threshold": float(calibration["threshold"]),
    "false_alarm_rate": float(calibration["false_alarm_rate"]),
    "frames": int(calibration["frames"]),
    "videos": list(calibration["videos"]),
    "outputs": {
      "score": "calibrated score of the fused prediction: the share of the calibration's normal frames scoring "
      "lower, in [0, 1]",
      "spatial_score": "the same for the spatial stream alone",
      "temporal_score": "the same for the temporal stream alone",
      "alarm": "score > threshold (false alarms on about false_alarm_rate of normal frames)",
    },
  }
  return fn, description
