"""The localisation figures of the dual-stream evaluation: the tiny synthetic test split
stores a mask for every frame, so ``evaluate`` adds them, equal to
``pixel_level_metrics`` on the same error maps and masks; a split without masks (or
``eval_pixel_metrics`` off) gives none, no error maps, and the same frame-level figures."""

import json
import math

import pytest

from vad_jax import sharding
from vad_jax import state as state_lib
from vad_jax.data import input_pipeline, loaders, sources
from vad_jax.dual_stream import evaluation, steps


def _same(a, b):
  """Equal dicts, nan equal to nan (bit-identical floats otherwise)."""
  assert a.keys() == b.keys()
  for key in a:
    both_nan = isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])
    assert both_nan or a[key] == b[key], (key, a[key], b[key])


def _frame_level(results):
  return {k: v for k, v in results.items() if k not in evaluation.PIXEL_KEYS}


@pytest.fixture(scope="module")
def restored(tiny_run, data_dir):
  workdir, _ = tiny_run
  mesh = sharding.make_mesh()
  config, state = state_lib.restore(workdir / "checkpoints", None, mesh)
  config.data.data_dir = str(data_dir)
  return config, state, mesh


@pytest.fixture(scope="module")
def maps(restored):
  """The test split's error maps, masks, ``has_mask`` and video indices, computed apart
  from ``evaluate``: ``steps.model_statistics(..., error_maps=True)`` on its batches."""
  config, state, mesh = restored
  split = input_pipeline.open_split(config.data, config.data.eval_split)
  size = loaders.stored_mask_size(split)
  stats_fn = steps.model_statistics(config, state, error_maps=True)
  batches = input_pipeline.create_eval_iterator(config, mesh, split=split, mask_size=size)
  keys = ("masks", "has_mask", "video_index", "valid")
  outputs = sharding.dispatch_in_order(
    lambda b: {"error_map": stats_fn(b["frames"])["error_map"], **{k: b[k] for k in keys}}, batches
  )
  return size, sharding.fetch(outputs)


def _without_masks(split, videos):
  """``split`` with the masks of ``videos`` (indices) removed."""
  strip = {split.videos[v]["start"] + i for v in videos for i in range(split.videos[v]["length"])}
  records = [split.source[i] for i in range(len(split.source))]
  records = [{**r, "mask": b"", "has_mask": False} if i in strip else r for i, r in enumerate(records)]
  return sources.VideoSplit(source=records, videos=split.videos)


def test_masks_add_the_localisation_figures_of_the_same_maps(restored, maps, tmp_path):
  config, state, mesh = restored
  size, host = maps
  assert size == (64, 64)  # the stored masks; the maps are at the model's 16x16, enlarged to them
  assert host["error_map"].shape[1:] == tuple(config.data.image_size) and host["has_mask"].all()
  results = evaluation.evaluate(config, state, mesh, eval_dir=tmp_path)
  expected = evaluation.pixel_level_metrics(
    host["error_map"],
    host["masks"],
    host["has_mask"],
    host["video_index"],
    thresholds=evaluation.PIXEL_THRESHOLDS,
    region_thresholds=evaluation.REGION_THRESHOLDS,
  )
  assert set(expected) == set(evaluation.PIXEL_KEYS)
  _same({k: results[k] for k in evaluation.PIXEL_KEYS}, expected)
  assert results["mask_frames"] == results["frames"] and results["anomalous_mask_frames"] > 0
  assert 0.0 <= results["pixel_auroc"] <= 1.0 and results["gt_regions"] >= results["gt_tracks"] > 0
  written = json.loads((tmp_path / "metrics.json").read_text())
  assert {k: written[k] for k in evaluation.PIXEL_KEYS} == pytest.approx(expected, nan_ok=True)
  lines = evaluation.summary(results).splitlines()
  frames = len(host["masks"])
  assert lines[4].startswith(f"pixel-level localisation: fused prediction error against the masks of {frames} frames")
  assert lines[5].startswith(f"  pixel AUROC {results['pixel_auroc']:.4f}   UCSD criterion AUC ")
  assert f"RBDC {results['rbdc']:.4f}   TBDC {results['tbdc']:.4f}" in lines[5]
  # The frame-level figures are those of an evaluation without the maps, bit for bit.
  config.eval_pixel_metrics = False
  try:
    frame_only = evaluation.evaluate(config, state, mesh)
  finally:
    config.eval_pixel_metrics = True
  assert not set(frame_only) & set(evaluation.PIXEL_KEYS)
  _same(_frame_level(results), frame_only)
  assert "pixel" not in evaluation.summary(frame_only)


def test_the_training_loop_logs_the_figures(tiny_run):
  workdir, results = tiny_run
  assert set(evaluation.PIXEL_KEYS) <= set(results)
  logged = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    logged.update(json.loads(line))
  floats = [k for k in evaluation.PIXEL_KEYS if isinstance(results[k], float)]
  assert floats and {f"eval/{k}": results[k] for k in floats} == pytest.approx(
    {f"eval/{k}": logged[f"eval/{k}"] for k in floats}, nan_ok=True
  )


def test_frames_without_masks_are_left_out_and_a_split_without_any_gives_none(restored, maps, monkeypatch):
  config, state, mesh = restored
  _, host = maps
  split = input_pipeline.open_split(config.data, config.data.eval_split)
  calls = {"error_maps": [], "mask_size": []}
  model_statistics, create_eval_iterator = steps.model_statistics, input_pipeline.create_eval_iterator

  def recording_statistics(*args, error_maps=False, **kwargs):
    calls["error_maps"].append(error_maps)
    return model_statistics(*args, error_maps=error_maps, **kwargs)

  def recording_iterator(*args, mask_size=None, **kwargs):
    calls["mask_size"].append(mask_size)
    return create_eval_iterator(*args, mask_size=mask_size, **kwargs)

  monkeypatch.setattr(steps, "model_statistics", recording_statistics)
  monkeypatch.setattr(input_pipeline, "create_eval_iterator", recording_iterator)
  # The first video without masks: its frames are left out.
  monkeypatch.setattr(input_pipeline, "open_split", lambda *_: _without_masks(split, [0]))
  partial = evaluation.evaluate(config, state, mesh)
  kept = host["has_mask"] & (host["video_index"] != 0)
  expected = evaluation.pixel_level_metrics(
    host["error_map"],
    host["masks"],
    kept,
    host["video_index"],
    thresholds=evaluation.PIXEL_THRESHOLDS,
    region_thresholds=evaluation.REGION_THRESHOLDS,
  )
  assert 0 < partial["mask_frames"] == kept.sum() < partial["frames"]
  _same({k: partial[k] for k in evaluation.PIXEL_KEYS}, expected)
  # No video with masks: no maps, no masks read, no figures, the same frame-level results.
  monkeypatch.setattr(input_pipeline, "open_split", lambda *_: _without_masks(split, range(len(split.videos))))
  none = evaluation.evaluate(config, state, mesh)
  assert calls == {"error_maps": [True, False], "mask_size": [(64, 64), None]}
  assert not set(none) & set(evaluation.PIXEL_KEYS)
  _same(none, _frame_level(partial))
