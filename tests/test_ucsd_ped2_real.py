"""Builds ``ucsd_ped/ped2`` from the real pre-extracted release in ``../shared/data``.

The folder is the JPEG release (``training/frames``, ``testing/frames``) with the
official ``UCSDped2.m`` beside it; the counts below are the published ones. Skipped
when the folder is absent (it is not part of the repository).
"""

import pathlib

import numpy as np
import pytest

from vad_jax.tfds_builders import testing
from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

REPO = pathlib.Path(__file__).resolve().parent.parent
PED2 = REPO.parent / "shared" / "data" / "ucsd_ped2"

pytestmark = pytest.mark.skipif(
  not (PED2 / "UCSDped2.m").is_file(),
  reason=f"real UCSD Ped2 data not found at {PED2}",
)


def test_real_ped2_counts(tmp_path):
  builder = testing.prepare(ucsd.Builder, tmp_path / "data", PED2, "ped2")
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
