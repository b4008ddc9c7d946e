"""Training, checkpoint/resume, evaluation and their error paths, end to end on the tiny
synthetic dataset over 8 virtual CPU devices."""

import json
import pathlib
import shutil
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

from vad_jax import checkpointing, loop, sharding
from vad_jax import state as state_lib
from vad_jax.configs import synthetic
from vad_jax.data import prepare, sources
from vad_jax.detector import Detector
from vad_jax.dual_stream import evaluation, scoring, steps
from vad_jax.dual_stream import task as dual_stream_task
from vad_jax.video import results

REPO = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(data_dir, **overrides):
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.update_from_flattened_dict(overrides)
  return config


def read_jsonl(workdir):
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tiny_run):
  return tiny_run


def test_training_writes_everything(uninterrupted):
  workdir, results = uninterrupted
  for name in ("eval/metrics.json", "eval/scores.csv", "eval/roc.png", "metrics.jsonl"):
    assert (workdir / name).is_file(), name
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  logged = read_jsonl(workdir)
  assert [r["step"] for r in logged if "train/loss" in r] == [2, 4, 6]
  assert json.loads((workdir / "eval/metrics.json").read_text())["fused_micro_auc"] == pytest.approx(
    results["fused_micro_auc"]
  )
  lines = (workdir / "eval/scores.csv").read_text().splitlines()[1:]
  assert len(lines) == results["frames"]
  assert len({tuple(line.split(",")[:2]) for line in lines}) == len(lines)
  assert 0.0 <= results["fused_micro_auc"] <= 1.0
  assert sorted(checkpointing.Checkpointer(workdir / "checkpoints", create=False).all_steps()) == [2, 4, 6]


def test_killed_run_resumes_identically(data_dir, uninterrupted, tmp_path):
  workdir_a, results_a = uninterrupted
  config = tiny_config(data_dir)
  assert loop.train_and_evaluate(config, str(tmp_path), stop_after_steps=3) == {}
  # Simulate a kill after step 3 ran and was logged but before its checkpoint landed.
  shutil.rmtree(tmp_path / "checkpoints" / "3")
  assert [r["step"] for r in read_jsonl(tmp_path)] == [2, 3]
  results_b = loop.train_and_evaluate(config, str(tmp_path))
  logged_a, logged_b = read_jsonl(workdir_a), read_jsonl(tmp_path)
  assert [r["step"] for r in logged_b] == [r["step"] for r in logged_a]  # nothing lost or duplicated
  for a, b in zip(logged_a, logged_b):
    if "train/loss" in a:
      np.testing.assert_allclose(a["train/loss"], b["train/loss"], rtol=1e-5)
  for key in ("fused_micro_auc", "spatial_micro_auc", "temporal_micro_auc", "fused_eer"):
    np.testing.assert_allclose(results_a[key], results_b[key], rtol=1e-5)


def test_checkpoint_restores_on_other_device_counts(data_dir, uninterrupted):
  workdir, _ = uninterrupted
  scores = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(devices)
    config, state = state_lib.restore(workdir / "checkpoints", None, mesh)
    config.data.data_dir = str(data_dir)
    split = sources.open_split(config.data.name, "test", data_dir=str(data_dir))
    arrays = evaluation.frame_statistics(config, mesh, split, steps.model_statistics(config, state))
    # The template is abstract (state.abstract_state): every leaf must come back as an
    # array, replicated over the new mesh.
    for leaf in jax.tree.leaves(state):
      assert isinstance(leaf, jax.Array) and leaf.sharding.is_fully_replicated, type(leaf)
      assert leaf.sharding.device_set == set(devices)
    scores.append(arrays)
  for key in scoring.STAT_KEYS:
    np.testing.assert_allclose(scores[0][key], scores[1][key], rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
  loop.train_and_evaluate(tiny_config(data_dir), str(tmp_path), stop_after_steps=2)
  with pytest.raises(loop.NonFiniteLossError, match=r"step 3: .*'loss': nan"):
    loop.train_and_evaluate(tiny_config(data_dir, **{"loss.alpha": float("nan")}), str(tmp_path))
  assert checkpointing.Checkpointer(tmp_path / "checkpoints", create=False).all_steps() == [2]


def test_training_on_several_cpu_devices_keeps_one_step_in_flight(data_dir, tmp_path, monkeypatch):
  """On 8 CPU devices each step waits for the previous one before it is dispatched:
  steps piled up ahead of the devices abort the process in XLA:CPU's rendezvous on a
  loaded machine (sharding.dispatch_in_order). Between log steps nothing else blocks."""
  assert sharding.serial_dispatch()
  waited = []
  real = jax.block_until_ready
  monkeypatch.setattr(jax, "block_until_ready", lambda x: waited.append(1) or real(x))
  config = tiny_config(data_dir, num_train_steps=6, log_every_steps=3, checkpoint_every_steps=6, eval_at_end=False)
  loop.train_and_evaluate(config, str(tmp_path))
  assert len(waited) == 4  # steps 2, 3, 5 and 6 wait for the one before (the log fetch empties the queue)


# ---- evaluation aggregation with a fake model --------------------------------------


def _png(level):
  import io

  from PIL import Image

  buffer = io.BytesIO()
  Image.fromarray(np.full((8, 8), level, np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


def fake_split(videos):
  """``videos``: list of (name, intensities, labels)."""
  records, index = [], []
  for v, (name, levels, labels) in enumerate(videos):
    index.append({"name": name, "start": len(records), "length": len(levels), "label": int(max(labels))})
    for i, (level, label) in enumerate(zip(levels, labels)):
      records.append({"video": name, "video_index": v, "frame_index": i, "frame": _png(level), "label": label})
  return sources.VideoSplit(source=records, videos=tuple(index))


def test_evaluation_aggregation_hand_computed():
  # The fake model's PSNR falls with the target frame's brightness; distances are
  # constant (so they normalise to 0): score = 0.8 * minmax(brightness) per video.
  split = fake_split(
    [
      ("a", [250, 250, 10, 20, 200, 100], [1, 1, 0, 0, 1, 1]),  # frames 0-1 excluded (T = 3)
      ("b", [0, 0, 50, 60, 55], [0, 0, 1, 0, 0]),
    ]
  )
  config = synthetic.get_config("test")
  config.model.sequence_length = 3
  config.data.image_size = (8, 8)

  def fake_stats(frames):
    brightness = frames[:, -1].mean(axis=(1, 2, 3))
    zeros = 0.0 * brightness
    return {
      "psnr": -brightness,
      "spatial_psnr": -brightness,
      "temporal_psnr": -brightness,
      "spatial_distance": zeros + 1.0,
      "temporal_distance": zeros + 2.0,
      "block_psnr": -brightness,
      "spatial_block_psnr": -brightness,
      "temporal_block_psnr": -brightness,
    }

  mesh = sharding.make_mesh()
  arrays = evaluation.frame_statistics(config, mesh, split, fake_stats)
  videos = evaluation.per_video_scores(arrays, ["a", "b"], lam=0.8)
  assert [list(v.frames) for v in videos] == [[2, 3, 4, 5], [2, 3, 4]]
  np.testing.assert_allclose(videos[0].scores["fused"], 0.8 * np.array([0, 10 / 190, 1, 90 / 190]), atol=1e-3)
  np.testing.assert_allclose(videos[1].scores["fused"], [0.0, 0.8, 0.4], atol=1e-3)
  results = evaluation.frame_level_metrics(videos)
  # Positives .8, .379, 0 vs negatives 0, .042, .8, .4: (3.5 + 2 + .5) / 12 pairs.
  assert results["fused_micro_auc"] == pytest.approx(0.5)
  assert results["fused_macro_auc"] == pytest.approx(0.5)  # video a: 1.0, video b: 0.0
  assert results["fused_eer"] == pytest.approx(0.5)
  assert results["frames"] == 7 and results["anomalous_frames"] == 3
  # Without per-video normalisation the pooled AUC would be 10/12: the test can tell.
  raw = np.array([10, 20, 200, 100, 50, 60, 55])
  from vad_jax import metrics

  assert metrics.roc_auc([0, 0, 1, 1, 1, 0, 0], raw) == pytest.approx(10 / 12)


def test_an_evaluation_with_one_labelled_frame_says_why_its_aucs_are_nan():
  stats = {k: np.array([30.0, 31.0, 32.0]) for k in scoring.STAT_KEYS}
  scores = {s: np.array([0.0, 0.5, 1.0]) for s in evaluation.STREAMS}
  video = evaluation.VideoScores(0, "gate", np.array([4, 5, 6]), np.array([-1, 1, -1]), stats, scores)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # undefined metrics are said in the summary, not warned about
    results = evaluation.frame_level_metrics([video])
  lines = evaluation.summary(results).splitlines()
  assert lines[0] == (
    "frame-level evaluation: 1 frames (1 anomalous) in 1 videos; literature protocol (per-video min-max, Eq. 16):"
  )
  assert lines[1] == "  fused    micro AUC nan   macro AUC nan   EER nan"
  assert lines[4:] == [
    "  micro AUC and EER nan: all 1 scored frames are anomalous: an AUC needs both classes",
    "  macro AUC nan: no video has both normal and anomalous labelled frames",
  ]
  assert evaluation.summary({**results, "frames": 0, "anomalous_frames": 0}).splitlines()[4] == (
    "  micro AUC and EER nan: no labelled frames to score: an AUC needs labels"
  )


def test_duplicate_frames_are_rejected():
  arrays = {
    "video_index": np.array([0, 0]),
    "frame_index": np.array([4, 4]),
    "label": np.array([0, 1]),
    **{k: np.zeros(2) for k in scoring.STAT_KEYS},
  }
  with pytest.raises(ValueError, match="frame 4 of video v0 was scored more than once"):
    evaluation.per_video_scores(arrays, ["v0"], lam=0.8)


# ---- bad input ----------------------------------------------------------------------


def test_config_typo_suggests_the_right_field():
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "vad_jax.train",
      "--config",
      "configs/synthetic.py:test",
      "--config.optimizer.learning_rat=0.1",
      "--workdir",
      "/tmp/never-used",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert 'Did you mean "learning_rate"' in result.stderr


def test_missing_or_unknown_dataset(tmp_path):
  config = synthetic.get_config("test")
  config.data.data_dir = str(tmp_path)
  config.data.prepare = False
  with pytest.raises(FileNotFoundError, match="is not prepared in"):
    prepare.ensure_prepared(config.data)
  config.data.name = "avenu"
  with pytest.raises(ValueError, match=r"unknown dataset 'avenu'.*avenue"):
    prepare.ensure_prepared(config.data)


def test_empty_dataset_errors():
  with pytest.raises(ValueError, match="evaluation produced no frames"):
    sharding.gather([])


def test_empty_training_split_is_a_clear_error(data_dir):
  config = tiny_config(data_dir, **{"model.sequence_length": 1000})
  with pytest.raises(
    ValueError,
    match=r"no clip of model.sequence_length frames \(1000 frames, split 'train' of "
    r"synthetic_surveillance\)",
  ):
    dual_stream_task.train_iterator(config, sharding.make_mesh())


def test_missing_and_corrupt_checkpoints(uninterrupted, tmp_path):
  mesh = sharding.make_mesh()
  with pytest.raises(checkpointing.CheckpointError, match="no checkpoint directory at"):
    state_lib.restore(tmp_path / "nowhere", None, mesh)
  (tmp_path / "empty").mkdir()
  with pytest.raises(checkpointing.CheckpointError, match="no checkpoint found"):
    state_lib.restore(tmp_path / "empty", None, mesh)
  workdir, _ = uninterrupted
  corrupt = tmp_path / "corrupt"
  shutil.copytree(workdir / "checkpoints", corrupt)
  for f in (corrupt / "6" / "state").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  with pytest.raises(checkpointing.CheckpointError, match=r"could not restore checkpoint step 6 from .*corrupt/6"):
    state_lib.restore(corrupt, 6, mesh)


def test_evaluate_cli_reports_missing_checkpoint(tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "vad_jax.evaluate", "--workdir", str(tmp_path / "none")],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert "no checkpoint directory at" in result.stderr


# ---- the detector -------------------------------------------------------------------


def test_alarm_intervals_and_causal_normalisation():
  frames = np.arange(10, 20)
  alarm = np.array([0, 1, 1, 1, 0, 1, 0, 1, 1, 1], bool)
  assert results.alarm_intervals(frames, alarm, min_frames=1) == [(11, 13), (15, 15), (17, 19)]
  assert results.alarm_intervals(frames, alarm, min_frames=3) == [(11, 13), (17, 19)]
  np.testing.assert_allclose(results.causal_minmax(np.array([2.0, 2.0, 4.0, 3.0, 6.0])), [0, 0, 1, 0.5, 1])


def test_detect_on_video_file_and_frame_folder(data_dir, uninterrupted, tmp_path):
  from PIL import Image

  from vad_jax.tfds_builders import video as video_lib
  from vad_jax.tfds_builders.synthetic_surveillance import scene as synthetic_data

  workdir, _ = uninterrupted
  clip = synthetic_data.generate_video(3, num_frames=20, anomalies=("fast_mover",))
  rgb = np.repeat(clip.frames, 3, axis=-1) if clip.frames.shape[-1] == 1 else clip.frames
  video_path = tmp_path / "walkway.mp4"
  video_lib.write_video(video_path, rgb)
  folder = tmp_path / "frames"
  folder.mkdir()
  for i, frame in enumerate(rgb):
    Image.fromarray(frame).save(folder / f"{i:03d}.png")
  (folder / "._000.png").write_bytes(b"resource fork junk")
  config, state = state_lib.restore(workdir / "checkpoints", None, sharding.make_mesh(jax.devices()[:1]))
  t = config.model.sequence_length
  result_f = Detector(config, state).score(folder, batch_size=8, normalisation="video")
  frames_f, scores_f, stats = result_f.frames, result_f.scores, result_f.details
  np.testing.assert_array_equal(frames_f, np.arange(t - 1, 20))  # every frame with T-1 predecessors
  np.testing.assert_allclose(
    scores_f,
    scoring.fused_score(stats["psnr"], stats["spatial_distance"], stats["temporal_distance"], config.score.lam),
  )
  assert 0.0 <= scores_f.min() and scores_f.max() <= 1.0
  result_v = Detector(config, state).score(video_path, batch_size=8, normalisation="causal")
  frames_v, scores_v = result_v.frames, result_v.scores
  np.testing.assert_array_equal(frames_v, frames_f)
  assert np.isfinite(scores_v).all()
  broken = tmp_path / "broken.mp4"
  broken.write_bytes(b"not a video at all")
  with pytest.raises(Exception, match="broken.mp4"):
    Detector(config, state).score(broken, normalisation="video")
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "vad_jax.detect",
      str(folder),
      "--checkpoint",
      str(workdir),
      "--threshold",
      "0.5",
      "--min_frames",
      "1",
      "--normalisation=video",
      "--output",
      str(tmp_path / "strip.png"),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  rows = result.stdout.strip().splitlines()
  assert rows[0] == "frame,score,alarm,boxes" and len(rows) == 1 + 20 - (t - 1)
  assert all(row.endswith(",") for row in rows[1:])  # no boxes without the calibrated score
  assert "alarm intervals" in result.stderr
  assert (tmp_path / "strip.png").is_file()


def test_checkpoint_written_before_the_redesign_restores_and_evaluates_identically(data_dir, tmp_path):
  """``tests/data/legacy_checkpoints/dual_stream``: 2 steps of ``synthetic:test`` saved by
  the code before the task/package redesign (commit cea6758), with the evaluation
  results that code computed from it. The localisation figures came later: the restored
  config turns them on (``checkpointing.ADDED_FIELDS``) and they are the only new keys."""
  legacy = pathlib.Path(__file__).parents[1] / "fixtures" / "legacy_checkpoints" / "dual_stream"
  shutil.copytree(legacy, tmp_path / "checkpoints", ignore=shutil.ignore_patterns("results.json"))
  mesh = sharding.make_mesh()
  config, state = state_lib.restore(tmp_path / "checkpoints", None, mesh)
  config.data.data_dir = str(data_dir)
  results = dual_stream_task.evaluate(config, state, mesh)
  expected = json.loads((legacy / "results.json").read_text())
  assert config.eval_pixel_metrics and results.keys() - expected.keys() == set(evaluation.PIXEL_KEYS)
  assert expected.keys() <= results.keys()
  for key, value in expected.items():
    assert results[key] == pytest.approx(value, abs=1e-6), key
