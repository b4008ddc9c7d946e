"""Exported programs (vad_jax/export.py): with a calibration, the scores and alarms
computed inside the program equal the detector's in a process without this package;
the program's size and sha256 are checked before it is loaded; an export without a
calibration says so in its JSON."""

import hashlib
import json
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from vad_jax import export
from vad_jax.data import preprocessing, sources
from vad_jax.detector import Detector
from vad_jax.dual_stream import calibration
from vad_jax.video import windows

# Run in another process with jax and numpy only: the size and sha256 check of the
# module docstring, then the program on the windows.
_STANDALONE = """
import hashlib, json, sys
import jax, numpy as np
program = open(sys.argv[1], "rb").read()
info = json.load(open(sys.argv[2]))["program"]
assert len(program) == info["bytes"] and hashlib.sha256(program).hexdigest() == info["sha256"]
outputs = jax.export.deserialize(program).call(np.load(sys.argv[3]))
np.savez(sys.argv[4], **{k: np.asarray(v) for k, v in outputs.items()})
assert "vad_jax" not in sys.modules, sorted(m for m in sys.modules if m.startswith("vad_jax"))
"""
CALIBRATED_OUTPUTS = {"score", "spatial_score", "temporal_score", "alarm"}


def video_frames(data_dir, video: int) -> list[np.ndarray]:
  """uint8 RGB frames of the tiny test split's video (decoded from the records' bytes)."""
  split = sources.open_split("synthetic_surveillance", "test", data_dir=str(data_dir))
  info = split.videos[video]
  records = sources.read_records(split.source, np.arange(info["start"], info["start"] + info["length"]))
  return [windows.EncodedFrame(r["frame"], f"{video}:{i}").to_rgb() for i, r in enumerate(records)]


@pytest.fixture(scope="module")
def uncalibrated(tiny_run, tmp_path_factory):
  """The tiny run exported as it is (trained without held-out videos: no calibration)."""
  detector = Detector.load(tiny_run[0])
  assert detector.calibration is None
  return detector.export(tmp_path_factory.mktemp("uncalibrated") / "model.jaxexport")


def test_the_exported_calibrated_scores_equal_the_detectors_without_vad_jax(tiny_run, data_dir, tmp_path):
  detector = Detector.load(tiny_run[0])
  config = detector.config
  fitting = detector.score(video_frames(data_dir, 0), batch_size=8, normalisation="video")
  detector.calibration = calibration.fit(fitting.details, config.score.lam, 0.2, ["test video 0"])
  path = detector.export(tmp_path / "model.jaxexport")
  description = json.loads(export.description_path(path).read_text())
  fitted = detector.calibration
  assert description["calibrated"] is True and CALIBRATED_OUTPUTS <= set(description["outputs"])
  recorded = description["calibration"]
  for key in ("threshold", "false_alarm_rate", "frames", "videos", "version"):
    assert recorded[key] == fitted[key], key

  frames = video_frames(data_dir, 1)
  clips, targets = [], []
  for batch, index, count in windows.sliding_windows(
    iter(frames), config.model.sequence_length, tuple(config.data.image_size), config.data.channels, 8
  ):
    clips.append(batch[:count])
    targets.append(index[:count])
  np.save(tmp_path / "windows.npy", preprocessing.to_signed_unit(np.concatenate(clips)))
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      _STANDALONE,
      str(path),
      str(export.description_path(path)),
      str(tmp_path / "windows.npy"),
      str(tmp_path / "out.npz"),
    ],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  program = np.load(tmp_path / "out.npz")

  # The program's raw statistics and the detector's (two compilations of the network)
  # differ by about one float32 rounding; the z-score of a statistic that hardly varies
  # on normal frames (the 6-step model's memory distances: a std of 0.3 % of the mean)
  # magnifies that for the odd window. Most windows agree to 1e-5, none by 1e-3.
  streamed = [r for r in detector.stream(frames, batch_size=8) if r.score is not None]
  assert [r.index for r in streamed] == np.concatenate(targets).tolist()
  scores = np.array([r.score for r in streamed])
  assert np.ptp(scores) > 0.1  # not all 0 or all 1: the interpolation is exercised
  offline = detector.score(frames, batch_size=8)  # the calibrated normalisation, per stream on the host
  host = calibration.calibrated_scores(offline.details, fitted)
  for name, expected in (("score", scores), ("spatial_score", host["spatial"]), ("temporal_score", host["temporal"])):
    error = np.abs(program[name] - expected)
    assert np.quantile(error, 0.9) <= 1e-5 and error.max() <= 1e-3, (name, np.quantile(error, [0.5, 0.9, 1.0]))
  decided = np.abs(scores - fitted["threshold"]) > 1e-3
  np.testing.assert_array_equal(program["alarm"][decided], np.array([r.alarm for r in streamed])[decided])
  assert decided.mean() > 0.9 and 0 < program["alarm"].mean() < 1


def test_a_truncated_or_damaged_program_is_refused_naming_the_file(uncalibrated, tmp_path):
  path = tmp_path / "model.jaxexport"
  shutil.copy(uncalibrated, path)
  shutil.copy(export.description_path(uncalibrated), export.description_path(path))
  program = path.read_bytes()
  assert isinstance(export.load(path), jax.export.Exported)
  size, half = len(program), len(program) // 2
  path.write_bytes(program[:half])
  with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is truncated: {half} of {size} bytes"):
    export.load(path)
  damaged = bytearray(program)
  damaged[size // 3] ^= 0xFF
  path.write_bytes(bytes(damaged))
  with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: sha256 differs .*export it again: vad-jax export"):
    export.load(path)
  path.write_bytes(program)
  export.description_path(path).write_text("{")
  with pytest.raises(ValueError, match=rf"^{re.escape(str(export.description_path(path)))} is unreadable"):
    export.load(path)
  export.description_path(path).unlink()
  with pytest.raises(ValueError, match=rf"^{re.escape(str(export.description_path(path)))} is missing"):
    export.load(path)


def test_an_export_without_calibration_says_so_and_records_its_program(uncalibrated):
  description = json.loads(export.description_path(uncalibrated).read_text())
  assert description["calibrated"] is False and "vad-jax calibrate" in description["calibration"]
  assert not CALIBRATED_OUTPUTS & set(description["outputs"])
  program = uncalibrated.read_bytes()
  assert description["program"]["bytes"] == len(program) and description["program"]["file"] == uncalibrated.name
  assert description["program"]["sha256"] == hashlib.sha256(program).hexdigest()
