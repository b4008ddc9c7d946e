"""The calibrated deployment score (vad_jax/dual_stream/calibration.py): its false-alarm
rate, the held-out training videos, saving it with the checkpoint, the deployment
protocol in evaluation, and streaming equal to offline scoring."""

import json
import shutil

import numpy as np
import pytest

from tests.generated_statistics import normal_stats
from vad_jax import detector as detector_lib
from vad_jax import loop
from vad_jax.configs import synthetic
from vad_jax.data import sources
from vad_jax.detector import Detector
from vad_jax.dual_stream import calibration
from vad_jax.studies import curve


def test_the_threshold_gives_the_target_false_alarm_rate_on_unseen_normal_frames():
  rng = np.random.default_rng(0)
  fitted = calibration.fit(normal_stats(rng, 5000), lam=0.8, false_alarm_rate=0.01, videos=["a"])
  held_out = calibration.calibrated_scores(normal_stats(rng, 20000), fitted)
  for stream, scores in held_out.items():
    assert 0.0 <= scores.min() and scores.max() <= 1.0
    assert np.mean(scores > fitted["threshold"]) == pytest.approx(0.01, abs=0.004), stream
  anomalous = normal_stats(rng, 1000)
  anomalous["block_psnr"] -= 15  # one region predicted much worse (6 std of the normal concentration)
  assert np.mean(calibration.calibrated_scores(anomalous, fitted)["fused"] > fitted["threshold"]) > 0.9
  darker = normal_stats(rng, 20000)  # another scene: every error 5 dB larger, nothing anomalous
  for key in ("psnr", "block_psnr"):
    darker[key] -= 5
  assert np.mean(calibration.calibrated_scores(darker, fitted)["fused"] > fitted["threshold"]) == pytest.approx(
    0.01, abs=0.004
  )
  with pytest.raises(ValueError, match="at least 20 normal frames"):
    calibration.fit(normal_stats(rng, 5), 0.8, 0.01, ["tiny"])


def test_events_and_delays():
  labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0])
  assert calibration.events(labels) == [(1, 3), (6, 7)]
  scores = {s: np.array([0, 0, 0, 0.99, 0, 0.999, 0, 0, 0]) for s in calibration.STREAM_TERMS}
  metrics = calibration.deployment_metrics([(np.arange(9) + 10, labels, scores)], threshold=0.9)
  assert metrics["fused_events_detected"] == 0.5 and metrics["fused_detection_delay"] == 2.0
  assert metrics["fused_false_alarm_rate"] == pytest.approx(1 / 4) and metrics["anomalous_events"] == 2


@pytest.fixture(scope="module")
def calibrated_run(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("calibrated")
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.calibration.videos = "fold:0/3"
  config.calibration.false_alarm_rate = 0.05
  results = loop.train_and_evaluate(config, str(workdir))
  return workdir, config, results


def test_held_out_videos_are_left_out_of_training_and_fit_the_calibration(calibrated_run, data_dir):
  workdir, config, results = calibrated_run
  saved = json.loads((workdir / "checkpoints" / "6" / "calibration.json").read_text())
  split = sources.open_split(config.data.name, "train", data_dir=str(data_dir))
  held_out = {v["name"] for v in sources.select_videos(split, "fold:0/3").videos}
  trained_on = {v["name"] for v in sources.select_videos(split, "fold:0/3", exclude=True).videos}
  assert set(saved["videos"]) == held_out and held_out and trained_on and not held_out & trained_on
  assert saved["false_alarm_rate"] == 0.05 and saved["threshold"] == pytest.approx(0.95)
  for stream in ("fused", "spatial", "temporal"):  # the deployment protocol beside the literature's
    for name in ("deployment_auc", "false_alarm_rate", "events_detected"):
      assert 0.0 <= results[f"{stream}_{name}"] <= 1.0
  assert results["anomalous_events"] >= 1 and "fused_micro_auc" in results


def test_the_curve_evaluates_every_checkpoint_on_the_held_out_videos_and_the_test_split(calibrated_run):
  workdir, config, results = calibrated_run
  rows = curve.curve(workdir, steps=[4, 6], test=True)
  assert [r["step"] for r in rows] == [4, 6]
  minutes = [r["training_minutes"] for r in rows]
  assert all(np.isfinite(minutes)) and minutes == sorted(minutes) and minutes[0] > 0
  for row in rows:
    assert np.isfinite(row["validation_psnr"])
    for stream in ("fused", "spatial", "temporal"):
      assert 0.0 <= row[f"pseudo_{stream}_micro_auc"] <= 1.0
  # the test columns are the evaluation's own figures for that checkpoint
  assert rows[-1]["test_fused_micro_auc"] == pytest.approx(results["fused_micro_auc"], abs=1e-6)
  with pytest.raises(ValueError, match=r"no checkpoint at steps \[5\]"):
    curve.curve(workdir, steps=[5])


def test_training_can_keep_the_checkpoint_that_detects_the_pseudo_anomalies_best(data_dir, tmp_path):
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.calibration.videos = "fold:0/3"
  config.best_metric, config.best_metric_split = "pseudo_fused_micro_auc", "held_out"
  config.max_checkpoints_to_keep, config.eval_at_end = 1, False
  config.log_every_steps = config.checkpoint_every_steps = 3
  loop.train_and_evaluate(config, str(tmp_path))
  scores = {
    r["step"]: r["val/pseudo_fused_micro_auc"]
    for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
    if "val/pseudo_fused_micro_auc" in r
  }
  assert sorted(scores) == [3, 6]
  best = max(scores, key=scores.get)
  kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert best in kept and 6 in kept  # the best by validation, and the latest for resuming
  row = curve.curve(tmp_path, steps=[best])[0]  # the same figures as the loop logged
  assert row["pseudo_fused_micro_auc"] == pytest.approx(scores[best], abs=1e-6)


def test_the_curve_needs_held_out_videos_or_the_test_split(data_dir, tmp_path):
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.num_train_steps, config.eval_at_end = 2, False
  loop.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match="held no video out"):
    curve.curve(tmp_path)
  assert "validation_psnr" not in curve.curve(tmp_path, test=True)[0]


def test_the_detector_uses_the_saved_calibration_and_streams_like_offline(calibrated_run, data_dir, tmp_path):
  workdir, config, _ = calibrated_run
  detector = Detector.load(workdir)
  assert detector.calibration == json.loads((workdir / "checkpoints" / "6" / "calibration.json").read_text())
  split = sources.open_split(config.data.name, "test", data_dir=str(data_dir))
  video = split.videos[0]
  records = sources.read_records(split.source, np.arange(video["start"], video["start"] + video["length"]))
  from vad_jax.video import windows

  frames = [windows.EncodedFrame(r["frame"], f"frame {i}") for i, r in enumerate(records)]
  whole = detector.score(frames)
  assert whole.rule.startswith("calibrated score > 0.95")
  first_part = detector.score(frames[:40], batch_size=3)  # a stream cut short: no future frames used
  np.testing.assert_array_equal(first_part.frames, whole.frames[: len(first_part.frames)])
  np.testing.assert_allclose(first_part.scores, whole.scores[: len(first_part.scores)], atol=1e-5)  # batch rounding


def test_without_calibration_the_detector_refuses_unless_asked(calibrated_run, tmp_path, capsys):
  workdir, _, _ = calibrated_run
  bare = tmp_path / "bare"
  shutil.copytree(workdir / "checkpoints", bare / "checkpoints")
  (bare / "checkpoints" / "6" / "calibration.json").unlink()
  detector = Detector.load(bare)
  frames = np.zeros((8, 16, 16, 3), np.uint8)
  with pytest.raises(ValueError, match="has no calibration.*python -m vad_jax.calibrate"):
    detector.score(frames)
  assert detector.score(frames, normalisation="video").frames.size == 8 - 4
  # Fitting one from a user's normal footage (here: frames of the training split).
  folder = tmp_path / "normal"
  folder.mkdir()
  for i in range(30):
    from PIL import Image

    Image.fromarray(np.full((16, 16), 100 + i % 5, np.uint8)).save(folder / f"{i:03d}.png")
  capsys.readouterr()
  path = detector_lib.calibrate(bare, [str(folder)], false_alarm_rate=0.1)
  assert path == bare / "checkpoints" / "6" / "calibration.json"
  assert Detector.load(bare).calibration["videos"] == [str(folder)]
  # What was fitted, said: 26 scored frames are too few for a 10 % target (200 needed),
  # and too few to hold a part out.
  said = capsys.readouterr().out
  assert "alarm threshold 0.9 on the calibrated score (target false-alarm rate 10 %)" in said
  assert "held-out check skipped" in said
  assert "warning: 26 normal frames are too few to measure a 10 % false-alarm rate" in said
  # A calibration of an earlier version is refused, naming the file and how to refit it.
  saved = json.loads(path.read_text())
  path.write_text(json.dumps({**saved, "version": 2}))
  with pytest.raises(ValueError, match=f"calibration {path} has version 2.*vad-jax calibrate --workdir"):
    Detector.load(bare)


# ---- sources and outputs of detect (issue 10, part 3) ------------------------------------


def _frames(n, size=32, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
  return [np.roll(base, i, axis=1) for i in range(n)]  # a moving texture


def test_a_network_stream_served_over_loopback_is_scored_as_it_arrives(calibrated_run):
  import socket
  import threading

  import av

  workdir, _, _ = calibrated_run
  detector = Detector.load(workdir)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  results = {}

  def receive():
    try:
      results["detection"] = detector.score(f"tcp://127.0.0.1:{port}?listen=1&listen_timeout=60000", batch_size=4)
    except Exception as error:  # reported by the assertion below
      results["error"] = error

  reader = threading.Thread(target=receive)
  reader.start()
  frames = _frames(30)
  for _ in range(100):  # the reader's socket opens in its thread
    try:
      container = av.open(f"tcp://127.0.0.1:{port}", mode="w", format="mpegts")
      break
    except av.FFmpegError:
      import time

      time.sleep(0.1)
  with container:
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
  reader.join(timeout=120)
  assert "error" not in results, results.get("error")
  detection = results["detection"]
  assert detection.frames.tolist() == list(range(4, 30))  # every frame with T - 1 predecessors
  assert np.isfinite(detection.scores).all() and detection.rule.startswith("calibrated")


def test_detect_on_a_folder_of_videos_writes_one_result_per_video_and_a_summary(calibrated_run, tmp_path):
  import subprocess
  import sys

  from vad_jax.tfds_builders import video as video_lib

  workdir, _, _ = calibrated_run
  videos = tmp_path / "videos"
  videos.mkdir()
  video_lib.write_video(videos / "a.avi", np.stack(_frames(12)))
  video_lib.write_video(videos / "b.mp4", np.stack(_frames(20, seed=1)))
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "vad_jax.detect",
      str(videos),
      "--checkpoint",
      str(workdir),
      "--output_dir",
      str(tmp_path / "out"),
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv", "b.csv", "summary.csv"]
  assert len((tmp_path / "out" / "b.csv").read_text().splitlines()) == 1 + 20 - 4
  assert (tmp_path / "out" / "b.csv").read_text().startswith("frame,score,alarm,boxes\n")
  summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
  assert summary[0].startswith("video,frames_scored") and [r.split(",")[:2] for r in summary[1:]] == [
    ["a.avi", "8"],
    ["b.mp4", "16"],
  ]


def _options(**kw):
  from vad_jax.video import report

  return report.Options(**{"batch_size": 4, "threshold": None, "normalisation": None, "min_frames": 1, **kw})


def test_the_annotated_video_keeps_the_source_frame_rate_and_draws_the_error(calibrated_run, tmp_path):
  from vad_jax.tfds_builders import video as video_lib
  from vad_jax.video import annotation, report

  workdir, _, _ = calibrated_run
  source = tmp_path / "slow.avi"
  video_lib.write_video(source, np.stack(_frames(16)), fps=10)
  detector = Detector.load(workdir)
  report.stream(detector, str(source), tmp_path / "annotated.mp4", _options())
  info = video_lib.probe(tmp_path / "annotated.mp4")
  assert info.fps == pytest.approx(10.0) and info.num_frames == 16
  assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
  # The whole-video normalisation reads the source twice and draws the same way.
  result = detector.score(source, normalisation="video")
  report.write_output(tmp_path / "strip.png", detector, str(source), result, batch_size=4)
  from PIL import Image

  assert Image.open(tmp_path / "strip.png").size[1] == 32
  # The heat map: drawn where the error is, nothing where there is none.
  results = [r for r in detector.stream(source, keep_frames=True, error_maps=True) if r.score is not None]
  assert results[0].error_map.shape == (16, 16) and (results[0].error_map >= 0).all()
  frame = np.full((32, 32, 3), 100, np.uint8)
  error = np.zeros((16, 16), np.float32)
  error[:8] = 1.0
  drawn = annotation.heat_map(frame, error, scale=0.5)
  assert (drawn[20:] == frame[20:]).all() and (drawn[:6, :, 0] > 150).all() and (drawn[:6, :, 2] < 60).all()


def test_a_failed_output_video_leaves_nothing_behind(tmp_path):
  from vad_jax.video import sources

  with pytest.raises(RuntimeError), sources.VideoWriter(tmp_path / "out.mp4", 25.0) as writer:
    writer.write(np.zeros((32, 32, 3), np.uint8))
    raise RuntimeError("the source failed")
  assert list(tmp_path.iterdir()) == []


def test_the_stream_gives_the_offline_scores_frame_by_frame_with_alarm_events(calibrated_run):
  workdir, _, _ = calibrated_run
  detector = Detector.load(workdir)
  frames = _frames(40, seed=3)
  for normalisation in ("calibrated", "causal"):
    offline = detector.score(frames, normalisation=normalisation, threshold=0.5)
    streamed = list(detector.stream(iter(frames), batch_size=3, normalisation=normalisation, threshold=0.5))
    assert [r.index for r in streamed] == list(range(40))  # every frame, in order
    assert all(r.score is None and not r.alarm for r in streamed[:4])
    # Batches of 3 and of the offline pass are different programs: their float32 PSNRs
    # differ by a few ulps (~1e-6 dB on JAX 0.10 and 0.12 alike), which the normalisation's
    # division by the spread of the scores amplifies (1.2e-5 on one frame with JAX 0.12).
    np.testing.assert_allclose([r.score for r in streamed[4:]], offline.scores, atol=5e-5)
    assert [r.alarm for r in streamed[4:]] == offline.alarm.tolist()
  kept = list(detector.stream(iter(frames), keep_frames=True))
  assert all(r.frame is frames[r.index] for r in kept)
  with pytest.raises(ValueError, match="needs the whole video"):
    next(detector.stream(iter(frames), normalisation="video"))


def test_alarm_events_open_at_min_frames_and_close_after_the_run():
  from vad_jax.video import results

  alarms = [0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1]
  found = [results.FrameResult(i, float(a), float(a) + i / 100, bool(a)) for i, a in enumerate(alarms)]
  marked = list(results.with_alarm_events(iter(found), min_frames=2))
  events = {r.index: (r.event.first, r.event.last) for r in marked if r.event is not None}
  assert events == {2: (1, None), 4: (1, 3), 8: (7, None), 10: (7, 10)}  # the single frame 5 is no event
  assert marked[4].event.peak == pytest.approx(1.03)


_MEMORY = """
import sys
import numpy as np
from vad_jax.detector import Detector
detector = Detector.load(sys.argv[1])
rng = np.random.default_rng(0)
base = rng.integers(0, 255, (240, 360 + 64, 3), dtype=np.uint8)  # a camera's frames: UCSD Ped2's 240x360
frames = (base[:, i % 64 : i % 64 + 360].copy() for i in range(int(sys.argv[2])))  # each frame a new array
results = detector.stream(frames, batch_size=8, keep_frames=True, error_maps=True)  # detect --output's path
scored = sum(r.score is not None for r in results)
with open("/proc/self/status") as f:  # this process's own peak (ru_maxrss would count the parent's pages too)
  peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(scored, peak_kb)
"""


def test_memory_does_not_grow_with_the_length_of_a_stream(calibrated_run):
  """A stream of 3,600 more camera-sized frames (3,600 x 259 kB = 933 MB if they were
  kept) raises the peak resident memory of the scoring process by less than 20 MB."""
  import subprocess
  import sys

  workdir, _, _ = calibrated_run
  peaks = {}
  for n in (400, 4000):
    out = subprocess.run(
      [sys.executable, "-c", _MEMORY, str(workdir), str(n)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    scored, peak_kb = map(int, out.stdout.split())
    assert scored == n - 4
    peaks[n] = peak_kb / 1024
  assert peaks[4000] - peaks[400] < 20.0, peaks  # MB
