"""Where an alarm is (vad_jax/dual_stream/regions.py) on generated error maps, the
calibration's ``region_level``, the check of a saved calibration's version and fields,
and the held-out check of a fit (vad_jax/dual_stream/calibration.py)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from tests.generated_statistics import normal_stats
from vad_jax import checkpointing, cli
from vad_jax.dual_stream import calibration, regions, scoring

SOURCE = (480, 640)  # (height, width) of the source frames; the model sees 64 x 64


def normal_map(rng, size=64):
  """A normal frame's per-pixel squared error: small everywhere, a little uneven."""
  return rng.gamma(2.0, 5e-4, (size, size)) * rng.uniform(0.7, 1.3, (1, size))


def stats_of(maps, rng):
  """Per-frame statistics (``scoring.STAT_KEYS``) whose fused PSNRs are those of ``maps``."""
  n = len(maps)
  worst = np.array([regions.block_concentration(m).max() for m in maps])
  psnr = np.array([10 * np.log10(1 / m.mean()) for m in maps])
  stats = {"psnr": psnr, "block_psnr": psnr - worst}
  for prefix in ("spatial_", "temporal_"):
    stats[f"{prefix}psnr"] = rng.normal(30, 1, n)
    stats[f"{prefix}block_psnr"] = stats[f"{prefix}psnr"] - rng.gamma(4.0, 1.2, n)
  stats["spatial_distance"], stats["temporal_distance"] = rng.gamma(2.0, 0.1, n), rng.gamma(3.0, 0.1, n)
  return stats


@pytest.fixture(scope="module")
def fitted():
  rng = np.random.default_rng(0)
  maps = [normal_map(rng) for _ in range(600)]
  return calibration.fit(stats_of(maps, rng), lam=0.8, false_alarm_rate=0.05, videos=["normal"])


def test_a_bright_error_blob_gives_one_box_covering_it_in_source_pixels(fitted):
  rng = np.random.default_rng(1)
  error = normal_map(rng)
  error[20:28, 40:56] += 0.05  # an object predicted badly: rows 20-27, columns 40-55 of 64
  boxes = regions.alarm_boxes(error, fitted["region_level"], SOURCE)
  # Blocks of 8 x 8 model pixels: rows 2-3 and columns 5-6, i.e. y 120-240 and x 400-560
  # of the 480 x 640 source (the blob itself: y 150-210, x 400-560).
  assert boxes == ((400, 120, 560, 240),)
  assert regions.alarm_boxes(error, fitted["region_level"], (64, 64)) == ((40, 16, 56, 32),)
  assert regions.alarm_boxes(error, fitted["region_level"], (100, 90)) == ((56, 25, 79, 50),)  # edges rounded out


def test_a_normal_frame_rarely_reaches_the_region_level_and_then_gets_its_worst_block(fitted):
  rng = np.random.default_rng(2)
  level = fitted["region_level"]
  reached = [bool(regions.groups(regions.block_concentration(normal_map(rng)), level)) for _ in range(600)]
  # the level is the 95 % quantile of each normal frame's worst block: about 5 % of
  # unseen normal frames hold a block at or above it
  assert 0.01 < np.mean(reached) < 0.1
  # The 95 % quantile of all blocks pooled would be reached on most normal frames.
  pooled = np.quantile([regions.block_concentration(normal_map(rng)) for _ in range(300)], 0.95)
  reached = [bool(regions.groups(regions.block_concentration(normal_map(rng)), pooled)) for _ in range(300)]
  assert np.mean(reached) > 0.5
  error = normal_map(rng)
  concentration = regions.block_concentration(error)
  assert regions.groups(concentration, level) == []
  (box,) = regions.alarm_boxes(error, level, SOURCE)  # alarmed anyway (the distances): the worst block
  row, col = np.unravel_index(np.argmax(concentration), concentration.shape)
  assert box == (col * 80, row * 60, (col + 1) * 80, (row + 1) * 60)


def test_separate_regions_give_separate_boxes_the_strongest_first(fitted):
  rng = np.random.default_rng(3)
  error = normal_map(rng)
  error[0:8, 0:8] += 0.02  # block (0, 0)
  error[8:16, 8:16] += 0.02  # block (1, 1): only diagonal to (0, 0), so a group of its own
  error[48:64, 40:48] += 0.08  # blocks (6, 5) and (7, 5), the strongest
  boxes = regions.alarm_boxes(error, fitted["region_level"], (64, 64))
  assert boxes[0] == (40, 48, 48, 64)
  assert sorted(boxes[1:]) == [(0, 0, 8, 8), (8, 8, 16, 16)]


def test_the_worst_block_of_the_host_error_map_is_the_device_concentration():
  rng = np.random.default_rng(4)
  prediction = rng.uniform(-1, 1, (3, 32, 48, 3)).astype(np.float32)
  target = np.clip(prediction + rng.normal(0, 0.05, prediction.shape), -1, 1).astype(np.float32)
  target[1, 4:12, 30:40] = 1.0  # one frame with a bright region
  concentration = np.asarray(scoring.psnr(prediction, target) - scoring.block_psnr(prediction, target))
  error_maps = np.asarray(jnp.mean(jnp.square((prediction - target) / 2.0), axis=-1))  # as steps.eval_step
  host = [regions.block_concentration(m).max() for m in error_maps]
  np.testing.assert_allclose(host, concentration, atol=1e-4)
  with pytest.raises(ValueError, match="8x8 grid"):
    regions.block_concentration(np.ones((30, 32)))


# ---- saved calibrations ----------------------------------------------------------------


def saved(tmp_path, calibration_dict):
  """``calibration_dict`` saved beside a checkpoint step 6 (a folder written by orbax)."""
  (tmp_path / "checkpoints" / "6").mkdir(parents=True, exist_ok=True)
  return checkpointing.write_calibration(tmp_path / "checkpoints", 6, calibration_dict)


def test_a_version_2_calibration_is_refused_naming_the_file_and_the_command(fitted, tmp_path):
  old = {k: v for k, v in fitted.items() if k not in ("region_level", "held_out")}
  path = saved(tmp_path, {**old, "version": 2})
  with pytest.raises(ValueError) as info:
    checkpointing.read_calibration(tmp_path / "checkpoints", 6, calibration.check)
  message = str(info.value)
  assert str(path) in message and "version 2" in message
  assert f"vad-jax calibrate --workdir {path.parent}" in message
  assert cli.user_error(info.value) is info.value and "\n" not in message  # one `error:` line
  assert checkpointing.read_calibration(tmp_path / "checkpoints", 6) == {**old, "version": 2}  # unchecked: as is


@pytest.mark.parametrize(
  "field, value, named",
  [
    ("lam", "0.8", "'lam' must be a finite number, got str"),
    ("threshold", None, "'threshold' is missing"),
    ("frames", 12.5, "'frames' must be a positive integer"),
    ("videos", "a.mp4", "'videos' must be a list of names"),
    ("features", {"concentration": {"mean": 1.0, "std": "2"}}, "'features.concentration.std' must be a positive"),
    ("quantiles", {"fused": [0.0, 1.0]}, "'quantiles.fused' must be a list of 1001 finite numbers"),
  ],
)
def test_a_wrong_typed_or_missing_field_is_refused_naming_the_file_and_the_field(fitted, tmp_path, field, value, named):
  broken = json.loads(json.dumps(fitted))
  if value is None:
    del broken[field]
  else:
    broken[field] = value
  path = saved(tmp_path, broken)
  with pytest.raises(ValueError, match=named) as info:
    checkpointing.read_calibration(tmp_path / "checkpoints", 6, calibration.check)
  assert str(path) in str(info.value)
  saved(tmp_path, fitted)
  assert checkpointing.read_calibration(tmp_path / "checkpoints", 6, calibration.check) == json.loads(
    json.dumps(fitted)
  )


# ---- the held-out check of a fit -------------------------------------------------------


def three_videos(rng, shift_last: float = 0.0):
  """3 x 1000 normal frames; the last video's worst blocks ``shift_last`` dB worse."""
  stats = normal_stats(rng, 3000)
  video_of_frame = np.repeat(np.arange(3), 1000)
  stats["block_psnr"][video_of_frame == 2] -= shift_last
  return stats, video_of_frame


def warnings(lines):
  return [line for line in lines if line.startswith("warning:")]


def test_the_held_out_check_warns_when_an_unseen_video_alarms_far_above_the_target():
  rng = np.random.default_rng(5)
  stats, video_of_frame = three_videos(rng, shift_last=3.0)  # the last video: a scene unlike the others
  fitted = calibration.fit(stats, 0.8, 0.05, ["a", "b", "c"], video_of_frame)
  check = fitted["held_out"]
  assert check["part"] == "video c" and check["fit_frames"] == 2000 and check["frames"] == 1000
  assert check["false_alarm_rate"] > 3 * 0.05
  assert fitted["frames"] == 3000  # the calibration itself is fitted on every frame
  lines = calibration.summary(fitted)
  assert lines[0].startswith("alarm threshold 0.95") and "5 %" in lines[0] and "3000 normal frames of 3" in lines[0]
  assert any(line.startswith("held-out check:") and "on video c" in line for line in lines)
  (warning,) = warnings(lines)
  assert "held-out false-alarm rate" in warning and "1.5 times the target 5 %" in warning


def test_the_held_out_check_is_quiet_on_alike_videos_and_warns_of_too_few_frames():
  rng = np.random.default_rng(6)
  stats, video_of_frame = three_videos(rng)
  fitted = calibration.fit(stats, 0.8, 0.05, ["a", "b", "c"], video_of_frame)
  assert fitted["held_out"]["false_alarm_rate"] <= 1.5 * 0.05
  assert warnings(calibration.summary(fitted)) == []
  # One video of 300 frames at a 1 % target: fitted on its first 200, checked on the last
  # 100; 300 frames hold about 3 false alarms, too few to measure 1 % (2000 are needed).
  one = {k: v[:300] for k, v in stats.items()}
  fitted = calibration.fit(one, 0.8, 0.01, ["only"])
  assert fitted["held_out"]["part"] == "the last third of only" and fitted["held_out"]["frames"] == 100
  assert any(
    "300 normal frames are too few" in w and "at least 2000 frames" in w for w in warnings(calibration.summary(fitted))
  )
  small = calibration.fit({k: v[:25] for k, v in stats.items()}, 0.8, 0.05, ["short"])
  assert "skipped" in small["held_out"]  # 17 frames are too few to fit on
  assert any(line.startswith("held-out check skipped") for line in calibration.summary(small))
