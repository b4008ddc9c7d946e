"""Apache Beam preparation gives the records and metadata of the local one.

Needs apache-beam (the extra ``vad_jax[beam]``; the test extra includes it, so CI runs
these). The
DirectRunner runs two worker processes (``direct_running_mode="multi_processing"``), as
a cluster runner would run many; the videos are decoded on the workers.
"""

import pathlib
import shutil

import pytest
import tensorflow_datasets as tfds  # noqa: E402
from apache_beam.options import pipeline_options as beam_options  # the test extra has apache-beam

from vad_jax.tfds_builders import testing, video  # noqa: E402
from vad_jax.tfds_builders.shanghaitech import shanghaitech_dataset_builder as shanghaitech  # noqa: E402
from vad_jax.tfds_builders.ucf_crime import ucf_crime_dataset_builder as ucf  # noqa: E402

BUILDERS = pathlib.Path(__file__).resolve().parents[2] / "tfds_builders"


def _prepare_with_beam(builder_cls, data_dir, manual_dir, config=None, **kwargs):
  builder = builder_cls(data_dir=str(data_dir), config=config, **kwargs)
  options = beam_options.PipelineOptions(direct_num_workers=2, direct_running_mode="multi_processing")
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), beam_options=options, compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return builder


def _records(builder):
  return {split: [source[i] for i in range(len(source))] for split, source in builder.as_data_source().items()}


@pytest.mark.parametrize(
  "builder_cls, manual, config",
  [(ucf.Builder, "ucf_crime/dummy_data/archives", "default"), (shanghaitech.Builder, "shanghaitech/dummy_data", None)],
  ids=["ucf_crime", "shanghaitech"],
)
def test_beam_gives_the_local_records(tmp_path, builder_cls, manual, config):
  local = testing.prepare(builder_cls, tmp_path / "local", BUILDERS / manual, config)
  beam = _prepare_with_beam(builder_cls, tmp_path / "beam", BUILDERS / manual, config)
  assert _records(beam) == _records(local)
  assert dict(beam.info.metadata) == dict(local.info.metadata)
  reloaded = builder_cls(data_dir=str(tmp_path / "beam"), config=config)
  assert _records(reloaded) == _records(local)
  assert not list((tmp_path / "beam").rglob("vad_jax_beam_*"))  # spool folders removed


def test_beam_skips_undecodable_videos_alike(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(BUILDERS / "shanghaitech/dummy_data/shanghaitech", manual / "shanghaitech")
  video.set_avi_frame_count(manual / "shanghaitech/training/videos/01_001.avi", 12)
  local = testing.prepare(shanghaitech.Builder, tmp_path / "local", manual, skip_undecodable=True)
  beam = _prepare_with_beam(shanghaitech.Builder, tmp_path / "beam", manual, skip_undecodable=True)
  assert _records(beam) == _records(local)
  assert dict(beam.info.metadata) == dict(local.info.metadata)
  assert beam.info.metadata["skipped"]["counts"] == {"undecodable": 1}
  (manual / "shanghaitech/training/videos/02_001.avi").write_bytes(b"\x00" * 64)
  # Beam's runner re-raises a worker's error as a RuntimeError holding its traceback: the
  # worker raised the builders' own EmptySplitError.
  with pytest.raises(RuntimeError, match="EmptySplitError: No video of split 'train' could be used"):
    _prepare_with_beam(shanghaitech.Builder, tmp_path / "beam2", manual, skip_undecodable=True)
