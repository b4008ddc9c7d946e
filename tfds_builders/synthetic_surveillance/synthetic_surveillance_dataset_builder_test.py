"""Tests of the procedural generator and of the synthetic_surveillance builder.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow, so the builder tests use the
TF-free stand-in `tfds_builders.testing.DatasetBuilderTestCase` (prepare, split sizes,
schema, reload), plus direct comparisons of the records with the generator.
"""

import dataclasses
import io
import os

os.environ.setdefault("TFDS_DISABLE_TF", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from vad_jax.tfds_builders import testing  # noqa: E402
from vad_jax.tfds_builders.synthetic_surveillance import scene as synthetic  # noqa: E402
from vad_jax.tfds_builders.synthetic_surveillance import synthetic_surveillance_dataset_builder as ssb  # noqa: E402

SMALL = synthetic.SceneSettings(height=48, width=64, num_frames=80)


def _decode(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)))


# ------------------------------------------------------------------ generator


def test_same_seed_same_video_other_seed_other_video():
  a = synthetic.generate_video(7, settings=SMALL, anomalies=("wrong_way",))
  b = synthetic.generate_video(np.random.default_rng(7), settings=SMALL, anomalies=("wrong_way",))
  c = synthetic.generate_video(8, settings=SMALL, anomalies=("wrong_way",))
  np.testing.assert_array_equal(a.frames, b.frames)
  np.testing.assert_array_equal(a.masks, b.masks)
  np.testing.assert_array_equal(a.labels, b.labels)
  assert not np.array_equal(a.frames, c.frames)


def test_shapes_and_dtypes():
  video = synthetic.generate_video(0, num_frames=10, height=32, width=40, channels=3)
  assert video.frames.shape == (10, 32, 40, 3) and video.frames.dtype == np.uint8
  assert video.labels.shape == (10,) and video.labels.dtype == np.int32
  assert video.masks.shape == (10, 32, 40) and video.masks.dtype == np.uint8


def test_normal_video_has_no_anomaly():
  video = synthetic.generate_video(3, settings=SMALL)
  assert video.labels.sum() == 0 and video.masks.sum() == 0 and video.events == ()
  # Walkers move, and only rightwards at walking speed.
  scene = synthetic.sample_scene(3, SMALL)
  assert len(scene.walkers) >= 3
  for walker in scene.walkers:
    step = np.diff(walker.x)[-1]
    assert 0.0 < step <= synthetic._WALK_SPEED[1] * SMALL.scale + 1e-6


@pytest.mark.parametrize("kind", synthetic.ANOMALY_KINDS)
def test_masks_cover_exactly_the_anomalous_object(kind):
  scene = synthetic.sample_scene(11, SMALL, anomalies=(kind,))
  with_anomaly = synthetic.render_scene(scene)
  without = synthetic.render_scene(scene, include_anomalies=False)
  # The anomaly must not change the rest of the scene (walkers, noise, lighting).
  np.testing.assert_array_equal(synthetic.sample_scene(11, SMALL).walkers[0].x, scene.walkers[0].x)
  masks = with_anomaly.masks.astype(bool)
  assert masks.any(), kind
  np.testing.assert_array_equal(with_anomaly.labels, masks.any(axis=(1, 2)))
  changed = np.any(with_anomaly.frames != without.frames, axis=-1)
  fig = scene.anomalies[0]
  # Outside the mask, pixels change only where the object is drawn but not anomalous
  # (the loiterer before and after loitering); during labelled frames, nowhere.
  labelled = with_anomaly.labels.astype(bool)
  assert not np.any(changed[labelled] & ~masks[labelled])
  if kind != "loiterer":
    assert fig.anomalous.all()
    assert not np.any(changed & ~masks)
  # Inside the mask nearly every pixel differs from the scene without the object.
  assert changed[masks].mean() > 0.9
  (event,) = with_anomaly.events
  assert event.kind == kind
  expected = np.zeros_like(with_anomaly.labels)
  expected[event.first_frame : event.last_frame + 1] = 1
  np.testing.assert_array_equal(with_anomaly.labels, expected)
  assert 0 < expected.sum() < SMALL.num_frames


def test_anomalies_move_abnormally_but_look_normal():
  scene = synthetic.sample_scene(5, SMALL, anomalies=synthetic.ANOMALY_KINDS)
  max_walk = synthetic._WALK_SPEED[1] * SMALL.scale
  fast, wrong, thrown, loiter = scene.anomalies
  assert np.diff(fast.x)[-1] > 2.5 * max_walk
  assert np.diff(wrong.x)[-1] < 0
  in_flight = thrown.y < SMALL.height + thrown.height
  assert np.ptp(np.diff(thrown.y[in_flight])) > 0  # Accelerates: a ballistic arc.
  loiter_steps = np.diff(loiter.x)[loiter.anomalous[1:]]
  assert (loiter_steps < 0).any()  # Moves backwards while loitering.
  levels = [level for band in synthetic._BODY_LEVELS for level in band]
  for fig in scene.anomalies + scene.walkers:
    assert min(levels) <= fig.body[0] <= max(levels)
    assert synthetic._FIGURE_HEIGHT[0] * SMALL.height <= fig.height or fig.shape == "ball"


def test_split_kinds_and_second_kind():
  spec = synthetic.SplitSpec("test", 6, 20, kinds=("wrong_way", "loiterer"), second_kind_probability=1.0)
  kinds = [tuple(e.kind for e in v.events) for _, v in synthetic.generate_split(1, spec, 32, 32)]
  assert [k[0] for k in kinds] == ["wrong_way", "loiterer"] * 3
  assert all(len(k) == 2 and k[1] != k[0] for k in kinds)
  with pytest.raises(ValueError, match="non-empty subset"):
    synthetic.SplitSpec("test", 1, 20, kinds=("jogger",))


def test_split_seeds_are_per_video():
  spec = synthetic.SplitSpec("test", 3, 20)
  names, videos = zip(*synthetic.generate_split(4, spec, height=32, width=32))
  assert names == ("test_000", "test_001", "test_002")
  assert all(v.video_label == 1 for v in videos)
  kinds = [v.events[0].kind for v in videos]
  assert kinds == list(synthetic.ANOMALY_KINDS[:3])
  # Video 2 alone, regenerated from its own seed, is identical.
  again = list(synthetic.generate_split(4, dataclasses.replace(spec, num_videos=3), height=32, width=32))[2][1]
  np.testing.assert_array_equal(again.frames, videos[2].frames)


# -------------------------------------------------------------------- builder


class DefaultConfigTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = ssb.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
  SPLITS = {"train": 8 * 120, "test": 6 * 120}

  def test_info(self):
    # As the base test, minus MANUAL_DOWNLOAD_INSTRUCTIONS: nothing is downloaded.
    builder = ssb.Builder(data_dir=self.tmp_dir)
    self.assertTrue(builder.info.disable_shuffling)
    self.assertIn("walkway", builder.info.description)
    self.assertEqual(builder.info.file_format.value, "array_record")

  def _check_builder(self, builder):
    super()._check_builder(builder)
    test = builder.as_data_source()["test"]
    labels = np.array([test[i]["label"] for i in range(len(test))])
    self.assertEqual(labels.sum(), 233)  # Regression guard: the default test set is fixed.
    events = builder.info.metadata["events"]["test"]
    # One motion anomaly per test video, the three kinds twice each, no loiterer.
    self.assertEqual([e["video"] for e in events], [f"test_{i:03d}" for i in range(6)])
    self.assertEqual([e["kind"] for e in events], ["fast_mover", "wrong_way", "thrown_object"] * 2)
    train = builder.as_data_source()["train"]
    self.assertEqual({train[i]["label"] for i in range(0, len(train), 7)}, {0})
    videos = builder.info.metadata["videos"]
    self.assertEqual([v["label"] for v in videos["test"]], [1] * 6)
    self.assertEqual([v["label"] for v in videos["train"]], [0] * 8)
    self.assertEqual(builder.info.metadata["skipped"]["count"], 0)


class SupervisedTinyTest(DefaultConfigTest):
  BUILDER_CONFIG_NAMES_TO_TEST = [
    dataclasses.replace(ssb.SUPERVISED, name="supervised_tiny", num_frames=40, train_videos=4, test_videos=1)
  ]
  SPLITS = {"train": 4 * 40, "test": 40}

  def _check_builder(self, builder):
    testing.DatasetBuilderTestCase._check_builder(self, builder)
    videos = builder.info.metadata["videos"]["train"]
    self.assertEqual([v["label"] for v in videos], [1, 0, 1, 0])
    labels = np.array([r["label"] for r in _read(builder, "train")])
    self.assertGreater(labels[:40].sum(), 0)
    self.assertEqual(labels[40:80].sum(), 0)


def _prepare(tmp_path, config):
  return testing.prepare(ssb.Builder, tmp_path / "data", tmp_path / "manual", config)


def _read(builder, split):
  source = builder.as_data_source()[split]
  return [source[i] for i in range(len(source))]


def test_records_match_generator_with_stride_and_resize(tmp_path):
  config = ssb.SyntheticConfig(
    name="tiny",
    seed=3,
    height=48,
    width=64,
    num_frames=24,
    train_videos=2,
    test_videos=2,
    frame_stride=2,
    frame_size=(24, 32),
  )
  builder = _prepare(tmp_path, config)
  assert builder.info.splits["train"].num_examples == 2 * 12
  assert builder.info.splits["test"].num_examples == 2 * 12
  records = _read(builder, "test")
  _, video = next(synthetic.generate_split(3, config.split_specs()["test"], 48, 64))
  first = [r for r in records if r["video_index"] == 0]
  assert [r["frame_index"] for r in first] == list(range(12))
  assert first[0]["video"] == b"test_000"
  np.testing.assert_array_equal([r["label"] for r in first], video.labels[::2])
  frame, mask = _decode(first[5]["frame"]), _decode(first[5]["mask"])
  assert frame.shape == (24, 32) and mask.shape == (24, 32)
  assert set(np.unique(mask)) <= {0, 255}
  assert all(r["has_mask"] for r in records)
  meta = builder.info.metadata["videos"]["test"]
  assert [(v["start"], v["length"]) for v in meta] == [(0, 12), (12, 12)]


def test_native_masks_are_exact(tmp_path):
  config = ssb.SyntheticConfig(
    name="tiny_native", seed=5, height=32, width=32, num_frames=40, train_videos=1, test_videos=1
  )
  records = _read(_prepare(tmp_path, config), "test")
  _, video = next(synthetic.generate_split(5, config.split_specs()["test"], 32, 32))
  frames = np.stack([_decode(r["frame"]) for r in records])
  masks = np.stack([_decode(r["mask"]) for r in records]) // 255
  np.testing.assert_array_equal(frames, video.frames[..., 0])
  np.testing.assert_array_equal(masks, video.masks)
