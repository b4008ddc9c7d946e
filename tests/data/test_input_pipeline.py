"""The config-driven iterators: a tiny TFDS dataset (ArrayRecord) prepared and read
through ``input_pipeline`` into global arrays, and the synthetic set's evaluation pass."""

import io

import grain
import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from vad_jax import sharding
from vad_jax.data import host_pipelines, input_pipeline, preprocessing, sources


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A tiny prepared TFDS dataset written by a minimal builder (no TensorFlow)."""
  import tensorflow_datasets as tfds

  from vad_jax.tfds_builders.common import frame_features

  lengths = {"train": (6, 8), "test": (5, 7)}

  class InputPipelineTestVideos(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=frame_features(),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
      )

    def _split_generators(self, dl_manager):
      videos, self._records = {}, {}
      for split, lens in lengths.items():
        videos[split], start = [], 0
        for v, n in enumerate(lens):
          videos[split].append({"name": f"{v:02d}", "start": start, "length": n, "label": int(v == 1)})
          start += n
      self.info.metadata["videos"] = videos
      return {split: self._generate_examples(split) for split in lengths}

    def _generate_examples(self, split):
      rng = np.random.default_rng(len(split))
      r = 0
      for v, n in enumerate(lengths[split]):
        for f in range(n):
          image = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
          buf = io.BytesIO()
          Image.fromarray(image).save(buf, format="JPEG")
          yield (
            r,
            {
              "video": f"{v:02d}",
              "video_index": v,
              "frame_index": f,
              "frame": buf.getvalue(),
              "label": int(v == 1 and f >= 3),
            },
          )
          r += 1

  data_dir = tmp_path_factory.mktemp("tfds")
  InputPipelineTestVideos(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
  return str(data_dir)


def _config(data_dir):
  config = ml_collections.ConfigDict()
  config.batch_size = 8
  config.model = ml_collections.ConfigDict({"sequence_length": 3})
  config.data = ml_collections.ConfigDict(
    {
      "name": "input_pipeline_test_videos",
      "builder_config": "",
      "data_dir": data_dir,
      "train_split": "train",
      "eval_split": "test",
      "image_size": (8, 8),
      "channels": 3,
      "frame_stride": 1,
      "seed": 0,
      "num_epochs": None,
      "num_workers": 0,
      "num_threads": 2,
      "prefetch_batches": 2,
      "eval_batch_size": 0,
      "clip_frames": 4,
      "clip_sampling": "uniform",
      "clip_short": "drop",
      "clip_source": "window",
      "clip_window": 0,
    }
  )
  return config


def test_prepared_tfds_dataset_to_global_arrays(tfds_dir, tmp_path):
  config = _config(tfds_dir)
  split = input_pipeline.open_split(config.data, "test")
  assert [(v["start"], v["length"]) for v in split.videos] == [(0, 5), (5, 7)]
  mesh = sharding.make_mesh()

  it = input_pipeline.create_train_iterator(config, mesh)
  batch = next(it)
  assert batch["frames"].shape == (8, 3, 8, 8, 3) and batch["frames"].dtype == np.float32
  assert batch["frames"].sharding.is_equivalent_to(sharding.data_sharded(mesh), 5)
  assert -1.0 <= float(batch["frames"].min()) and float(batch["frames"].max()) <= 1.0

  # orbax's grain handler saves and restores this iterator.
  handler = grain.checkpoint.CheckpointHandler()
  handler.save(tmp_path, args=grain.checkpoint.CheckpointSave(it))
  want = np.asarray(next(it)["frames"])
  restored = handler.restore(
    tmp_path, args=grain.checkpoint.CheckpointRestore(input_pipeline.create_train_iterator(config, mesh))
  )
  np.testing.assert_array_equal(np.asarray(next(restored)["frames"]), want)

  batches = list(input_pipeline.create_eval_iterator(config, mesh))
  assert len(batches) == 1  # 3 + 5 scorable frames in one batch of 8
  b = jax.device_get(batches[0])
  assert b["valid"].all()
  np.testing.assert_array_equal(b["video_index"], [0] * 3 + [1] * 5)
  np.testing.assert_array_equal(b["frame_index"], [2, 3, 4, 2, 3, 4, 5, 6])
  np.testing.assert_array_equal(b["label"], [0, 0, 0, 0, 1, 1, 1, 1])

  clip_it, table = input_pipeline.create_clip_iterator(config, mesh, train=False)
  clip_batch = jax.device_get(next(clip_it))
  assert len(table) == 2 and clip_batch["frames"].shape == (8, 4, 8, 8, 3)
  np.testing.assert_array_equal(clip_batch["label"][:2], [0, 1])  # whole-video labels
  assert clip_batch["valid"].sum() == 2


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
  """A tiny build of the project's ``synthetic_surveillance`` dataset."""
  ssb = pytest.importorskip("vad_jax.tfds_builders.synthetic_surveillance.synthetic_surveillance_dataset_builder")
  config = ssb.SyntheticConfig(
    name="pipeline_test", num_frames=9, train_videos=2, test_videos=2, description="input pipeline test"
  )
  data_dir = str(tmp_path_factory.mktemp("synthetic"))
  ssb.Builder(config=config, data_dir=data_dir).download_and_prepare()
  return data_dir


def test_synthetic_surveillance_evaluation_pass(synthetic_dir):
  split = sources.open_split("synthetic_surveillance", "test", builder_config="pipeline_test", data_dir=synthetic_dir)
  assert [(v["start"], v["length"]) for v in split.videos] == [(0, 9), (9, 9)]
  records = [split.source[i] for i in range(len(split.source))]
  frames = input_pipeline.FrameSettings(image_size=(32, 32), channels=1)
  batches = list(
    host_pipelines.eval_dataset(
      split, sequence_length=5, global_batch_size=4, num_devices=8, frames=frames, process_index=0, process_count=1
    )
  )
  batch = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  valid = batch["valid"]
  assert len(batches) == 2 and valid.sum() == 10 and batch["frames"].shape[1:] == (5, 32, 32, 1)
  targets = np.array([v * 9 + f for v in range(2) for f in range(4, 9)])
  np.testing.assert_array_equal(batch["video_index"][valid] * 9 + batch["frame_index"][valid], targets)
  np.testing.assert_array_equal(batch["label"][valid], [records[t]["label"] for t in targets])
  first = preprocessing.to_signed_unit(
    np.stack([preprocessing.decode_frame(records[r]["frame"], (32, 32), 1) for r in range(5)])
  )
  np.testing.assert_array_equal(batch["frames"][0], first)
