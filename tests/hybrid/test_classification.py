"""Supervised classifiers (HybridModel-1 and baselines): configs, inputs, losses, metrics
and motion boxes; their training end to end is in ``test_classifier_training.py``.

Runs on the 8 virtual CPU devices of the root conftest: ``configs/classifier.py`` test
sizes on ``synthetic_surveillance/supervised`` (prepared once per module).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vad_jax import checkpointing, loop, metrics
from vad_jax.configs import classifier
from vad_jax.data import sources
from vad_jax.hybrid import boxes as hybrid_boxes
from vad_jax.hybrid import evaluation as hybrid_evaluation
from vad_jax.hybrid import loss as hybrid_loss
from vad_jax.hybrid import task as classification
from vad_jax.hybrid import tcr
from vad_jax.hybrid.task import build_model
from vad_jax.studies import ablations
from vad_jax.tfds_builders.synthetic_surveillance import scene as synthetic


def make_config(variant: str, data_dir, **overrides):
  config = classifier.get_config(variant)
  config.data.data_dir = str(data_dir)
  config.update_from_flattened_dict(overrides)
  return config


# ------------------------------------------------------------------ configs and inputs


@pytest.mark.parametrize("model", classifier.MODELS)
@pytest.mark.parametrize("dataset", classifier.DATASETS)
def test_every_model_dataset_config_builds(model, dataset):
  config = classifier.get_config(f"{model},{dataset}")
  net = build_model(config)
  assert (
    type(net).__name__
    == {"hybrid": "HybridModel1", "convlstm": "ConvLSTMBaseline", "effnet_hog": "EfficientNetHOGClassifier"}[model]
  )
  assert config.data.clip_frames == (30 if model == "convlstm" else 16)
  if dataset.startswith("dcsass"):
    assert config.data.builder_config == ("as_published" if "as_published" in dataset else "default")


def test_named_config_files_match_the_generic_one():
  import importlib  # noqa: PLC0415

  for name, variant in [
    ("hybrid_dcsass", "hybrid,dcsass"),
    ("convlstm_dcsass", "convlstm,dcsass"),
    ("effnet_hog_dcsass", "effnet_hog,dcsass"),
    ("hybrid_ucf_crime", "hybrid,ucf_crime"),
    ("hybrid_shanghaitech", "hybrid,shanghaitech"),
  ]:
    module = importlib.import_module(f"vad_jax.configs.{name}")
    assert module.get_config().to_dict() == classifier.get_config(variant).to_dict()
  published = importlib.import_module("vad_jax.configs.hybrid_dcsass").get_config("as_published")
  assert published.data.builder_config == "as_published"


def test_ablation_switches():
  base = classifier.get_config("hybrid,dcsass")
  expected = {
    "no_affm": ("model.fusion", "concat"),
    "bce": ("loss.name", "bce"),
    "spatial_only": ("model.branches", "spatial"),
    "temporal_only": ("model.branches", "temporal"),
    "no_objects": ("model.use_object_features", False),
  }
  for ablation, (field, value) in expected.items():
    config = ablations.variant_config(base, ablation)
    group, leaf = field.split(".")
    assert config[group][leaf] == value and base[group][leaf] != value
  with pytest.raises(ValueError, match="ablations .* apply to the hybrid model only"):
    classifier.get_config("convlstm,dcsass,bce")
  with pytest.raises(ValueError, match="unknown model"):
    classifier.get_config("hybird,dcsass")


def test_video_folds_are_disjoint_and_complete():
  videos = tuple({"name": f"v{i:02d}", "start": 10 * i, "length": 10, "label": 0} for i in range(40))
  split = sources.VideoSplit(source=None, videos=videos)
  a = sources.select_videos(split, "fold:0/2").videos
  b = sources.select_videos(split, "fold:1/2").videos
  names_a, names_b = {v["name"] for v in a}, {v["name"] for v in b}
  assert not names_a & names_b and len(names_a | names_b) == 40 and 5 < len(a) < 35
  assert sources.select_videos(split, "") is split
  with pytest.raises(ValueError, match="fold:i/k"):
    sources.select_videos(split, "fold:2/2")


def test_no_training_clip_is_a_clear_error(data_dir):
  config = make_config("hybrid,synthetic,test", data_dir, **{"data.clip_frames": 1000})
  with pytest.raises(
    ValueError,
    match=r"no clip of data.clip_frames frames \(1000 frames, split 'train' of "
    r"synthetic_surveillance\)",
  ):
    classification.train_iterator(
      config, jax.make_mesh((1,), ("data",), devices=jax.devices()[:1], axis_types=(jax.sharding.AxisType.Auto,))
    )


def test_frame_targets_fall_back_to_the_clip_label_and_mask_padding():
  batch = {
    "frame_labels": jnp.array([[0, 1, -1], [-1, -1, -1], [1, 1, 1]]),
    "label": jnp.array([1, 0, 1]),
    "valid": jnp.array([True, True, False]),
  }
  targets, mask = hybrid_loss.frame_targets(batch)
  np.testing.assert_array_equal(targets, [[0, 1, 1], [0, 0, 0], [1, 1, 1]])
  np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


def test_losses_by_name():
  logits = jnp.array([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
  batch = {
    "frame_labels": jnp.array([[1, 0, 1], [0, 0, -1]]),
    "label": jnp.array([1, 0]),
    "valid": jnp.array([True, True]),
  }
  loss_config = classifier.get_config("hybrid,synthetic").loss
  targets, mask = hybrid_loss.frame_targets(batch)
  loss_config.name = "bce"
  bce, _ = hybrid_loss.classification_loss(loss_config, logits, batch)
  np.testing.assert_allclose(bce, tcr.weighted_bce(logits, targets, mask=mask), rtol=1e-6)
  loss_config.name = "tcr"
  tcr_value, terms = hybrid_loss.classification_loss(loss_config, logits, batch)
  np.testing.assert_allclose(tcr_value, tcr.tcr_loss(logits, targets, mask=mask)[0], rtol=1e-6)
  assert float(terms["smoothness"]) > 0
  # 2-way softmax on clip logits; the padded example does not count.
  loss_config.name = "softmax"
  clip_logits = jnp.array([[0.0, 2.0], [1.0, -1.0], [5.0, -5.0]])
  clip_batch = {"label": jnp.array([1, 0, 1]), "valid": jnp.array([True, True, False])}
  ce, _ = hybrid_loss.classification_loss(loss_config, clip_logits, clip_batch)
  expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-2.0))])
  np.testing.assert_allclose(ce, expected, rtol=1e-5)


def test_balanced_softmax_weights_the_rare_class_up():
  """The ConvLSTM's ``balanced`` change: class weights n / (2 n_y) over the batch's
  valid clips, a weighted mean of the cross-entropies (published: unweighted)."""
  loss_config = classifier.get_config("convlstm,synthetic,balanced").loss
  assert loss_config.class_weights == "batch"
  assert classifier.get_config("convlstm,synthetic").loss.class_weights == "none"
  logits = jnp.array([[0.0, 2.0], [1.0, -1.0], [0.5, 0.0], [5.0, -5.0]])
  batch = {"label": jnp.array([1, 0, 0, 1]), "valid": jnp.array([True, True, True, False])}
  ce = -np.log(
    np.exp(np.take_along_axis(np.asarray(logits), np.array([[1], [0], [0], [1]]), 1)[:, 0])
    / np.exp(np.asarray(logits)).sum(1)
  )
  w = np.array([3 / 2, 3 / 4, 3 / 4])  # one anomalous and two normal valid clips
  expected = np.sum(w * ce[:3]) / np.sum(w)
  loss, _ = hybrid_loss.classification_loss(loss_config, logits, batch)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  with pytest.raises(ValueError, match="convlstm baseline only"):
    classifier.get_config("hybrid,synthetic,balanced")
  with pytest.raises(ValueError, match="hybrid or convlstm"):
    classifier.get_config("effnet_hog,synthetic,differences")


def test_labelled_changes_set_their_fields_and_only_where_they_apply():
  published = classifier.get_config("hybrid,synthetic,cpu").model
  assert (published.temporal_input, published.temporal_norm, published.pooling) == ("frames", "none", "mean")
  revised = classifier.get_config("hybrid,synthetic,cpu,revised").model
  assert (revised.temporal_input, revised.temporal_norm, revised.pooling) == ("differences", "batch", "max")
  assert classifier.get_config("hybrid,synthetic,cpu,max").model.pooling == "max"
  assert classifier.get_config("convlstm,synthetic,cpu,norm").model.temporal_norm == "batch"
  # Everything else is the published CPU size.
  changed = {k for k, v in revised.items() if published[k] != v}
  assert changed == {"temporal_input", "temporal_norm", "pooling"}
  assert classifier.get_config("convlstm,synthetic,cpu").model.pooling == "flatten"
  assert classifier.get_config("convlstm,synthetic,cpu,max").model.pooling == "max"
  for variant in ("effnet_hog,synthetic,max", "effnet_hog,synthetic,revised", "effnet_hog,synthetic,norm"):
    with pytest.raises(ValueError, match="only"):
      classifier.get_config(variant)
  with pytest.raises(ValueError, match="convlstm baseline only"):
    classifier.get_config("hybrid,synthetic,short")
  model = classification.build_model(classifier.get_config("convlstm,synthetic,test,norm"))
  assert model.temporal_norm == "batch"


def test_the_revised_convlstm_is_the_published_one_with_four_labelled_changes():
  """``convlstm,...,revised``: differences, input norm, class weights and 8-frame clips
  (batch 8), 1,000 steps at the CPU size; nothing else differs (the published flattened
  map is kept)."""
  published = classifier.get_config("convlstm,synthetic,cpu")
  revised = classifier.get_config("convlstm,synthetic,cpu,revised")
  assert (published.data.clip_frames, published.data.clip_window, published.batch_size) == (30, 30, 4)
  assert (revised.data.clip_frames, revised.data.clip_window, revised.batch_size) == (8, 8, 8)
  assert (revised.model.temporal_input, revised.model.temporal_norm, revised.model.pooling) == (
    "differences",
    "batch",
    "flatten",
  )
  assert revised.loss.class_weights == "batch" and revised.num_train_steps == 1000
  before, after = checkpointing.flatten(published.to_dict()), checkpointing.flatten(revised.to_dict())
  changed = {k for k in after if before.get(k) != after[k]}
  assert changed == {
    "model.temporal_input",
    "model.temporal_norm",
    "loss.class_weights",
    "data.clip_frames",
    "data.clip_window",
    "batch_size",
    "num_train_steps",
  }
  # Longer windows than the clip (UCF-Crime's 32 s) are kept; 8 frames are sampled from them.
  short = classifier.get_config("convlstm,ucf_crime,short")
  assert (short.data.clip_frames, short.data.clip_window) == (8, 32)


def test_classifier_checkpoints_from_before_the_labelled_changes_resume_only_unchanged(tmp_path):
  """A HybridModel-1 checkpoint saved before ``model.temporal_input``/``pooling`` existed
  resumes with their published values, and is refused with any other."""
  saved = classifier.get_config("hybrid,synthetic,test").to_dict()
  del saved["model"]["temporal_input"], saved["model"]["pooling"], saved["model"]["temporal_norm"]
  loop.check_saved_config(saved, classifier.get_config("hybrid,synthetic,test").to_dict(), tmp_path)
  changed = classifier.get_config("hybrid,synthetic,test,differences")
  with pytest.raises(checkpointing.ConfigMismatchError, match="model.temporal_input"):
    loop.check_saved_config(saved, changed.to_dict(), tmp_path)
  with pytest.raises(checkpointing.ConfigMismatchError, match="model.temporal_norm"):
    loop.check_saved_config(saved, classifier.get_config("hybrid,synthetic,test,norm").to_dict(), tmp_path)
  # A ConvLSTM saved before ``model.pooling`` existed flattened its map.
  saved = classifier.get_config("convlstm,synthetic,test").to_dict()
  del saved["model"]["pooling"], saved["model"]["temporal_norm"]
  loop.check_saved_config(saved, classifier.get_config("convlstm,synthetic,test").to_dict(), tmp_path)
  with pytest.raises(checkpointing.ConfigMismatchError, match="model.pooling"):
    loop.check_saved_config(saved, classifier.get_config("convlstm,synthetic,test,max").to_dict(), tmp_path)


def test_shuffled_labels_permute_whole_clips_among_the_batch():
  batch = {
    "label": jnp.arange(8) % 2,
    "frame_labels": jnp.stack([jnp.full(3, i % 2) + 10 * i for i in range(8)]),
    "frames": jnp.arange(8),
  }
  out = hybrid_loss.shuffled_labels(batch, jax.random.key(0))
  perm = np.asarray(out["frame_labels"][:, 0]) // 10  # the clip each row's labels came from
  assert sorted(perm.tolist()) == list(range(8)) and perm.tolist() != list(range(8))
  np.testing.assert_array_equal(out["label"], np.asarray(batch["label"])[perm])
  np.testing.assert_array_equal(out["frames"], batch["frames"])  # the inputs stay where they were


def test_metrics_from_fixed_probabilities():
  # Two clips of 4 frames in one video (frames 0-3 and 4-7) and one clip of another.
  arrays = {
    "label": np.array([0, 1, 1]),
    "clip_probs": np.array([0.2, 0.7, 0.4]),
    "frame_probs": np.array([[0.1, 0.2, 0.3, 0.2], [0.6, 0.9, 0.8, 0.5], [0.4, 0.4, 0.4, 0.4]]),
    "frame_labels": np.array([[0, 0, 0, 1], [1, 1, 1, 0], [1, 1, -1, -1]]),
    "video_index": np.array([0, 0, 1]),
    "frame_index": np.array([[0, 1, 2, 3], [4, 5, 6, 7], [0, 2, 4, 6]]),
  }
  config = classifier.get_config("hybrid,synthetic")
  config.alarm.window = 2
  config.alarm.threshold = 0.5
  results = hybrid_evaluation.classification_metrics(arrays, config)
  # Clips: predictions (p > 0.5) 0, 1, 0 against labels 0, 1, 1.
  assert results["clip"]["confusion_matrix"] == [[1, 0], [1, 1]]
  assert results["clip"]["roc_auc"] == pytest.approx(1.0)
  # Frames with known labels: 8 of video 0 and 2 of video 1.
  labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 1])
  probs = np.array([0.1, 0.2, 0.3, 0.2, 0.6, 0.9, 0.8, 0.5, 0.4, 0.4])
  assert results["frame"]["count"] == 10
  assert results["frame"]["roc_auc"] == pytest.approx(metrics.roc_auc(labels, probs))
  assert results["frame"]["confusion_matrix"] == metrics.confusion_matrix(labels, probs > 0.5).tolist()
  # Alarm: trailing mean of 2 probabilities > 0.5, per video.
  avg0 = np.array([0.1, 0.15, 0.25, 0.25, 0.4, 0.75, 0.85, 0.65])
  alarm = np.concatenate([avg0 > 0.5, [False, False]])
  assert results["alarm"]["confusion_matrix"] == metrics.confusion_matrix(labels, alarm).tolist()
  flat = hybrid_evaluation.headline(results)
  assert flat["clip_auc"] == pytest.approx(1.0) and set(flat) >= {"frame_f1", "alarm_f1"}


def test_a_single_class_level_says_why_its_auc_is_nan():
  arrays = {
    "label": np.array([1, 1]),
    "clip_probs": np.array([0.7, 0.4]),
    "frame_probs": np.array([[0.6, 0.9], [0.4, 0.4]]),
    "frame_labels": np.array([[1, 1], [0, 0]]),
    "video_index": np.array([0, 1]),
    "frame_index": np.array([[0, 1], [0, 1]]),
  }
  config = classifier.get_config("hybrid,synthetic")
  config.alarm.window = 1
  lines = hybrid_evaluation.summary(hybrid_evaluation.classification_metrics(arrays, config)).splitlines()
  assert lines[0].startswith(
    "clip  (2, 2 anomalous)  AUC nan (all 2 scored clips are anomalous: an AUC needs both classes)  acc"
  )
  assert lines[1].startswith("frame (4, 2 anomalous)  AUC 1.0000  acc")


def test_motion_boxes_cover_the_moving_objects():
  full = synthetic.generate_video(3, num_frames=120, anomalies=("wrong_way",))
  middle = int(np.flatnonzero(full.labels).mean())
  window = slice(middle - 8, middle + 8)
  video = synthetic.SyntheticVideo(full.frames[window], full.labels[window], full.masks[window], full.events)
  frames = np.repeat(video.frames, 3, axis=-1)
  config = classifier.get_config("hybrid,synthetic,cpu")
  add = hybrid_boxes.AddBoxes(hybrid_boxes.make_box_source(config), config.boxes.max_boxes, ("v",))
  batch = {
    "frames": frames[None],
    "valid": np.array([True]),
    "video_index": np.array([0]),
    "frame_index": np.arange(16)[None],
  }
  out = add(batch)
  assert out["boxes"].shape == (1, 16, config.boxes.max_boxes, 4)
  # Every frame where the anomalous walker shows (12+ pixels; the figure has about 20) has
  # a box at its mask.
  visible = [t for t in np.flatnonzero(video.labels) if video.masks[t].sum() >= 12]
  assert len(visible) >= 12
  for t in visible:
    ys, xs = np.nonzero(video.masks[t])
    cx, cy = xs.mean(), ys.mean()
    boxes = out["boxes"][0, t][out["box_valid"][0, t]]
    hit = (boxes[:, 0] <= cx + 2) & (cx - 2 <= boxes[:, 2]) & (boxes[:, 1] <= cy + 2) & (cy - 2 <= boxes[:, 3])
    assert hit.any(), f"frame {t}: no box near the anomalous object at ({cx:.0f}, {cy:.0f})"
