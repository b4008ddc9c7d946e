"""Bad inputs and interruptions (issue 14): every case fails early with a message naming
the file or value, and nothing is lost or left half-written.

Case 0 (multi-device evaluation abort) is in test_sharding.py; cases 2 and 10's archive
part (frames and archives checked at preparation) are in the builder tests.
"""

import collections
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import terminal
from PIL import Image

from vad_jax import checkpointing, loop, metric_writers, plots, sharding
from vad_jax import state as state_lib
from vad_jax import workdir as workdir_lib
from vad_jax.configs import classifier, synthetic
from vad_jax.data import prepare
from vad_jax.tfds_builders import video as video_lib
from vad_jax.video import sources

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(data_dir, **overrides):
  config = synthetic.get_config("test")
  config.data.data_dir = str(data_dir)
  config.update_from_flattened_dict(overrides)
  return config


def records(workdir):
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def curve(workdir):
  return [(r["step"], r["train/loss"]) for r in records(workdir) if "train/loss" in r]


def eval_records(workdir):
  return [r for r in records(workdir) if any(k.startswith("eval/") for k in r)]


def tensorboard_points(workdir) -> collections.Counter:
  """How often each ``(tag, step)`` is in the TensorBoard files of ``workdir``."""
  events = metric_writers.read_events(pathlib.Path(workdir) / "tensorboard")
  return collections.Counter((value.tag, event.step) for event in events for value in event.summary.value)


@pytest.fixture(scope="module")
def finished(tiny_run):
  return tiny_run


# ---- 1, 3, 10: the config and paths are checked before any work ------------------------


@pytest.mark.parametrize(
  "overrides, message",
  [
    ({"max_checkpoints_to_keep": 0}, "max_checkpoints_to_keep must be >= 1, got 0: no checkpoint"),  # case 1
    ({"num_train_steps": -5}, "num_train_steps must be >= 0"),  # case 3
    (
      {"best_metric": "fused_auc"},
      r"best_metric='fused_auc' is not a metric of this model; choose one of .*fused_micro_auc",
    ),
    ({"best_metric_split": "test"}, "best_metric_split='test' needs a best_metric"),
    (
      {"best_metric": "pseudo_fused_micro_auc", "best_metric_split": "held_out"},
      r"best_metric_split='held_out' picks checkpoints on training videos held out of training, but "
      r"calibration.videos is empty",
    ),
  ],
)
def test_invalid_settings_fail_before_the_workdir_is_touched(data_dir, tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(tiny_config(data_dir, **overrides), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_misspelt_split_fails_before_training(data_dir, tmp_path):
  with pytest.raises(
    ValueError, match=r"data.eval_split='tset': no such split in .*its splits are \['test', 'train'\]"
  ):
    loop.train_and_evaluate(tiny_config(data_dir, **{"data.eval_split": "tset"}), str(tmp_path))
  assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_a_path_that_is_not_utf8_is_refused_before_anything_is_written(data_dir, tmp_path):
  bad = os.fsdecode(bytes(tmp_path) + b"/run-\xff")
  with pytest.raises(ValueError, match=r"workdir .* is not a valid UTF-8 path"):
    loop.train_and_evaluate(tiny_config(data_dir), bad)
  assert list(tmp_path.iterdir()) == []


# ---- 4: one training per workdir --------------------------------------------------------


def test_a_second_training_on_a_locked_workdir_fails_naming_the_first(data_dir, tmp_path):
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time; from vad_jax import workdir as w\n"
      "with w.WorkdirLock(sys.argv[1]):\n  print('locked', flush=True); time.sleep(60)",
      str(tmp_path),
    ],
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lib.WorkdirBusyError, match=f"in use by process {holder.pid} on "):
      loop.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LOCK"]  # nothing written
  finally:
    holder.kill()
    holder.wait()
  # The lock of the dead process is taken over.
  assert "process" in (tmp_path / "LOCK").read_text()
  with workdir_lib.WorkdirLock(tmp_path):
    assert f"process {os.getpid()} " in (tmp_path / "LOCK").read_text()


# ---- 5, 7, 8: logs survive torn writes and reruns ---------------------------------------


def test_a_torn_metrics_line_is_repaired_and_a_rerun_keeps_one_eval_record(finished, data_dir, tmp_path):
  workdir, results = finished
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  before = curve(run)
  with open(run / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "train/lo')  # power loss in the middle of a write
  with warnings.catch_warnings():
    rerun = loop.train_and_evaluate(tiny_config(data_dir), str(run))  # case 7: rerun of a finished run
  assert curve(run) == before
  assert len(eval_records(run)) == 1 and eval_records(run)[0]["step"] == 6
  assert rerun["fused_micro_auc"] == pytest.approx(results["fused_micro_auc"])


def test_learning_rate_config_and_images_reach_tensorboard(finished):
  workdir, _ = finished
  logged = [r for r in records(workdir) if "train/loss" in r]
  rates = [r["train/learning_rate"] for r in logged]
  assert rates[0] > rates[-1] > 0  # cosine schedule
  events = b"".join(p.read_bytes() for p in (workdir / "tensorboard").glob("events.out.tfevents.*"))
  for tag in (b"train/loss", b"train/learning_rate", b"config", b"eval/fused_micro_auc"):
    assert tag in events, tag


def test_tensorboard_events_are_on_disk_after_each_write(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path)
  writer.write_scalars(1, {"loss": 0.5}, prefix="train/")
  (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
  assert b"train/loss" in events.read_bytes()  # flushed, not waiting for close or a timer
  writer.close()


def test_steps_per_second_is_measured_over_the_last_interval(monkeypatch):
  clock = iter([0.0, 100.0, 101.0])
  monkeypatch.setattr(metric_writers.time, "perf_counter", lambda: next(clock))
  progress = metric_writers.Progress(10, interactive=False)
  assert progress.rate(1) == pytest.approx(0.01)  # a slow first interval (compilation)
  assert progress.rate(3) == pytest.approx(2.0)  # not diluted by the first one


# ---- 6: restoring checks the config and falls back from a damaged checkpoint -----------


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(finished, data_dir, tmp_path, capsys):
  workdir, _ = finished
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  blobs = sorted((run / "checkpoints" / "6" / "state").rglob("d/*"))
  blobs[0].unlink()  # one data blob of the latest checkpoint lost
  config, state = state_lib.restore(run / "checkpoints", None, sharding.make_mesh())
  assert int(state.step) == 4
  assert "checkpoint step 6" in capsys.readouterr().out
  loop.train_and_evaluate(tiny_config(data_dir), str(run))
  assert (run / "checkpoints" / "unreadable_6").is_dir()
  assert curve(run) == curve(workdir)  # steps 5-6 trained again from step 4, identically
  assert len(eval_records(run)) == 1
  assert tensorboard_points(run) == tensorboard_points(workdir) == {k: 1 for k in tensorboard_points(workdir)}


def test_resuming_with_another_model_names_the_fields(finished, data_dir, tmp_path):
  workdir, _ = finished
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  with pytest.raises(checkpointing.ConfigMismatchError, match=r"model.widths is \(4, 8, 16\) there, \(4, 8, 32\) now"):
    loop.train_and_evaluate(tiny_config(data_dir, **{"model.widths": (4, 8, 32)}), str(run))
  hybrid = classifier.get_config("hybrid,synthetic,test")
  hybrid.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(checkpointing.ConfigMismatchError, match=r"model.name is 'dual_stream' there, 'hybrid' now"):
    loop.train_and_evaluate(hybrid, str(run))


# ---- 9: detect checks its input and output first, and reports missing frames -----------


def test_detect_rejects_output_and_source_before_restoring(tmp_path):
  video = tmp_path / "v.avi"
  video_lib.write_video(video, np.zeros((8, 16, 16, 3), np.uint8))
  nowhere = str(tmp_path / "no_checkpoint")
  for args, message in [
    ([str(video), "--output", str(tmp_path / "out.mkv")], "unsupported format '.mkv'"),
    ([str(tmp_path / "missing.mp4")], "no video file or frame folder at"),
  ]:
    result = subprocess.run(
      [sys.executable, "-m", "vad_jax.detect", *args, "--checkpoint", nowhere],
      capture_output=True,
      text=True,
      timeout=120,
      cwd=tmp_path,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr[-1000:]
    assert "checkpoint" not in result.stderr.split("error:")[-1]  # failed before looking for the model


def test_detect_reports_frames_a_truncated_video_promised(tmp_path):
  video = tmp_path / "cut.avi"
  video_lib.write_video(video, (np.random.default_rng(0).random((40, 32, 48, 3)) * 255).astype(np.uint8))
  data = video.read_bytes()
  video.write_bytes(data[: len(data) // 2])
  with pytest.warns(sources.IncompleteVideoWarning, match=r"cut.avi: the container promises 40 frames"):
    frames = list(sources.read_video(video))
  assert 0 < len(frames) < 40


def test_detect_refuses_frames_that_change_size_part_way(tmp_path):
  folder = tmp_path / "frames"
  folder.mkdir()
  for i, shape in enumerate([(16, 16, 3)] * 3 + [(24, 32, 3)]):
    Image.fromarray(np.zeros(shape, np.uint8)).save(folder / f"{i:03d}.png")
  with pytest.raises(
    ValueError, match=r"frames/003\.png is 32x24 pixels \(width x height\) but .* before it are 16x16"
  ):
    list(sources.read_video(folder))
  parts = []
  for i, size in enumerate([16, 32]):  # two recordings joined, as a camera that changed resolution writes them
    video_lib.write_video(tmp_path / f"part{i}.ts", np.full((4, size, size, 3), 60 * i, np.uint8))
    parts.append((tmp_path / f"part{i}.ts").read_bytes())
  (tmp_path / "joined.ts").write_bytes(b"".join(parts))
  with pytest.raises(ValueError, match=r"joined\.ts: frame 4 is 32x32 pixels \(width x height\) but .* are 16x16"):
    list(sources.read_video(tmp_path / "joined.ts"))


# ---- 11: nothing left behind by a killed run ---------------------------------------------


def test_stale_preparation_folders_are_removed(tmp_path):
  config = tiny_config(tmp_path)
  stale = tmp_path / "synthetic_surveillance" / "default" / "incomplete.ABC123_2.0.0"
  stale.mkdir(parents=True)
  (stale / "part.array_record").write_bytes(b"half")
  prepare.ensure_prepared(config.data)
  assert not stale.exists()


def _children(pid: int) -> set[int]:
  found = set()
  for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
    try:
      fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
      continue
    if int(fields[1]) == pid:
      found.add(int(stat.parent.name))
  return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_input_workers_end_with_a_killed_training_run(data_dir, tmp_path):
  command = [
    sys.executable,
    "-m",
    "vad_jax.train",
    "--config",
    "synthetic:test",
    "--workdir",
    str(tmp_path / "run"),
    f"--config.data.data_dir={data_dir}",
    "--config.data.num_workers=1",
    "--config.num_train_steps=100000",
  ]
  run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 240
    workers = set()
    while time.time() < deadline and not workers:
      workers = {
        p for p in _children(run.pid) if "python" in pathlib.Path(f"/proc/{p}/cmdline").read_text(errors="replace")
      }
      time.sleep(1)
    assert workers, "no worker process started"
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(pathlib.Path(f"/proc/{p}").exists() for p in workers):
      time.sleep(0.5)
    alive = [
      p
      for p in workers
      if pathlib.Path(f"/proc/{p}").exists()
      and pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    ]
    assert not alive, f"worker processes {alive} outlived the killed run"
  finally:
    if run.poll() is None:
      run.kill()


# ---- 12: the non-finite message -------------------------------------------------------


def test_non_finite_loss_before_any_checkpoint_says_so(data_dir, tmp_path):
  config = tiny_config(data_dir, **{"loss.alpha": float("nan"), "log_every_steps": 1})
  with pytest.raises(loop.NonFiniteLossError, match="non-finite loss at step 1.*no checkpoint had been written yet"):
    loop.train_and_evaluate(config, str(tmp_path))


# ---- 13: what a person sees --------------------------------------------------------------


def test_the_terminal_shows_progress_checkpoints_and_paths_not_library_logs(data_dir, tmp_path):
  """On a pseudo-terminal that reports no size (``script``, another program's pty): the
  bar, the first step as soon as it is done, the evaluation's bar, one line per
  checkpoint, the paths and the summary (off a terminal: test_metric_writers.py)."""
  command = [sys.executable, "-m", "vad_jax.train", "--config", "synthetic:test", "--workdir", str(tmp_path / "run")]
  status, out = terminal.run_on_a_pseudo_terminal([*command, f"--config.data.data_dir={data_dir}"], cwd=tmp_path)
  assert status == 0, out[-3000:]
  assert "training steps 1-6 of 6 (batch 8)" in out and re.search(r"step 1/6  loss \S+  first step \d+s", out)
  assert "precision: float32 (model.dtype)" in out  # the compute precision and why
  assert re.search(r"\| 6/6 \[.*loss=", out), out[-3000:]  # the bar, drawn
  assert re.search(r"evaluation: +\d+%\|", out), out[-3000:]  # the evaluation's bar
  assert out.count("checkpoint step ") == 3 and "evaluating the model of step 6" in out
  assert f"wrote {tmp_path / 'run'}" in out and "micro AUC" in out
  assert not re.findall(r"^I\d{4} ", out, flags=re.MULTILINE), out[-3000:]  # no absl/orbax INFO lines


def test_frame_panels_share_one_error_scale_with_colour_bars(tmp_path, monkeypatch):
  figures = []
  monkeypatch.setattr(plots.plt, "close", figures.append)
  targets = np.zeros((2, 8, 8, 1))
  predictions = np.stack([np.full((8, 8, 1), 0.1), np.full((8, 8, 1), 1.0)])
  plots.frame_panels(tmp_path / "p.png", ["normal", "anomalous"], targets, predictions, np.random.rand(2, 8, 8))
  (fig,) = figures
  error_images = [ax.images[0] for ax in fig.axes if ax.get_title().endswith("(shared scale)")]
  assert [image.get_clim() for image in error_images] == [(0.0, 1.0), (0.0, 1.0)]
  assert len(fig.axes) == 2 * 3 + 2 * 2  # two colour bars per row


# ---- kills during a checkpoint save and after the evaluation record ----------------------


def test_kills_during_a_save_and_after_evaluation_leave_duplicate_free_identical_logs(finished, data_dir, tmp_path):
  workdir, results = finished
  command = [
    sys.executable,
    "-u",
    "-m",
    "vad_jax.train",
    "--config",
    "synthetic:test",
    "--workdir",
    str(tmp_path / "run"),
    f"--config.data.data_dir={data_dir}",
  ]
  run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
  killed = False
  for line in run.stdout:
    if line.startswith("checkpoint step 4"):  # the asynchronous save of step 4 is under way
      run.send_signal(signal.SIGKILL)
      killed = True
      break
  assert run.wait(timeout=600) == -signal.SIGKILL and killed, "the run ended before it could be killed at step 4"
  assert not (tmp_path / "run" / "eval").exists()  # killed before its evaluation
  for _ in range(2):  # resume to the end, then run again after the eval record
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
  resumed, reference = curve(tmp_path / "run"), curve(workdir)
  assert [s for s, _ in resumed] == [s for s, _ in reference] == [2, 4, 6]  # each step once
  assert [loss for _, loss in resumed] == pytest.approx([loss for _, loss in reference], rel=1e-5)
  (record,) = eval_records(tmp_path / "run")
  assert record["eval/fused_micro_auc"] == pytest.approx(results["fused_micro_auc"], abs=1e-6)
  points = tensorboard_points(tmp_path / "run")  # each point once, the same as the uninterrupted run's
  assert points == tensorboard_points(workdir) == {k: 1 for k in points}
