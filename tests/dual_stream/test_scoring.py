"""PSNR, per-video min-max and the fused anomaly score (Eqs. 14-16), and the losses."""

import jax.numpy as jnp
import numpy as np

from vad_jax.dual_stream import scoring
from vad_jax.dual_stream.loss import dual_stream_loss, prediction_loss


def test_psnr_of_known_error():
  target = jnp.full((2, 4, 4, 3), 0.2)  # 0.6 in [0, 1]
  prediction = jnp.zeros((2, 4, 4, 3))  # 0.5 in [0, 1]: error 0.1, MSE 0.01
  np.testing.assert_allclose(scoring.psnr(prediction, target), [20.0, 20.0], rtol=1e-5)
  assert float(scoring.psnr(target, target)[0]) == 100.0  # floored MSE, finite


def test_minmax_normalize():
  np.testing.assert_allclose(scoring.minmax_normalize([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
  constant = scoring.minmax_normalize([5.0, 5.0, 5.0])
  assert not np.isnan(constant).any()
  np.testing.assert_array_equal(constant, 0.0)


def test_fused_score_hand_computed():
  psnr = np.array([30.0, 20.0, 25.0])  # g -> [1, 0, .5], 1 - g -> [0, 1, .5]
  d_spatial = np.array([0.1, 0.3, 0.2])  # g -> [0, 1, .5]
  d_temporal = np.array([1.0, 1.0, 1.0])  # constant -> 0
  np.testing.assert_allclose(scoring.fused_score(psnr, d_spatial, d_temporal, lam=0.8), [0.0, 0.9, 0.45])
  np.testing.assert_allclose(scoring.stream_score(psnr, d_spatial, lam=0.8), [0.0, 1.0, 0.5])


def _aux(pred_s, target_s, disc_s, pred_t, target_t, disc_t):
  return {
    "spatial": {"prediction": pred_s, "target": target_s, "discretization": disc_s},
    "temporal": {"prediction": pred_t, "target": target_t, "discretization": disc_t},
  }


def test_objective_equations_9_to_13():
  ones, zeros = jnp.ones((2, 2, 2, 1)), jnp.zeros((2, 2, 2, 1))
  np.testing.assert_allclose(prediction_loss(ones, zeros), [1.0, 1.0])
  aux = _aux(
    ones,
    zeros,
    jnp.full((2, 3), 2.0),  # Lp1 = 1, Ls1 = 2
    0.5 * ones,
    zeros,
    jnp.full((2, 3), 4.0),
  )  # Lp2 = .25, Ls2 = 4
  loss, terms = dual_stream_loss(aux, alpha=0.1, beta=0.1, gamma_i=0.5, gamma_x=0.5)
  expected = 0.5 * (1.0 + 0.1 * 2.0) + 0.5 * (0.25 + 0.1 * 4.0)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(terms["temporal_discretization"], 4.0)
