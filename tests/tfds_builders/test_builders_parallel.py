"""Preparation in several processes (``Builder(num_workers=N)``) gives the records of one.

Each builder decodes its videos through ``common.SplitRecords``; with ``num_workers > 1``
worker processes decode and encode whole videos while the parent hands their records to
the writer in video order. Compared here on the format-exact fixtures of every builder
that decodes files: all records (every key, frame bytes included) and the metadata.
"""

import pathlib
import re
import shutil

import pytest

from vad_jax.tfds_builders import common, testing, video
from vad_jax.tfds_builders.avenue import avenue_dataset_builder as avenue
from vad_jax.tfds_builders.dcsass import dcsass_dataset_builder as dcsass
from vad_jax.tfds_builders.shanghaitech import shanghaitech_dataset_builder as shanghaitech
from vad_jax.tfds_builders.ucf_crime import ucf_crime_dataset_builder as ucf
from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

BUILDERS = pathlib.Path(__file__).resolve().parents[2] / "tfds_builders"


def _records(builder):
  return {split: [source[i] for i in range(len(source))] for split, source in builder.as_data_source().items()}


def _same_as_serial(tmp_path, builder_cls, manual, config, **kwargs):
  serial = testing.prepare(builder_cls, tmp_path / "serial", manual, config, **kwargs)
  parallel = testing.prepare(builder_cls, tmp_path / "parallel", manual, config, num_workers=2, **kwargs)
  assert _records(parallel) == _records(serial)
  assert dict(parallel.info.metadata) == dict(serial.info.metadata)
  assert {s: i.num_examples for s, i in parallel.info.splits.items()} == {
    s: i.num_examples for s, i in serial.info.splits.items()
  }
  return serial


@pytest.mark.parametrize(
  "builder_cls, manual, config",
  [
    (ucf.Builder, "ucf_crime/dummy_data/archives", "default"),
    (dcsass.Builder, "dcsass/dummy_data/gap_typo", "default"),
    (shanghaitech.Builder, "shanghaitech/dummy_data", "default"),
    (avenue.Builder, "avenue/dummy_data/official", "official"),
    (ucsd.Builder, "ucsd_ped/dummy_data/official", "ped2"),
  ],
  ids=["ucf_crime", "dcsass", "shanghaitech", "avenue", "ucsd_ped"],
)
def test_two_workers_give_the_serial_records(tmp_path, builder_cls, manual, config):
  _same_as_serial(tmp_path, builder_cls, BUILDERS / manual, config)


def test_skipped_videos_are_skipped_alike(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(BUILDERS / "shanghaitech/dummy_data/shanghaitech", manual / "shanghaitech")
  video.set_avi_frame_count(manual / "shanghaitech/training/videos/01_001.avi", 12)
  bad = manual / "shanghaitech/testing/frames/01_0014/003.jpg"
  bad.write_bytes(bad.read_bytes()[:300])
  serial = _same_as_serial(tmp_path, shanghaitech.Builder, manual, None, skip_undecodable=True)
  assert serial.info.metadata["skipped"]["counts"] == {"undecodable": 2}


def test_errors_of_a_worker_reach_the_caller_as_themselves(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(BUILDERS / "avenue/dummy_data/official", manual)
  path = manual / "Avenue Dataset" / "testing_videos" / "01.avi"
  video.set_avi_frame_count(path, 9)
  expected = rf"{re.escape(str(path))}: decoded 6 frames but the container reports 9"
  with pytest.raises(video.FrameCountError, match=expected) as error:
    testing.prepare(avenue.Builder, tmp_path / "data", manual, "official", num_workers=2)
  assert (error.value.decoded, error.value.reported, error.value.path) == (6, 9, str(path))
  bad = manual / "ground_truth_demo" / "testing_label_mask" / "2_label.mat"
  video.set_avi_frame_count(path, 6)
  shutil.copy(manual / "ground_truth_demo" / "testing_label_mask" / "1_label.mat", bad)
  with pytest.raises(common.LabelCountError, match=r"Video 02: 3 frames but 6 frame labels"):
    testing.prepare(avenue.Builder, tmp_path / "data2", manual, "official", num_workers=2)


def test_num_workers_must_be_positive(tmp_path):
  with pytest.raises(ValueError, match="num_workers"):
    ucsd.Builder(data_dir=str(tmp_path), config="ped2", num_workers=0)
