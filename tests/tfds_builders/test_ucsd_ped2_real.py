"""Builds ``ucsd_ped/ped2`` from the real pre-extracted release in ``../shared/data``.

The folder is the JPEG release (``training/frames``, ``testing/frames``) with the
official ``UCSDped2.m`` and the archive's pixel masks (``masks/TestNNN_gt/``) beside it;
the counts below are the published ones. Skipped when the folder is absent (it is not
part of the repository).
"""

import pathlib

import numpy as np
import pytest

from vad_jax.configs import classifier
from vad_jax.hybrid import inputs as hybrid_inputs
from vad_jax.tfds_builders import testing
from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

REPO = pathlib.Path(__file__).resolve().parents[2]
PED2 = REPO.parent / "shared" / "data" / "ucsd_ped2"

pytestmark = pytest.mark.skipif(
  not (PED2 / "UCSDped2.m").is_file(),
  reason=f"real UCSD Ped2 data not found at {PED2}",
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  path = tmp_path_factory.mktemp("ped2")
  return path / "data", testing.prepare(ucsd.Builder, path / "data", PED2, "ped2")


def test_real_ped2_counts(prepared):
  _, builder = prepared
  metadata = builder.info.metadata
  assert metadata["layout"] == "JPEG release (in the manual dir itself)"
  train, test = metadata["videos"]["train"], metadata["videos"]["test"]
  assert len(train) == 16 and sum(v["length"] for v in train) == 2550
  assert len(test) == 12 and sum(v["length"] for v in test) == 2010
  assert builder.info.splits["train"].num_examples == 2550
  assert builder.info.splits["test"].num_examples == 2010
  assert metadata["skipped"]["count"] == 0

  source = builder.as_data_source(split="test")
  labels = np.array([source[i]["label"] for i in range(len(source))])
  assert int(labels.sum()) == 1648
  # Test001 is anomalous from its 61st frame (official [61:180]).
  first = test[0]
  assert first["name"] == "Test001" and first["length"] == 180
  np.testing.assert_array_equal(labels[:180], (np.arange(180) >= 60).astype(int))
  assert all(v["label"] == 1 for v in test)
  assert testing.decode(source[0]).shape == (240, 360, 3)


def test_real_ped2_masks_give_the_m_labels(prepared):
  """Every one of the 2,010 test frames has its mask (the 12 TestNNN_gt folders in
  masks/, three of them named frameNNN.bmp), and a frame is anomalous in UCSDped2.m
  exactly when its mask has an anomalous pixel."""
  _, builder = prepared
  source = builder.as_data_source(split="test")
  records = [source[i] for i in range(len(source))]
  assert all(bool(r["has_mask"]) for r in records)
  from_masks = np.array([testing.decode(r, "mask").any() for r in records], dtype=int)
  from_m = np.array([r["label"] for r in records])
  assert from_masks.shape == (2010,) and int(from_masks.sum()) == 1648
  np.testing.assert_array_equal(from_masks, from_m)
  assert {testing.decode(r, "mask").shape for r in records[::100]} == {(240, 360)}
  masks = builder.info.metadata["masks"]
  assert masks["folder"] == str(PED2 / "masks") and masks["without"] == []
  assert sorted(masks["videos"]) == [f"Test{i:03d}" for i in range(1, 13)]
  assert not any(bool(r["has_mask"]) for r in (builder.as_data_source(split="train")[i] for i in range(0, 2550, 50)))


@pytest.mark.parametrize("model", ["hybrid", "convlstm"])
def test_supervised_ped2_folds_hold_out_whole_test_videos(prepared, model):
  """``configs/classifier.py:MODEL,ucsd_ped2``: each of the 4 folds evaluates 3 of the
  12 test videos and trains on the 16 training videos and the other 9; over the folds
  every test video is evaluated once and never trained on in the same fold."""
  data_dir, _ = prepared
  config = classifier.get_config(f"{model},ucsd_ped2,cpu")
  config.data.data_dir = str(data_dir)
  evaluated = []
  for fold in range(4):
    config.data.fold = f"{fold}/4"
    train = hybrid_inputs.open_split(config, train=True)
    test = hybrid_inputs.open_split(config, train=False)
    names = [v["name"] for v in test.videos]
    trained = {v["name"] for v in train.videos}
    assert len(names) == 3 and not trained & set(names)
    assert trained == {f"Train{i:03d}" for i in range(1, 17)} | ({f"Test{i:03d}" for i in range(1, 13)} - set(names))
    assert sum(v["length"] for v in train.videos) == 2550 + 2010 - sum(v["length"] for v in test.videos)
    evaluated += names
  assert sorted(evaluated) == [f"Test{i:03d}" for i in range(1, 13)]
