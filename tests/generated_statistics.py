"""Per-frame statistics (``scoring.STAT_KEYS``) of normal frames, drawn at random for the
calibration tests: PSNRs around 30 dB, memory distances from gamma distributions, and a
worst block 3-8 dB worse than its frame."""

import numpy as np


def normal_stats(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
  stats = {
    "psnr": rng.normal(30, 2, n),
    "spatial_psnr": rng.normal(29, 2, n),
    "temporal_psnr": rng.normal(31, 1, n),
    "spatial_distance": rng.gamma(2.0, 0.1, n),
    "temporal_distance": rng.gamma(3.0, 0.1, n),
  }
  for prefix in ("", "spatial_", "temporal_"):
    stats[f"{prefix}block_psnr"] = stats[f"{prefix}psnr"] - rng.gamma(4.0, 1.2, n)
  return stats
