"""The evaluation batches carry each scored frame's pixel mask when asked: the UCSD Ped2
JPEG-release fixture with masks (``tfds_builders/ucsd_ped/dummy_data/release_masks``:
Test001 5 frames with masks, Test002 4 frames without, Test003 4 frames with), prepared
with TFDS and read through the evaluation pipeline."""

import pathlib

import jax
import ml_collections
import numpy as np
import pytest

from vad_jax import sharding
from vad_jax.data import host_pipelines, input_pipeline, loaders, preprocessing, sources
from vad_jax.tfds_builders import common, testing
from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

FIXTURE = pathlib.Path(ucsd.__file__).resolve().parent / "dummy_data" / "release_masks"
FRAMES = input_pipeline.FrameSettings(image_size=(8, 8), channels=1)
T = 2  # 4 + 3 + 3 = 10 scored frames


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("ucsd_masks")
  testing.prepare(ucsd.Builder, data_dir, FIXTURE, "ped2")
  return sources.open_split("ucsd_ped", "test", builder_config="ped2", data_dir=str(data_dir))


def _eval_batches(split, **kwargs):
  batches = list(
    host_pipelines.eval_dataset(
      split, sequence_length=T, global_batch_size=4, num_devices=1, frames=FRAMES, process_count=1, **kwargs
    )
  )
  return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def test_eval_batches_hold_the_target_frames_masks(split):
  assert loaders.stored_mask_size(split) == (24, 36)
  batch = _eval_batches(split, mask_size=(24, 36))
  valid = batch["valid"]
  assert batch["masks"].shape == (12, 24, 36) and batch["masks"].dtype == np.uint8
  assert valid.sum() == 10 and batch["has_mask"].dtype == bool
  targets = [split.videos[v]["start"] + f for v, f in zip(batch["video_index"][valid], batch["frame_index"][valid])]
  records = [split.source[int(t)] for t in targets]
  np.testing.assert_array_equal(batch["has_mask"][valid], [bool(r["has_mask"]) for r in records])
  np.testing.assert_array_equal(batch["has_mask"][valid], [True] * 4 + [False] * 3 + [True] * 3)
  for mask, record in zip(batch["masks"][valid], records):
    expected = (testing.decode(record, "mask") != 0) if record["has_mask"] else np.zeros((24, 36), bool)
    np.testing.assert_array_equal(mask, expected.astype(np.uint8))
  # A frame is anomalous exactly when its mask has an anomalous pixel.
  has = batch["has_mask"] & valid
  np.testing.assert_array_equal(batch["masks"][has].any(axis=(1, 2)), batch["label"][has] == 1)
  assert not batch["masks"][~valid].any() and not batch["has_mask"][~valid].any()  # padding


def test_masks_are_read_only_when_asked_and_resized_nearest(split):
  assert "masks" not in _eval_batches(split) and "has_mask" not in _eval_batches(split)
  small = _eval_batches(split, mask_size=(12, 18))
  full = _eval_batches(split, mask_size=(24, 36))
  assert small["masks"].shape == (12, 12, 18)
  for a, b in zip(small["masks"], full["masks"]):
    assert set(np.unique(a)) <= {0, 1}
    assert a.any() == b.any()
  record = next(split.source[i] for i in range(len(split.source)) if split.source[i]["label"] == 1)
  # Resized as the builders resize masks (nearest neighbour, common.resize_mask).
  np.testing.assert_array_equal(
    preprocessing.decode_mask(record["mask"], (12, 18)), common.resize_mask(testing.decode(record, "mask"), (12, 18))
  )


def test_a_split_without_masks_gives_zeros(split):
  no_masks = sources.VideoSplit(
    source=[{**split.source[i], "mask": b"", "has_mask": False} for i in range(len(split.source))],
    videos=split.videos,
  )
  assert loaders.stored_mask_size(no_masks) is None
  batch = _eval_batches(no_masks, mask_size=(24, 36))
  assert not batch["has_mask"].any() and not batch["masks"].any()


def test_the_global_evaluation_iterator_passes_masks(split):
  config = ml_collections.ConfigDict(
    {
      "batch_size": 8,
      "model": {"sequence_length": T},
      "data": {"image_size": (8, 8), "channels": 1, "frame_stride": 1, "num_workers": 0, "eval_batch_size": 0},
    }
  )
  mesh = sharding.make_mesh()
  batches = list(input_pipeline.create_eval_iterator(config, mesh, split=split, mask_size=(24, 36)))
  assert len(batches) == 2 and batches[0]["masks"].shape == (8, 24, 36)
  got = jax.device_get(batches)
  valid = np.concatenate([b["valid"] for b in got])
  has = np.concatenate([b["has_mask"] for b in got])[valid]
  np.testing.assert_array_equal(has, [True] * 4 + [False] * 3 + [True] * 3)
