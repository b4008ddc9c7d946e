"""The supervised fold protocol (``data.fold``, ``vad_jax.folds``): folds are made of
whole videos, training never sees a frame of a video it is evaluated on, and the folds
command runs every model and control on every fold through the same evaluation code.

Runs on ``synthetic_surveillance/supervised`` (its 8 labelled test videos stand in for
Ped2's 12); the real Ped2 folds are checked in ``test_ucsd_ped2_real.py``.
"""

import json

import numpy as np
import pytest

from vad_jax import checkpointing
from vad_jax.configs import classifier
from vad_jax.data import host_pipelines, sources
from vad_jax.hybrid import inputs as hybrid_inputs
from vad_jax.studies import folds


@pytest.fixture(scope="module")
def data_dir(supervised_data_dir):
  return supervised_data_dir


def _split(names, lengths):
  records, videos, start = [], [], 0
  for index, (name, length) in enumerate(zip(names, lengths)):
    records += [{"video": name, "video_index": index, "frame_index": f, "label": 0} for f in range(length)]
    videos.append({"name": name, "start": start, "length": length, "label": 0})
    start += length
  return sources.VideoSplit(source=records, videos=tuple(videos))


def test_parts_are_whole_videos_in_name_order_and_cover_every_video_once():
  split = _split(["c", "a", "e", "b", "d"], [3, 4, 5, 6, 7])
  parts = [[v["name"] for v in sources.select_videos(split, f"part:{i}/2").videos] for i in range(2)]
  # Every second video in name order (a b c d e); the order of the split is kept.
  assert parts == [["c", "a", "e"], ["b", "d"]]
  rest = [v["name"] for v in sources.select_videos(split, "part:0/2", exclude=True).videos]
  assert rest == ["b", "d"]
  with pytest.raises(ValueError, match="6 parts of only 5 videos"):
    sources.select_videos(split, "part:0/6")
  with pytest.raises(ValueError, match="part:i/k"):
    sources.select_videos(split, "part:2/2")


def test_joined_splits_read_every_record_from_its_own_split():
  a, b = _split(["a0", "a1"], [3, 2]), _split(["b0", "b1", "b2"], [2, 4, 1])
  joined = sources.concat_splits([sources.select_videos(a, "part:1/2"), b])
  assert [v["name"] for v in joined.videos] == ["a1", "b0", "b1", "b2"]
  assert len(joined.source) == 5 + 7
  for video in joined.videos:
    records = sources.read_records(joined.source, range(video["start"], video["start"] + video["length"]))
    assert [r["video"] for r in records] == [video["name"]] * video["length"]
    assert [r["frame_index"] for r in records] == list(range(video["length"]))
  with pytest.raises(IndexError):
    joined.source[12]
  with pytest.raises(ValueError, match="share video names"):
    sources.concat_splits([a, a])


@pytest.mark.parametrize("count", [2, 3, 4])
def test_no_fold_puts_frames_of_one_video_in_training_and_evaluation(count, data_dir):
  config = classifier.get_config("hybrid,synthetic,test")
  config.data.data_dir = str(data_dir)
  train_names = {v["name"] for v in hybrid_inputs.open_split(config, train=True).videos}
  test_names = {v["name"] for v in hybrid_inputs.open_split(config, train=False).videos}
  held_out = []
  for fold in range(count):
    config.data.fold = f"{fold}/{count}"
    train = hybrid_inputs.open_split(config, train=True)
    test = hybrid_inputs.open_split(config, train=False)
    trained = [v["name"] for v in train.videos]
    evaluated = [v["name"] for v in test.videos]
    assert not set(trained) & set(evaluated)
    assert set(trained) == train_names | (test_names - set(evaluated))
    held_out += evaluated
    # The records behind every training video are that video's frames, in order.
    for video in train.videos:
      records = sources.read_records(train.source, range(video["start"], video["start"] + video["length"]))
      assert {sources.as_str(r["video"]) for r in records} == {video["name"]}
      np.testing.assert_array_equal([r["frame_index"] for r in records], np.arange(video["length"]))
    # The clips the training pipeline samples come from training videos only.
    table = host_pipelines.clip_table(
      train, clip_source="window", num_frames=config.data.clip_frames, short_policy="drop", window=8
    )
    starts = np.array([train.videos[int(v)]["start"] for v in table.video_index])
    ends = starts + np.array([train.videos[int(v)]["length"] for v in table.video_index])
    assert np.all((table.start >= starts) & (table.start + table.length <= ends))
    assert len(np.unique(table.video_index)) == len(trained)
  assert sorted(held_out) == sorted(test_names)  # every test video evaluated exactly once


def test_a_fold_can_train_on_the_other_labelled_videos_alone(data_dir):
  config = classifier.get_config("hybrid,synthetic,test")
  config.data.data_dir = str(data_dir)
  test_names = {v["name"] for v in hybrid_inputs.open_split(config, train=False).videos}
  config.data.fold, config.data.fold_training = "1/3", "labelled"
  trained = {v["name"] for v in hybrid_inputs.open_split(config, train=True).videos}
  evaluated = {v["name"] for v in hybrid_inputs.open_split(config, train=False).videos}
  assert evaluated and not trained & evaluated
  assert trained == test_names - evaluated  # no video of the training split
  assert hybrid_inputs.split_names(config, train=True) == config.data.eval_split
  config.data.fold_training = "unlabelled"
  with pytest.raises(ValueError, match="fold_training"):
    hybrid_inputs.open_split(config, train=True)
  config.data.fold, config.data.fold_training = "", "labelled"
  with pytest.raises(ValueError, match="needs a fold"):
    hybrid_inputs.open_split(config, train=True)


def test_a_fold_chooses_the_evaluation_videos_alone(data_dir):
  config = classifier.get_config("hybrid,synthetic,test")
  config.data.data_dir = str(data_dir)
  config.data.fold = "0/2"
  config.data.eval_videos = "fold:0/2"
  with pytest.raises(ValueError, match="data.eval_videos must be empty"):
    hybrid_inputs.open_split(config, train=False)


def test_folds_command_runs_models_and_controls_on_every_fold(data_dir, tmp_path, monkeypatch):
  configs = folds.model_configs(
    ["hybrid", "effnet_hog"], "synthetic", "test", {"data.data_dir": str(data_dir), "eval_plots": False}
  )
  assert folds.plan(configs, ["full", "motion_energy", "bce"]) == [
    ("hybrid", "full"),
    ("effnet_hog", "full"),
    ("hybrid", "motion_energy"),
    ("hybrid", "bce"),
  ]
  workdir = tmp_path / "folds"
  results = folds.run_folds(configs, workdir, 2, only=["full", "motion_energy"])
  assert list(results) == ["hybrid", "effnet_hog", "motion_energy (control)"]
  test_frames = sum(v["length"] for v in hybrid_inputs.open_split(configs["hybrid"], train=False).videos)
  for per_fold in results.values():
    assert sorted(per_fold) == [0, 1]
    assert all(0.0 <= m["frame_auc"] <= 1.0 for m in per_fold.values())
  # Each fold evaluated its own videos with the classifiers' evaluation code; together
  # the folds scored every test frame once (windows of 8 tile the 120-frame videos).
  counts = []
  for fold in range(2):
    metrics = json.loads((workdir / "hybrid" / f"fold{fold}" / "motion_energy" / "eval" / "metrics.json").read_text())
    counts.append(metrics["frame"]["count"])
    assert set(metrics) >= {"clip", "frame", "alarm"}
  assert sum(counts) == test_frames
  table = (workdir / "folds.md").read_text()
  assert "| hybrid | 2/2 |" in table and "±" in table
  mean, std = folds.summarise([results["hybrid"][f]["frame_auc"] for f in range(2)])
  assert f"{mean:.3f} ± {std:.3f}" in table
  assert len((workdir / "folds.csv").read_text().splitlines()) == 1 + 3 * 2

  # A second run reuses every finished result instead of training again.
  def no_training(*args, **kwargs):
    raise AssertionError("a finished run was repeated")

  monkeypatch.setattr(folds.ablations, "run_all", no_training)
  assert folds.run_folds(configs, workdir, 2, only=["full", "motion_energy"]) == results


def test_folds_command_rejects_unknown_settings_and_variants():
  with pytest.raises(ValueError, match="no such field"):
    folds.model_configs(["hybrid"], "synthetic", "test", {"data.no_such_field": 1})
  configs = folds.model_configs(["hybrid"], "synthetic", "test", {})
  with pytest.raises(ValueError, match="unknown variant"):
    folds.plan(configs, ["no_such_variant"])
  assert folds.parse_sets(["a.b=3", "c=x/y", "d=(1, 2)"]) == {"a.b": 3, "c": "x/y", "d": (1, 2)}
  with pytest.raises(ValueError, match="KEY=VALUE"):
    folds.parse_sets(["novalue"])


def test_kept_results_survive_new_config_fields_at_their_defaults_only():
  configs = folds.model_configs(["hybrid", "hybrid+differences"], "synthetic", "test", {})
  assert configs["hybrid+differences"].model.temporal_input == "differences"
  current = json.loads(configs["hybrid"].to_json())
  older = json.loads(configs["hybrid"].to_json())
  del older["model"]["temporal_input"]  # a result kept before the field existed
  assert not checkpointing.config_differences(older, current)
  assert checkpointing.config_differences(older, json.loads(configs["hybrid+differences"].to_json()))
  changed = json.loads(configs["hybrid"].to_json())
  changed["model"]["feature_dim"] += 1
  assert checkpointing.config_differences(changed, current)
