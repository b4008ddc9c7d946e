"""Training-time augmentation of the classifiers' clips (``vad_jax/data/augment.py``)."""

import io

import jax
import numpy as np
import pytest
from PIL import Image

from vad_jax import sharding
from vad_jax.configs import classifier
from vad_jax.data import augment, host_pipelines, input_pipeline, sources
from vad_jax.hybrid import boxes as hybrid_boxes
from vad_jax.hybrid import inputs as hybrid_inputs
from vad_jax.hybrid import task as classification


def moved(clip: np.ndarray, mirror: bool, dy: int, dx: int) -> np.ndarray:
  """``clip`` [N, H, W, C] mirrored left-right (if ``mirror``), then its content moved
  ``dy`` rows down and ``dx`` columns right, the border repeating the edge pixels: the
  reference, by index arithmetic."""
  if mirror:
    clip = clip[:, :, ::-1]
  h, w = clip.shape[1:3]
  rows = np.clip(np.arange(h) - dy, 0, h - 1)
  cols = np.clip(np.arange(w) - dx, 0, w - 1)
  return clip[:, rows][:, :, cols]


def transform_of(original: np.ndarray, augmented: np.ndarray, sy: int, sx: int) -> tuple[bool, int, int]:
  """The one ``(mirror, dy, dx)`` with ``|dy| <= sy`` and ``|dx| <= sx`` that turns
  ``original`` into ``augmented`` (fails unless exactly one does)."""
  found = [
    (mirror, dy, dx)
    for mirror in (False, True)
    for dy in range(-sy, sy + 1)
    for dx in range(-sx, sx + 1)
    if np.array_equal(augmented, moved(original, mirror, dy, dx))
  ]
  assert len(found) == 1, found
  return found[0]


def test_every_frame_of_a_clip_is_mirrored_and_moved_alike():
  frames = np.random.default_rng(0).integers(0, 256, (64, 3, 8, 16, 2), dtype=np.uint8)
  batch = {"frames": frames.copy(), "label": np.arange(64)}
  out = augment.FlipAndShift(flip=True, max_shift=0.25)(batch, np.random.default_rng(1))
  np.testing.assert_array_equal(batch["frames"], frames)  # the input is not modified
  assert out["label"] is batch["label"] and out["frames"].dtype == np.uint8
  # Up to round(0.25 * 8) = 2 rows and round(0.25 * 16) = 4 columns each way.
  mirrors, dys, dxs = zip(*(transform_of(frames[i], out["frames"][i], 2, 4) for i in range(64)))
  assert 16 < sum(mirrors) < 48  # about half of the clips are mirrored
  assert set(dys) == set(range(-2, 3)) and set(dxs) == set(range(-4, 5))  # every shift occurs


def test_without_flip_or_shift_nothing_changes_and_bad_shifts_are_refused():
  frames = np.random.default_rng(0).integers(0, 256, (4, 2, 6, 6, 1), dtype=np.uint8)
  kept = augment.FlipAndShift(flip=False, max_shift=0.0)({"frames": frames}, np.random.default_rng(0))
  np.testing.assert_array_equal(kept["frames"], frames)
  config = classifier.get_config("hybrid,synthetic,test")
  assert augment.from_config(config.data) is None  # off as published
  config.data.augment.max_shift = 0.6
  with pytest.raises(ValueError, match=r"data.augment.max_shift must be in \[0, 0.5\), got 0.6"):
    augment.from_config(config.data)


@pytest.mark.parametrize("model", classifier.MODELS)
def test_the_augment_change_turns_on_flips_and_shifts_and_nothing_else(model):
  published = classifier.get_config(f"{model},synthetic,cpu")
  changed = classifier.get_config(f"{model},synthetic,cpu,augment")
  assert (published.data.augment.flip, published.data.augment.max_shift) == (False, 0.0)
  assert (changed.data.augment.flip, changed.data.augment.max_shift) == (True, classifier.AUGMENT_MAX_SHIFT)
  changed.data.augment = published.data.augment
  assert changed.to_dict() == published.to_dict()


def test_boxes_from_a_file_cannot_be_combined_with_moved_frames(tmp_path):
  config = classifier.get_config("hybrid,synthetic,test,augment")
  config.boxes.source = "file"
  config.boxes.path = str(tmp_path / "boxes.json")
  with pytest.raises(ValueError, match="boxes.json"):
    classification.check_config(config)


def test_training_batches_are_augmented_reproducibly_before_the_boxes(supervised_data_dir):
  """The classifier's training iterator with ``augment``: the same clips and labels as
  without it, each clip mirrored and moved as a whole, the boxes found on the moved
  frames, the same batches from a second iterator and from a restored one; evaluation
  batches are never augmented."""
  mesh = sharding.make_mesh(jax.devices()[:1])

  def config_of(variant):
    config = classifier.get_config(variant)
    config.data.data_dir = str(supervised_data_dir)
    return config

  config = config_of("hybrid,synthetic,test,augment")
  plain_config = config_of("hybrid,synthetic,test")

  def batches(config, count, state=None):
    iterator, _ = hybrid_inputs.create_iterator(config, mesh, train=True)
    if state is not None:
      iterator.set_state(state)
    return [jax.tree.map(np.asarray, next(iterator)) for _ in range(count)], iterator.get_state()

  augmented, _ = batches(config, 3)
  plain, _ = batches(plain_config, 3)
  again, _ = batches(config, 3)
  _, state = batches(config, 2)
  resumed, _ = batches(config, 1, state)
  h, w = config.data.image_size
  sy, sx = round(classifier.AUGMENT_MAX_SHIFT * h), round(classifier.AUGMENT_MAX_SHIFT * w)
  box_source = hybrid_boxes.make_box_source(config)
  transforms = []
  for a, p, b in zip(augmented, plain, again):
    for key in ("label", "frame_labels", "video_index", "frame_index", "valid"):
      np.testing.assert_array_equal(a[key], p[key])
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
    for i in range(len(a["label"])):
      transforms.append(transform_of(p["frames"][i], a["frames"][i], sy, sx))
      found = box_source(np.rint(a["frames"][i] * 255).astype(np.uint8))
      np.testing.assert_array_equal(a["boxes"][i], found.boxes)
  assert any(t != (False, 0, 0) for t in transforms)
  for key in resumed[0]:
    np.testing.assert_array_equal(resumed[0][key], augmented[2][key])
  evaluation, _ = hybrid_inputs.create_iterator(config, mesh, train=False)
  plain_evaluation, _ = hybrid_inputs.create_iterator(plain_config, mesh, train=False)
  np.testing.assert_array_equal(np.asarray(next(evaluation)["frames"]), np.asarray(next(plain_evaluation)["frames"]))


def test_each_host_draws_its_own_augmentation():
  """Two hosts number their batch positions alike; the host joins the seed, so their
  clips are not all mirrored and moved in lockstep."""
  rng = np.random.default_rng(0)
  records, videos = [], []
  for v in range(4):
    videos.append({"name": f"{v}", "start": 10 * v, "length": 10, "label": 0})
    for f in range(10):
      pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
      buffer = io.BytesIO()
      Image.fromarray(pixels).save(buffer, format="PNG")
      records.append({"video_index": v, "frame_index": f, "frame": buffer.getvalue(), "label": 0})
  split = sources.VideoSplit(source=records, videos=tuple(videos))
  table = host_pipelines.clip_table(split, clip_source="window", num_frames=2, short_policy="drop", window=2)
  frames = input_pipeline.FrameSettings((8, 8), 1, scaling="unit")

  def host_batches(host, aug):
    ds = host_pipelines.clip_dataset(
      split,
      table,
      train=True,
      num_frames=2,
      sampling="uniform",
      global_batch_size=8,
      frames=frames,
      seed=3,
      process_index=host,
      process_count=2,
      augment=aug,
    )
    iterator = iter(ds)
    return [np.rint(next(iterator)["frames"] * 255).astype(np.uint8) for _ in range(4)]

  draws = {}
  for host in (0, 1):
    plain = host_batches(host, None)
    shifted = host_batches(host, augment.FlipAndShift(flip=True, max_shift=0.25))
    draws[host] = [transform_of(p[i], m[i], 2, 2) for p, m in zip(plain, shifted) for i in range(len(p))]
  assert len(draws[0]) == len(draws[1]) == 16
  assert draws[0] != draws[1]
