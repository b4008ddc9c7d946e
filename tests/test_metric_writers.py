"""The training logs (``vad_jax.metric_writers``): TensorBoard files that hold every step
once after a resumed run or a new evaluation."""

import collections

import numpy as np
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
