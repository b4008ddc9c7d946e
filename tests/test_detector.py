"""The Python API (``vad_jax.detector``), one preprocessing path for ``detect`` and
``evaluate``, and the ``jax.export`` round trip in a process without this package."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from vad_jax import sharding
from vad_jax import state as state_lib
from vad_jax.configs import classifier
from vad_jax.data import sources
from vad_jax.detector import Detector
from vad_jax.dual_stream import evaluation, scoring, steps
from vad_jax.dual_stream import task as dual_stream_task
from vad_jax.video import sources as video_sources
from vad_jax.video import windows


@pytest.fixture(scope="module")
def trained(tiny_run):
  return tiny_run[0]


def write_video_frames(split, video: int, folder: pathlib.Path) -> list[int]:
  """The encoded frames of ``split``'s video as files (the records' own bytes)."""
  folder.mkdir()
  info = split.videos[video]
  records = sources.read_records(split.source, np.arange(info["start"], info["start"] + info["length"]))
  for i, record in enumerate(records):
    (folder / f"{i:04d}.png").write_bytes(record["frame"])
  return list(range(info["length"]))


def test_detect_and_evaluate_give_identical_scores_for_identical_frames(trained, data_dir, tmp_path):
  detector = Detector.load(trained)
  config = detector.config
  config.data.data_dir = str(data_dir)
  split = sources.open_split(config.data.name, "test", data_dir=str(data_dir))
  write_video_frames(split, 0, tmp_path / "frames")
  result = detector.score(tmp_path / "frames", normalisation="video")
  mesh = sharding.make_mesh()
  _, state = state_lib.restore(trained / "checkpoints", None, mesh)
  arrays = evaluation.frame_statistics(config, mesh, split, steps.model_statistics(config, state))
  rows = np.flatnonzero(arrays["video_index"] == 0)
  rows = rows[np.argsort(arrays["frame_index"][rows])]
  np.testing.assert_array_equal(result.frames, arrays["frame_index"][rows])
  for key in scoring.STAT_KEYS:
    np.testing.assert_allclose(result.details[key], arrays[key][rows], rtol=1e-5, atol=1e-5, err_msg=key)


def test_the_api_scores_paths_arrays_and_iterables_alike(trained, data_dir, tmp_path):
  detector = Detector.load(trained / "checkpoints" / "6")
  split = sources.open_split("synthetic_surveillance", "test", data_dir=str(data_dir))
  write_video_frames(split, 1, tmp_path / "frames")
  from_folder = detector.score(tmp_path / "frames", batch_size=4, normalisation="video")
  rgb = np.stack([windows.to_rgb(f) for f in video_sources.read_video(tmp_path / "frames")])
  from_array = detector.score(rgb, batch_size=3, normalisation="video")
  from_generator = detector.score((frame for frame in rgb), threshold=0.5, normalisation="causal")
  np.testing.assert_array_equal(from_folder.frames, from_array.frames)
  np.testing.assert_allclose(from_folder.scores, from_array.scores, atol=1e-5)  # PNG gray == its RGB copy
  assert from_generator.threshold == 0.5 and from_generator.rule == "causal-normalised score > 0.5"
  alarms = detector.alarm_intervals(from_folder, min_frames=1)
  assert all(a <= b for a, b in alarms)
  assert sum(b - a + 1 for a, b in alarms) == int(from_folder.alarm.sum())


_RELOAD = """
import json, sys
import jax, numpy as np
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
inputs = np.load(sys.argv[2])
outputs = exported.call(*[inputs[name] for name in json.loads(sys.argv[3])])
np.savez(sys.argv[4], **{k: np.asarray(v) for k, v in outputs.items()})
print("vad_jax imported:", any(m.startswith("vad_jax") for m in sys.modules))
"""


@pytest.mark.parametrize("model", ["dual_stream", "hybrid"])
def test_exported_scoring_runs_with_jax_alone_and_matches(model, trained, tmp_path):
  if model == "dual_stream":
    detector = Detector.load(trained)
  else:
    config = classifier.get_config("hybrid,synthetic,test")
    mesh = sharding.make_mesh(jax.devices()[:1])
    task = dual_stream_task if model == "dual_stream" else __import__("vad_jax.tasks").tasks.for_config(config)
    state = state_lib.initial_state(task, task.build_model(config), config, state_lib.make_optimizer(config, 1), mesh)
    detector = Detector(config, state)
  path = detector.export(tmp_path / "model.jaxexport")
  description = json.loads(path.with_suffix(".json").read_text())
  assert description["calibrated"] is False if model == "dual_stream" else "calibrated" not in description
  rng = np.random.default_rng(0)
  inputs = {}
  for spec in description["inputs"]:
    shape = (3, *spec["shape"][1:])  # any batch size: the batch dimension is symbolic
    inputs[spec["name"]] = (rng.random(shape) * 8).astype(spec["dtype"])
  np.savez(tmp_path / "inputs.npz", **inputs)
  names = [spec["name"] for spec in description["inputs"]]
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      _RELOAD,
      str(path),
      str(tmp_path / "inputs.npz"),
      json.dumps(names),
      str(tmp_path / "out.npz"),
    ],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "vad_jax imported: False" in result.stdout
  reloaded = np.load(tmp_path / "out.npz")
  task = detector.task
  expected = jax.jit(
    lambda b: task.eval_step(detector.state, b, model=task.build_model(detector.config), config=detector.config)
  )(inputs)
  assert sorted(reloaded.files) == sorted(expected) == sorted(description["outputs"])
  for key in expected:
    np.testing.assert_allclose(reloaded[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_a_classifier_streams_its_offline_probabilities_and_moving_average_alarms():
  config = classifier.get_config("hybrid,synthetic,test")
  config.alarm.window = 3
  task = __import__("vad_jax.tasks").tasks.for_config(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  state = state_lib.initial_state(task, task.build_model(config), config, state_lib.make_optimizer(config, 1), mesh)
  detector = Detector(config, state)
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(2 * config.data.clip_frames + 3)]
  offline = detector.score(frames, batch_size=2)
  threshold = float(np.median(offline.level))  # some frames alarmed, some not
  offline = detector.score(frames, batch_size=2, threshold=threshold)
  streamed = list(detector.stream(iter(frames), batch_size=1, threshold=threshold, error_maps=True))
  assert [r.index for r in streamed] == offline.frames.tolist() == list(range(len(frames)))
  np.testing.assert_allclose([r.score for r in streamed], offline.scores, atol=1e-6)
  np.testing.assert_allclose([r.level for r in streamed], offline.level, atol=1e-12)
  assert [r.alarm for r in streamed] == offline.alarm.tolist() and all(r.error_map is None for r in streamed)
