"""The calibrated score in JAX (vad_jax/dual_stream/exported_scores.py) against the
host's (calibration.calibrated_scores), and the refusal to export a score that differs."""

import jax
import numpy as np
import pytest

from tests import generated_statistics
from vad_jax.dual_stream import calibration, exported_scores


def normal_stats(rng, n):
  """``generated_statistics.normal_stats`` in float32, as a model gives them."""
  return {k: v.astype(np.float32) for k, v in generated_statistics.normal_stats(rng, n).items()}


@pytest.fixture(scope="module")
def fitted():
  return calibration.fit(normal_stats(np.random.default_rng(0), 40), lam=0.8, false_alarm_rate=0.05, videos=["a"])


def test_the_program_scores_and_alarms_as_the_host(fitted):
  fn, description = exported_scores.calibrated_outputs(None, fitted)
  stats = normal_stats(np.random.default_rng(1), 2000)
  stats["block_psnr"][:100] -= 15  # anomalous: far above the calibration's quantiles
  host = calibration.calibrated_scores({k: v.astype(np.float64) for k, v in stats.items()}, fitted)
  program = jax.jit(fn)(stats)
  for stream, name in exported_scores.SCORE_NAMES.items():
    np.testing.assert_allclose(program[name], host[stream], rtol=0, atol=1e-5, err_msg=name)
  assert np.all(np.asarray(program["score"][:100]) == 1.0)
  decided = np.abs(host["fused"] - fitted["threshold"]) > 1e-5
  np.testing.assert_array_equal(np.asarray(program["alarm"])[decided], (host["fused"] > fitted["threshold"])[decided])
  assert description["threshold"] == 0.95 and description["frames"] == 40 and description["videos"] == ["a"]
  assert description["version"] == fitted["version"] and description["false_alarm_rate"] == 0.05


def test_tied_quantiles_keep_their_first_level():
  xp, fp = exported_scores._interpolation_points([0.0, 1.0, 1.0, 1.0, 2.0])
  np.testing.assert_array_equal(xp, [0.0, 1.0, 2.0])
  np.testing.assert_array_equal(fp, [0.0, 0.25, 1.0])


def test_a_score_the_host_computes_otherwise_is_not_exported(fitted, monkeypatch):
  real = calibration.calibrated_scores
  monkeypatch.setattr(calibration, "calibrated_scores", lambda stats, c: {k: v**2 for k, v in real(stats, c).items()})
  with pytest.raises(ValueError, match="exported_scores.py must follow calibration.py"):
    exported_scores.calibrated_outputs(None, fitted)
  monkeypatch.undo()
  with pytest.raises(ValueError, match="fit it again"):
    exported_scores.calibrated_outputs(None, {**fitted, "version": -1})
