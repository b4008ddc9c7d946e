"""The pseudo-anomaly validation of the dual-stream network (vad_jax/dual_stream/validation.py):
how the sped-up clips are built, where their regions go, and that a score which sees
speed detects them while one that does not scores chance."""

import numpy as np
import pytest

from vad_jax.data import preprocessing
from vad_jax.dual_stream import scoring, validation

T, SPEEDUP = 5, 3


def walking_video(n=40, h=32, w=32, seed=0):
  """Smooth stripes drifting one pixel per frame, over a little noise: everything moves,
  and what moves farther between two frames changes them more."""
  rng = np.random.default_rng(seed)
  x = np.arange(w)[None, None, :] - np.arange(n)[:, None, None]
  stripes = 120 + 100 * np.sin(2 * np.pi * x / 24) + rng.uniform(0, 5, (n, h, w))
  return stripes[..., None].astype(np.uint8)


def test_the_busiest_windows_come_in_order_and_do_not_overlap():
  motion = np.zeros((20, 20))
  motion[2:4, 2:4] = 5.0  # busiest
  motion[12:14, 14:16] = 3.0
  motion[3, 5] = 4.0  # overlaps the busiest window: never a window of its own
  windows = validation.busiest_windows(motion, (4, 4), count=2)
  assert len(windows) == 2
  (t0, l0), (t1, l1) = windows
  assert t0 <= 2 and t0 + 4 >= 4 and l0 <= 2 and l0 + 4 >= 4  # covers the busiest block
  assert t1 <= 12 and t1 + 4 >= 14 and l1 <= 14 and l1 + 4 >= 16
  assert abs(t0 - t1) >= 4 or abs(l0 - l1) >= 4
  assert len(validation.busiest_windows(motion, (12, 12), count=5)) < 5  # the frame has room for fewer


def test_sped_up_clips_differ_from_the_normal_ones_only_inside_the_region_and_before_the_target():
  frames = walking_video()
  videos = validation.pseudo_anomaly_videos({"v": frames}, T, SPEEDUP, regions=2)
  assert [v.name for v in videos] == ["v/0/mixed", "v/0/whole", "v/1/mixed", "v/1/whole"]
  reach = (T - 1) * SPEEDUP
  count = len(frames) - reach
  mixed, whole = videos[0], videos[1]
  assert mixed.labels.tolist() == [0] * (count // 2) + [1] * (count - count // 2)
  assert whole.labels.tolist() == [1] * count
  rows = np.arange(count)
  clips = whole.clips(rows)
  plain = preprocessing.to_signed_unit(np.stack([frames[j - T + 1 : j + 1] for j in range(reach, len(frames))]))
  fast = preprocessing.to_signed_unit(
    np.stack([frames[j - reach : j + 1 : SPEEDUP] for j in range(reach, len(frames))])
  )
  top, left, height, width = whole.region
  inside = np.zeros(frames.shape[1:3], bool)
  inside[top : top + height, left : left + width] = True
  np.testing.assert_array_equal(clips[:, :, inside], fast[:, :, inside])
  np.testing.assert_array_equal(clips[:, :, ~inside], plain[:, :, ~inside])
  np.testing.assert_array_equal(clips[:, -1], plain[:, -1])  # the target frame is the video's own
  assert not np.array_equal(clips[:, :-1, inside], plain[:, :-1, inside])
  np.testing.assert_array_equal(mixed.clips(rows[: count // 2]), plain[: count // 2])  # normal half untouched
  assert (height, width) == (8, 8)  # a quarter of each side


def test_bad_settings_and_short_videos_are_refused_with_the_video_named():
  with pytest.raises(ValueError, match="'short' has 10 frames"):
    validation.pseudo_anomaly_videos({"short": walking_video(n=10)}, T, SPEEDUP)
  with pytest.raises(ValueError, match="speedup"):
    validation.pseudo_anomaly_videos({"v": walking_video()}, T, 1)
  with pytest.raises(ValueError, match="region_fraction"):
    validation.pseudo_anomaly_videos({"v": walking_video()}, T, SPEEDUP, region_fraction=1.0)


def motion_stats(clips):
  """Statistics as a model might give them, from the motion between the last two input
  frames in the most changed 4x4 block: a sped-up region moves more, so its clip gets the
  lower PSNR."""
  n, _, h, w, _ = clips.shape
  change = np.abs(clips[:, -2] - clips[:, -3]).reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))
  stats = {k: 40.0 - 10.0 * change.max(axis=(1, 2)) for k in scoring.STAT_KEYS}
  stats["spatial_distance"] = stats["temporal_distance"] = np.zeros(n)
  return stats


def test_a_score_that_sees_speed_detects_the_pseudo_anomalies_and_one_that_does_not_scores_chance():
  frames = {"a": walking_video(seed=1), "b": walking_video(n=50, seed=2)}
  videos = validation.pseudo_anomaly_videos(frames, T, SPEEDUP, regions=2)
  seen = validation.validate(videos, motion_stats, batch_size=8, lam=1.0)
  assert seen["pseudo_fused_micro_auc"] > 0.9 and seen["pseudo_fused_macro_auc"] > 0.9
  normal = np.concatenate([v.clips(np.flatnonzero(v.labels == 0)) for v in videos])
  assert seen["validation_psnr"] == pytest.approx(motion_stats(normal)["psnr"].mean(), rel=1e-6)

  rng = np.random.default_rng(0)
  blind = validation.validate(
    videos, lambda clips: {k: rng.normal(30, 1, len(clips)) for k in scoring.STAT_KEYS}, batch_size=8, lam=1.0
  )
  assert 0.35 < blind["pseudo_fused_micro_auc"] < 0.65
  assert set(blind) == set(seen) and all(np.isfinite(v) for v in blind.values())
