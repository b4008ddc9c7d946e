"""The training logs (``vad_jax.metric_writers``): TensorBoard files that hold every step
once after a resumed run or a new evaluation, and progress that shows on a terminal that
reports no width (a pseudo-terminal) as well as off a terminal."""

import collections
import re
import sys

import numpy as np
import terminal
from PIL import Image

from vad_jax import metric_writers


def points(workdir) -> collections.Counter:
  """How often each ``(tag, step)`` is in the TensorBoard files of ``workdir``."""
  events = metric_writers.read_events(workdir / "tensorboard")
  return collections.Counter((value.tag, event.step) for event in events for value in event.summary.value)


def test_a_resumed_run_drops_the_tensorboard_points_after_its_checkpoint(tmp_path):
  killed = metric_writers.MetricWriter(tmp_path, resume_step=0)
  for step in range(1, 8):  # logged up to step 7; the last checkpoint was step 4
    killed.write_scalars(step, {"loss": 1.0 / step}, prefix="train/")
  killed.close()
  (events,) = (tmp_path / "tensorboard").glob(metric_writers.EVENT_FILES)
  with open(events, "ab") as f:
    f.write(b"\x20\x00\x00\x00\x00\x00\x00\x00\x01\x02")  # killed in the middle of a record
  resumed = metric_writers.MetricWriter(tmp_path, resume_step=4)
  for step in range(5, 9):
    resumed.write_scalars(step, {"loss": 2.0 / step}, prefix="train/")
  resumed.close()
  assert points(tmp_path) == {("train/loss", step): 1 for step in range(1, 9)}
  events = metric_writers.read_events(tmp_path / "tensorboard")
  values = {e.step: e.summary.value[0].simple_value for e in events if e.summary.value}
  assert values[5] == np.float32(2.0 / 5) and values[4] == np.float32(1.0 / 4)  # the new run's steps, the old ones'
  assert [r["step"] for r in metric_writers.read_records(tmp_path / "metrics.jsonl")] == list(range(1, 9))


def test_a_run_started_again_from_scratch_replaces_the_first_attempts_points(tmp_path):
  for _ in range(2):  # killed before its first checkpoint, then started again
    writer = metric_writers.MetricWriter(tmp_path, resume_step=0)
    writer.write_text(0, "config", "{}")
    writer.write_scalars(2, {"loss": 0.5}, prefix="train/")
    writer.close()
  assert points(tmp_path) == {("config/text_summary", 0): 1, ("train/loss", 2): 1}


def test_a_new_evaluation_replaces_the_points_and_images_of_the_old_one(tmp_path):
  plot = tmp_path / "roc.png"
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plot)
  train = metric_writers.MetricWriter(tmp_path / "run", resume_step=0)
  train.write_scalars(6, {"loss": 0.5}, prefix="train/")
  train.close()
  for auc in (0.7, 0.8):  # the end-of-training evaluation, then --reevaluate
    writer = metric_writers.MetricWriter(tmp_path / "run")
    writer.write_scalars(6, {"auc": auc}, prefix="eval/", replace=True)
    writer.write_images(6, [plot], prefix="eval/")
    writer.close()
  assert points(tmp_path / "run") == {("train/loss", 6): 1, ("eval/auc", 6): 1, ("eval/roc", 6): 1}
  (record,) = [r for r in metric_writers.read_records(tmp_path / "run" / "metrics.jsonl") if "eval/auc" in r]
  assert record["eval/auc"] == 0.8


def test_writers_opened_in_the_same_second_write_files_of_their_own(tmp_path):
  first = metric_writers.MetricWriter(tmp_path)
  second = metric_writers.MetricWriter(tmp_path)
  first.write_scalars(1, {"a": 1.0})
  second.write_scalars(2, {"b": 2.0})
  first.close()
  second.close()
  assert points(tmp_path) == {("a", 1): 1, ("b", 2): 1}


PROGRESS = """
import time
from vad_jax import metric_writers
progress = metric_writers.Progress(6, 0)
progress.early_step(1, 0.9)
for step in (2, 4, 6):
  time.sleep(0.05)
  progress.update(step, {"loss": 1.0 / step, "steps_per_second": 20.0})
progress.close()
for _ in metric_writers.counting(range(5), "evaluation", 5):
  time.sleep(0.05)
"""


def test_progress_shows_on_a_pseudo_terminal_that_reports_no_width():
  status, shown = terminal.run_on_a_pseudo_terminal([sys.executable, "-c", PROGRESS], timeout=60)
  assert status == 0, shown
  assert "step 1/6  loss 0.90000  first step" in shown  # the first step at once, as a line
  assert "6/6" in shown and "loss=0.1667" in shown  # the bar, drawn 80 columns wide
  assert re.search(r"evaluation: +\d+%\|.*\| [1-5]/5 ", shown)  # the evaluation's bar


def test_progress_off_a_terminal_shows_the_first_step_and_the_first_batch(capsys):
  progress = metric_writers.Progress(6, 0, interactive=False)
  progress.early_step(1, 0.9)
  progress.early_step(3, 0.8)
  list(metric_writers.counting(range(20), "evaluation", 20))
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith("step 1/6  loss 0.90000  first step ") and "(compilation included)" in lines[0]
  assert lines[1].startswith("step 3/6  loss 0.80000  ") and " s/step after the first: about " in lines[1]
  assert lines[2].startswith("evaluation: 1/20 batches")  # after the first batch, not after a tenth
