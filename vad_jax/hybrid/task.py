"""The supervised classifier task: the functions ``vad_jax.tasks.Task`` names.

HybridModel-1 and its two baselines (``config.model.name`` in ``hybrid``, ``convlstm``,
``effnet_hog``; ``configs/classifier.py``) train through the same loop as the prediction
network (``vad_jax.train``): same mesh, sharding, checkpoints, logging and resumption.
What differs lives here:

* input: clip-level batches (``input_pipeline.create_clip_iterator``): ``frames``
  ``[B, N, H, W, C]`` in [0, 1], ``label`` [B], ``frame_labels`` [B, N], ``valid`` [B],
  ``video_index`` [B], ``frame_index`` [B, N]. For HybridModel-1 with object features
  the host pipeline adds ``boxes`` [B, N, K, 4], ``box_scores`` and ``box_valid`` [B, N, K]
  from the configured box source (motion proposals by default), computed in the grain
  workers on the uint8 frames, so the step never waits on the host;
* loss: TCR or class-weighted BCE on per-frame logits (hybrid, EfficientNet+HOG), or the
  2-way softmax cross-entropy on clip logits (ConvLSTM, as its Keras original). Frames
  whose label is unknown (``-1``: UCF-Crime training videos) take the clip label (weak
  supervision);
* evaluation (``evaluation.py``): clip-level and frame-level accuracy, precision, recall, F1 (per class,
  macro, weighted), ROC-AUC and confusion matrix; the alarm state (moving average of the
  last ``alarm.window`` frame probabilities above ``alarm.threshold``) scored against the
  frame labels. Clip probability: mean frame probability (hybrid, EfficientNet+HOG) or
  the softmax output (ConvLSTM); a ConvLSTM frame takes its clip's probability.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vad_jax import detection, metric_writers, sharding
from vad_jax import metrics as metrics_lib
from vad_jax.configs import classifier as classifier_configs
from vad_jax.data import augment as augment_lib
from vad_jax.data import input_pipeline, preprocessing, sources
from vad_jax.data import prepare as data_prep
from vad_jax.hybrid import boxes as boxes_lib
from vad_jax.hybrid import controls as controls_lib
from vad_jax.hybrid import evaluation, keras_weights
from vad_jax.hybrid import tcr as tcr_lib
from vad_jax.hybrid.convlstm import ConvLSTMBaseline, hard_sigmoid_keras2
from vad_jax.hybrid.model import EfficientNetHOGClassifier, HybridModel1

Array = Any
MUTABLE = ("batch_stats",)
# What a fold trains on: the training split and the evaluation split's other parts, or
# those parts alone (open_split).
FOLD_TRAINING = ("all", "labelled")


def _size(value: int) -> int | None:
  return int(value) or None  # 0 in a config means "keep the input size"


def prepare(config: ml_collections.ConfigDict) -> None:
  """Prepares the configured TFDS dataset if needed (``data.prepare``)."""
  data_prep.ensure_prepared(config.data)


def check_config(config: ml_collections.ConfigDict) -> None:
  """The configured splits exist in the prepared dataset; augmentation is not combined
  with boxes read from a file (they would no longer match the moved frames)."""
  data = config.data
  if needs_boxes(config) and config.boxes.source == "file" and augment_lib.from_config(data) is not None:
    raise ValueError(
      f"data.augment moves the training frames, but boxes.source='file' reads fixed boxes from "
      f"{config.boxes.path!r}: turn data.augment off, or use boxes.source='motion' or 'onnx'"
    )
  data_prep.check_splits(
    data,
    {
      "data.train_split": data.train_split,
      "data.eval_split": data.eval_split,
      "best_metric_split": config.best_metric_split,
    },
  )


def build_model(config: ml_collections.ConfigDict):
  """HybridModel-1, the ConvLSTM baseline or EfficientNetV2-B0+HOG (``model.name``)."""
  m = config.model
  dtype = jnp.dtype(m.dtype)
  if m.name == "hybrid":
    return HybridModel1(
      backbone=m.backbone,
      spatial_size=_size(m.spatial_size),
      temporal_size=_size(m.temporal_size),
      feature_dim=m.feature_dim,
      branches=m.branches,
      fusion=m.fusion,
      affm_hidden=m.affm_hidden,
      use_object_features=m.use_object_features,
      spatial_attention=m.spatial_attention,
      attention_kernel=m.attention_kernel,
      freeze_backbone=m.freeze_backbone,
      roi_output_size=tuple(m.roi_output_size),
      roi_sampling_ratio=m.roi_sampling_ratio,
      temporal_filters=tuple(m.temporal_filters),
      recurrent_dropout=m.recurrent_dropout,
      temporal_dropout=m.temporal_dropout,
      head_dropout=m.head_dropout,
      temporal_input=m.get("temporal_input", "frames"),
      pooling=m.get("pooling", "mean"),
      temporal_norm=m.get("temporal_norm", "none"),
      dtype=dtype,
    )
  if m.name == "convlstm":
    gate = {"sigmoid": jax.nn.sigmoid, "hard_sigmoid_keras2": hard_sigmoid_keras2}
    if m.recurrent_activation not in gate:
      raise ValueError(f"model.recurrent_activation must be one of {sorted(gate)}, got {m.recurrent_activation!r}")
    return ConvLSTMBaseline(
      filters=tuple(m.filters),
      recurrent_activation=gate[m.recurrent_activation],
      recurrent_dropout=m.recurrent_dropout,
      dropout=m.dropout,
      temporal_input=m.get("temporal_input", "frames"),
      temporal_norm=m.get("temporal_norm", "none"),
      pooling=m.get("pooling", "flatten"),
      dtype=dtype,
    )
  if m.name == "effnet_hog":
    return EfficientNetHOGClassifier(
      backbone=m.backbone,
      image_size=_size(m.image_size),
      hog_size=m.hog_size,
      orientations=m.orientations,
      pixels_per_cell=tuple(m.pixels_per_cell),
      cells_per_block=tuple(m.cells_per_block),
      block_norm=m.block_norm,
      hog_dim=m.hog_dim,
      hidden=m.hidden,
      dropout=m.dropout,
      freeze_backbone=m.freeze_backbone,
      dtype=dtype,
    )
  raise ValueError(f"model.name {m.name!r} is not a classifier of this task; expected hybrid, convlstm or effnet_hog")


# --------------------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------------------


def needs_boxes(config: ml_collections.ConfigDict) -> bool:
  m = config.model
  return m.name == "hybrid" and m.use_object_features and m.branches != "temporal"


def make_box_source(config: ml_collections.ConfigDict):
  """The configured box source (``config.boxes``)."""
  b = config.boxes
  if b.source == "motion":
    return boxes_lib.MotionBoxSource(
      b.max_boxes,
      threshold=b.threshold,
      min_area=b.min_area,
      opening=b.get("opening", 1),
      dilation=b.get("dilation", 2),
    )
  if b.source == "file":
    return boxes_lib.FileBoxSource(b.path, max_boxes=b.max_boxes, normalized=b.normalized)
  if b.source == "onnx":
    return boxes_lib.OnnxDetectorBoxSource(b.path, max_boxes=b.max_boxes)
  raise ValueError(f"boxes.source must be 'motion', 'file' or 'onnx', got {b.source!r}")


@dataclasses.dataclass(frozen=True)
class AddBoxes:
  """Host transform: object boxes for every clip of a clip-level batch (uint8 frames)."""

  box_source: Any
  max_boxes: int
  video_names: tuple[str, ...]

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    b, n = batch["frames"].shape[:2]
    out = {
      "boxes": np.zeros((b, n, self.max_boxes, 4), np.float32),
      "box_scores": np.zeros((b, n, self.max_boxes), np.float32),
      "box_valid": np.zeros((b, n, self.max_boxes), bool),
    }
    for i in np.flatnonzero(batch["valid"]):  # one call per clip, whole-frame operations
      video = self.video_names[int(batch["video_index"][i])]
      found = self.box_source(batch["frames"][i], video=video, frame_indices=batch["frame_index"][i])
      out["boxes"][i], out["box_scores"][i], out["box_valid"][i] = found.boxes, found.scores, found.valid
    return {**batch, **out}


def open_split(config: ml_collections.ConfigDict, train: bool) -> sources.VideoSplit:
  """The training or evaluation split, restricted to ``data.train_videos`` / ``eval_videos``.

  With ``data.fold = "i/k"`` the evaluation videos are part ``i`` of ``k`` of the
  evaluation split (``sources.select_videos``'s ``part:i/k``), and the training videos
  are those of the training split plus the evaluation split's other parts
  (``data.fold_training = "all"``) or the other parts alone (``"labelled"``): no video
  is on both sides.
  """
  data = config.data
  fold = data.get("fold", "")
  labelled_only = _trains_on_labelled_only(data)
  if fold and data.get("eval_videos", ""):
    raise ValueError(f"data.fold={fold!r} chooses the evaluation videos: data.eval_videos must be empty")
  if not train:
    split = input_pipeline.open_split(data, data.eval_split)
    return sources.select_videos(split, f"part:{fold}" if fold else data.get("eval_videos", ""))
  split = sources.select_videos(input_pipeline.open_split(data, data.train_split), data.get("train_videos", ""))
  if not fold:
    return split
  others = sources.select_videos(input_pipeline.open_split(data, data.eval_split), f"part:{fold}", exclude=True)
  return others if labelled_only else sources.concat_splits([split, others])


def _trains_on_labelled_only(data: ml_collections.ConfigDict) -> bool:
  """Whether a fold trains on the evaluation split's other parts alone
  (``data.fold_training``); raises on an unknown value, or on ``"labelled"`` without a
  fold."""
  fold_training = data.get("fold_training", "all")
  if fold_training not in FOLD_TRAINING:
    raise ValueError(f"data.fold_training must be one of {FOLD_TRAINING}, got {fold_training!r}")
  if fold_training == "labelled" and not data.get("fold", ""):
    raise ValueError("data.fold_training='labelled' needs a fold (data.fold = 'i/k')")
  return fold_training == "labelled"


def split_names(config: ml_collections.ConfigDict, train: bool) -> str:
  """The dataset splits the videos of ``open_split(config, train)`` come from, as
  ``"a"`` or ``"a+b"`` (a fold trains on both splits)."""
  data = config.data
  if not train:
    return data.eval_split
  if not data.get("fold", ""):
    return data.train_split
  return data.eval_split if _trains_on_labelled_only(data) else f"{data.train_split}+{data.eval_split}"


def create_iterator(config, mesh, *, train: bool, split: sources.VideoSplit | None = None):
  """``(iterator of global batches, clip table)`` for training (endless, shuffled) or
  evaluation (ordered, padded), boxes included when the model needs them."""
  split = split or open_split(config, train)
  transform = None
  if needs_boxes(config):
    transform = AddBoxes(make_box_source(config), config.boxes.max_boxes, tuple(str(v["name"]) for v in split.videos))
  return input_pipeline.create_clip_iterator(config, mesh, train=train, split=split, transform=transform)


def example_batch(config: ml_collections.ConfigDict, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
  """A labelled batch of zero clips with the shapes of the real inputs; every frame of
  a clip is scored."""
  h, w = config.data.image_size
  n = config.data.clip_frames
  batch = {
    "frames": np.zeros((batch_size, n, h, w, config.data.channels), np.float32),
    "label": np.arange(batch_size, dtype=np.int32) % 2,
    "frame_labels": np.broadcast_to(np.arange(batch_size, dtype=np.int32)[:, None] % 2, (batch_size, n)),
    "valid": np.ones((batch_size,), bool),
    "video_index": np.zeros((batch_size,), np.int32),
    "frame_index": np.broadcast_to(np.arange(n, dtype=np.int32), (batch_size, n)),
  }
  if needs_boxes(config):
    k = config.boxes.max_boxes
    batch.update(
      boxes=np.zeros((batch_size, n, k, 4), np.float32),
      box_scores=np.zeros((batch_size, n, k), np.float32),
      box_valid=np.zeros((batch_size, n, k), bool),
    )
  return batch, batch_size * n


def model_inputs(config: ml_collections.ConfigDict, batch: Mapping[str, Array]) -> tuple:
  """Positional model arguments from a batch."""
  if needs_boxes(config):
    return batch["frames"], batch["boxes"], batch["box_scores"], batch["box_valid"]
  return (batch["frames"],)


def init_variables(model, config: ml_collections.ConfigDict, rng: Array, batch: Mapping[str, Array]) -> dict:
  params_rng, dropout_rng = jax.random.split(rng)
  return model.init({"params": params_rng, "dropout": dropout_rng}, *model_inputs(config, batch), train=False)


def load_pretrained(state, config: ml_collections.ConfigDict):
  """Backbone weights from the Keras ``.h5`` file named by ``model.pretrained`` (if any)."""
  if not config.model.pretrained:
    return state
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  loaded, report = keras_weights.load_keras_h5(
    config.model.pretrained, jax.device_get(variables), subtree=("backbone",)
  )
  logging.info(
    "loaded backbone weights from %s (unused layers of the file: %s)", config.model.pretrained, report.get("unused", [])
  )
  loaded = jax.device_put(loaded, jax.tree.map(lambda x: x.sharding, variables))
  return state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])


def train_iterator(config: ml_collections.ConfigDict, mesh) -> tuple[Iterator[dict[str, Array]], int]:
  """Shuffled labelled clips of the training videos; the number of training clips."""
  iterator, table = create_iterator(config, mesh, train=True)  # raises if there is no clip
  return iterator, len(table)


# --------------------------------------------------------------------------------------
# Loss and steps.
# --------------------------------------------------------------------------------------


def frame_targets(batch: Mapping[str, Array]) -> tuple[Array, Array]:
  """``(targets [B, N] in {0, 1}, mask [B, N])``: frame labels, the clip label where a
  frame's label is unknown; padding examples masked out."""
  frame_labels = batch["frame_labels"]
  clip = batch["label"][:, None]
  targets = jnp.where(frame_labels >= 0, frame_labels, clip)
  mask = (targets >= 0) & batch["valid"][:, None]
  return jnp.clip(targets, 0, 1).astype(jnp.float32), mask.astype(jnp.float32)


def classification_loss(
  loss_config: ml_collections.ConfigDict, logits: Array, batch: Mapping[str, Array]
) -> tuple[Array, dict[str, Array]]:
  """The configured loss (``loss.name``: tcr, bce or softmax) and its terms."""
  if loss_config.name == "softmax":
    valid = (batch["valid"] & (batch["label"] >= 0)).astype(jnp.float32)
    labels = jnp.clip(batch["label"], 0, 1)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    if loss_config.get("class_weights", "none") == "batch":  # the `balanced` ConvLSTM variant
      w = jax.lax.stop_gradient(tcr_lib.class_weights_from_labels(labels, valid))
      valid = valid * jnp.where(labels == 1, w[1], w[0])
    loss = jnp.sum(valid * ce) / jnp.maximum(jnp.sum(valid), 1.0)
    return loss, {"loss": loss}
  targets, mask = frame_targets(batch)
  class_weights = None if loss_config.class_weights == "batch" else jnp.ones(2)
  logits = logits.astype(jnp.float32)
  if loss_config.name == "tcr":
    loss, aux = tcr_lib.tcr_loss(
      logits,
      targets,
      class_weights=class_weights,
      mask=mask,
      gamma=loss_config.gamma,
      lam=loss_config.lam,
      window=loss_config.window,
    )
    return loss, {"loss": loss, "bce": aux["bce"], "smoothness": aux["smoothness"]}
  if loss_config.name == "bce":
    loss = tcr_lib.weighted_bce(logits, targets, class_weights=class_weights, mask=mask)
    return loss, {"loss": loss}
  raise ValueError(f"loss.name must be 'tcr', 'bce' or 'softmax', got {loss_config.name!r}")


def shuffled_labels(batch: dict[str, Array], key: Array) -> dict[str, Array]:
  """``batch`` with the labels of its clips permuted among them (``loss.shuffle_labels``:
  what a model learns when its labels carry no information about its inputs, the same
  class balance kept; a control for the separation tests)."""
  perm = jax.random.permutation(key, batch["label"].shape[0])
  return {**batch, "label": batch["label"][perm], "frame_labels": batch["frame_labels"][perm]}


def train_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict):
  """One optimisation step; dropout keys derive from the seed and the step (resumable)."""
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed + 1), state.step)
  if config.loss.get("shuffle_labels", False):
    batch = shuffled_labels(batch, jax.random.fold_in(jax.random.key(config.seed + 2), state.step))

  def loss_fn(params):
    (logits, _), new_vars = model.apply(
      {"params": params, "batch_stats": state.batch_stats},
      *model_inputs(config, batch),
      train=True,
      mutable=list(MUTABLE),
      rngs={"dropout": dropout_rng},
    )
    loss, terms = classification_loss(config.loss, logits, batch)
    return loss, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars.get("batch_stats", state.batch_stats))
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def probabilities(config: ml_collections.ConfigDict, logits: Array, aux: Mapping[str, Any]) -> dict[str, Array]:
  """``frame_probs [B, N]`` and ``clip_probs [B]`` from a model output."""
  if config.model.name == "convlstm":
    clip = aux["probs"][:, 1]
    return {
      "clip_probs": clip,
      "frame_probs": jnp.broadcast_to(clip[:, None], (clip.shape[0], config.data.clip_frames)),
    }
  frame = jax.nn.sigmoid(logits.astype(jnp.float32))
  return {"frame_probs": frame, "clip_probs": frame.mean(axis=1)}


def eval_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict) -> dict[str, Array]:
  logits, aux = model.apply(
    {"params": state.params, "batch_stats": state.batch_stats}, *model_inputs(config, batch), train=False
  )
  return probabilities(config, logits, aux)


# --------------------------------------------------------------------------------------
# Evaluation.
# --------------------------------------------------------------------------------------


def score_clips(
  config, mesh, split: sources.VideoSplit, step: Callable[[dict[str, Array]], Mapping[str, Array]]
) -> dict[str, np.ndarray]:
  """``step``'s outputs on every clip of ``split`` with labels and indices (padding
  dropped): the evaluation iterator of the classifiers, shared by their controls."""
  iterator, table = create_iterator(config, mesh, train=False, split=split)
  batch_size = config.data.eval_batch_size or config.batch_size
  iterator = metric_writers.counting(iterator, "evaluation", -(-len(table) // batch_size))
  keys = ("label", "frame_labels", "video_index", "frame_index", "valid")
  outputs = sharding.dispatch_in_order(lambda batch: {**step(batch), **{k: batch[k] for k in keys}}, iterator)
  if not outputs:
    raise ValueError(
      f"the evaluation split of {config.data.name} has no clip of at least {config.data.clip_frames} frames"
    )
  return sharding.fetch(outputs)


def collect(config, state, mesh, split: sources.VideoSplit) -> dict[str, np.ndarray]:
  """Probabilities of every clip of ``split`` with labels and indices (padding dropped)."""
  step = jax.jit(functools.partial(eval_step, model=build_model(config), config=config))
  return score_clips(config, mesh, split, functools.partial(step, state))


def report(
  config, arrays: Mapping[str, np.ndarray], split: sources.VideoSplit, eval_dir: Optional[pathlib.Path] = None
) -> dict[str, Any]:
  """Clip, frame and alarm metrics of ``frame_probs``/``clip_probs`` (``arrays`` as
  ``score_clips`` returns them); writes the outputs to ``eval_dir`` (process 0)."""
  results = evaluation.classification_metrics(arrays, config)
  if eval_dir is not None and jax.process_index() == 0:
    evaluation.write_outputs(
      pathlib.Path(eval_dir), arrays, results, [str(v["name"]) for v in split.videos], plot=config.eval_plots
    )
  return results


def evaluate(
  config,
  state,
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
  calibration: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
  """Evaluates a classifier on ``split_name`` (default ``data.eval_split`` with
  ``data.eval_videos``); writes outputs to ``eval_dir`` (process 0). ``calibration`` is
  not used (see ``calibrate``)."""
  del calibration
  split = evaluation_split(config, split_name)
  return report(config, collect(config, state, mesh, split), split, eval_dir)


def evaluation_split(config, split_name: Optional[str] = None) -> sources.VideoSplit:
  """``split_name`` (default ``data.eval_split`` with its fold or ``data.eval_videos``)."""
  if split_name in (None, config.data.eval_split):
    return open_split(config, train=False)
  return sources.select_videos(input_pipeline.open_split(config.data, split_name), config.data.get("eval_videos", ""))


def evaluate_ensemble(
  members: Sequence[tuple[str, ml_collections.ConfigDict, Any]],
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
) -> dict[str, Any]:
  """Evaluates classifiers ``(name, config, state)`` together: the ensemble's clip and
  frame probabilities are the mean of the members'. The members must score the same
  clips (``vad_jax.ensemble`` checks their data settings). Beside the ensemble's figures:
  ``members``, each classifier's own, and ``first``, those of the first 1, 2, ... members."""
  config = members[0][1]
  split = evaluation_split(config, split_name)
  collected = [collect(member_config, state, mesh, split) for _, member_config, state in members]
  probabilities = [key for key in collected[0] if key.endswith("_probs")]
  for (name, _, _), arrays in zip(members, collected):
    for key, value in arrays.items():
      if key not in probabilities and not np.array_equal(value, collected[0][key]):
        raise ValueError(f"ensemble member {name} scored other clips than {members[0][0]} ({key} differs)")

  def mean(chosen: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {**chosen[0], **{key: np.mean([a[key] for a in chosen], axis=0) for key in probabilities}}

  ensemble = mean(collected)
  results = evaluation.classification_metrics(ensemble, config)
  results["members"] = [
    {"name": name, **evaluation.classification_metrics(arrays, config)}
    for (name, _, _), arrays in zip(members, collected)
  ]
  results["first"] = [
    {"members": k, **evaluation.classification_metrics(mean(collected[:k]), config)} for k in range(1, len(members) + 1)
  ]
  if eval_dir is not None and jax.process_index() == 0:
    evaluation.write_outputs(
      pathlib.Path(eval_dir), ensemble, results, [str(v["name"]) for v in split.videos], plot=config.eval_plots
    )
  return results


def calibrate(config, state, mesh, videos=None) -> None:
  """Nothing to fit: a classifier's probability is its deployment score."""
  del config, state, mesh, videos


def validate(config, state, mesh, speedup: int = 3) -> None:
  """None: a classifier is validated on labelled clips, a split of labelled training
  videos given to ``evaluate`` (docs/hybrid.md), not on pseudo-anomalies."""
  del config, state, mesh, speedup


scalar_metrics = evaluation.headline


def metrics(config: ml_collections.ConfigDict) -> dict[str, str]:
  """``evaluation.headline``'s names (clip, frame and alarm level); all higher-is-better."""
  del config
  return {name: "max" for name in evaluation.HEADLINE_NAMES}


summary = evaluation.summary


def ablations(config: ml_collections.ConfigDict) -> dict[str, Callable[[ml_collections.ConfigDict], None]]:
  """HybridModel-1's ablations (``configs/classifier.py``): no AFFM, BCE instead of TCR,
  one branch only, no object features. The baselines have none."""
  if config.model.name != "hybrid":
    return {}
  return {
    name: functools.partial(classifier_configs.apply_ablation, ablation=name) for name in classifier_configs.ABLATIONS
  }


def controls(config: ml_collections.ConfigDict) -> dict[str, Callable[..., dict[str, Any]]]:
  """Simple controls on the config's clips and frames (``controls.py``), each called as
  ``control(config, mesh, eval_dir=None)`` and evaluated like a classifier: always the
  motion-energy regression; the regression on the prediction network's scores when
  ``prediction_scores`` names their folder."""
  found = {"motion_energy": motion_energy_control}
  if config.get("prediction_scores"):
    found["prediction_score"] = prediction_score_control
  return found


def _control(config, mesh, eval_dir, name: str, feature_names, step_for_split) -> dict[str, Any]:
  """Fits the logistic regression ``name`` on the features that ``step_for_split(split,
  split_names)`` gives for the training split's clips, evaluates it on the evaluation
  split by ``report`` (as ``evaluate`` does a classifier) and adds the fit under
  ``control``. The features are computed on the host: one process only."""
  train_split = open_split(config, train=True)
  train = score_clips(config, mesh, train_split, step_for_split(train_split, split_names(config, train=True)))
  split = open_split(config, train=False)
  test = score_clips(config, mesh, split, step_for_split(split, split_names(config, train=False)))
  arrays, fit = controls_lib.logistic_control(name, train, test, feature_names)
  results = report(config, arrays, split, eval_dir)
  if eval_dir is not None and jax.process_index() == 0:
    (pathlib.Path(eval_dir) / "control.json").write_text(json.dumps(fit, indent=2) + "\n")
  return {**results, "control": fit}


def motion_energy_control(config, mesh, eval_dir: Optional[pathlib.Path] = None) -> dict[str, Any]:
  """Logistic regression on per-frame motion statistics and motion boxes (the config's
  box settings, or the defaults for a model without boxes)."""
  source = make_box_source(config) if "boxes" in config else boxes_lib.MotionBoxSource()
  step = controls_lib.feature_step(source)
  return _control(config, mesh, eval_dir, "motion_energy", controls_lib.FEATURE_NAMES, lambda split, name: step)


def prediction_score_control(config, mesh, eval_dir: Optional[pathlib.Path] = None) -> dict[str, Any]:
  """Logistic regression on the prediction network's per-frame statistics, read from
  ``<prediction_scores>/<split>/scores.csv`` for every split the videos come from
  (``split_names``; its evaluation of each split: ``python -m vad_jax.evaluate --split
  SPLIT --output <prediction_scores>/SPLIT``)."""
  folder = pathlib.Path(config.prediction_scores)

  def step_for_split(split: sources.VideoSplit, names: str):
    table = {}
    for name in names.split("+"):
      table.update(controls_lib.read_prediction_scores(folder / name / "scores.csv"))
    return controls_lib.lookup_step(table, [str(v["name"]) for v in split.videos])

  return _control(config, mesh, eval_dir, "prediction_score", controls_lib.PREDICTION_FEATURES, step_for_split)


def _window_probabilities(
  config: ml_collections.ConfigDict, state, frames: Iterator[detection.Frame], batch_size: int, name: str
) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
  """``(frame probabilities [B, n] on the device, first frames, lengths)`` of each batch
  of consecutive windows of ``data.clip_frames`` frames (padding windows dropped)."""
  step = jax.jit(functools.partial(eval_step, model=build_model(config), config=config))
  add_boxes = None
  if needs_boxes(config):
    add_boxes = AddBoxes(make_box_source(config), config.boxes.max_boxes, (name,))
  n = config.data.clip_frames
  windows = detection.consecutive_windows(
    frames, n, tuple(config.data.image_size), config.data.channels, batch_size, config.data.jpeg_draft
  )
  for clips, firsts, lengths, count in windows:
    batch = {
      "frames": clips,
      "valid": lengths > 0,
      "video_index": np.zeros(len(clips), np.int32),
      "frame_index": firsts[:, None] + np.arange(n),
    }
    if add_boxes is not None:
      batch = add_boxes(batch)  # on the uint8 frames, as in the input pipeline
    batch["frames"] = preprocessing.to_unit(clips)
    yield step(state, batch)["frame_probs"], firsts[:count], lengths[:count]


def stream(
  config: ml_collections.ConfigDict,
  state,
  frames: Iterator[detection.Frame],
  *,
  batch_size: int = 8,
  threshold: Optional[float] = None,
  normalisation: Optional[str] = None,
  calibration: Optional[Mapping[str, Any]] = None,
  keep_frames: bool = False,
  error_maps: bool = False,
  name: str = "video",
) -> Iterator[detection.FrameResult]:
  """Every frame's result as soon as its batch of windows is scored: ``score_video``'s
  probabilities and moving-average alarms, frame for frame. A classifier has no
  prediction error, so ``error_maps`` gives none."""
  del normalisation, calibration, error_maps
  threshold = config.alarm.threshold if threshold is None else threshold
  window = config.alarm.window
  history = np.zeros(0)  # the last window - 1 probabilities: the moving average continues over batches
  keeper = detection.FrameKeeper(frames, keep_frames)
  for probs, firsts, lengths in _window_probabilities(config, state, iter(keeper), batch_size, name):
    probs = np.asarray(jax.device_get(probs), np.float64)  # results are wanted now: one transfer
    new = np.concatenate([probs[row, :length] for row, length in enumerate(lengths)])
    series = np.concatenate([history, new])
    levels, alarms = metrics_lib.moving_average_alarm(series, window, threshold)
    history = series[len(series) - (window - 1) :] if window > 1 else np.zeros(0)
    last = int(firsts[-1] + lengths[-1] - 1)
    results = zip(keeper.release(last), new, levels[-len(new) :], alarms[-len(new) :])
    for (i, frame), p, level, alarm in results:
      yield detection.FrameResult(i, float(p), float(level), bool(alarm), frame)
  for i, frame in keeper.release_all():  # nothing left unscored unless the source was empty
    yield detection.FrameResult(i, None, None, False, frame)


def score_video(
  config: ml_collections.ConfigDict,
  state,
  frames: Iterator[np.ndarray],
  *,
  batch_size: int = 8,
  threshold: Optional[float] = None,
  normalisation: Optional[str] = None,
  calibration: Optional[Mapping[str, Any]] = None,
  name: str = "video",
) -> detection.Detection:
  """Per-frame anomaly probabilities over consecutive windows of ``data.clip_frames``
  frames (the last padded by repeating its final frame; a ConvLSTM frame takes its
  window's probability); alarm where the moving average of the last ``alarm.window``
  probabilities exceeds ``threshold`` (default ``alarm.threshold``), as in the authors'
  code. A probability needs no normalisation or calibration: both arguments are
  ignored, and the result is causal up to one window."""
  del normalisation, calibration
  parts = list(_window_probabilities(config, state, frames, batch_size, name))  # results stay on the device
  if not parts:
    raise ValueError(f"{name} has no frame to score")
  host = jax.device_get([p for p, _, _ in parts])
  indices, probs = [], []
  for probs_batch, (_, firsts, lengths) in zip(host, parts):
    for row, (first, length) in enumerate(zip(firsts, lengths)):
      indices.append(first + np.arange(length))
      probs.append(np.asarray(probs_batch[row, :length], np.float64))
  frame_indices, scores = np.concatenate(indices), np.concatenate(probs)
  threshold = config.alarm.threshold if threshold is None else threshold
  level, alarm = metrics_lib.moving_average_alarm(scores, config.alarm.window, threshold)
  return detection.Detection(
    frames=frame_indices,
    scores=scores,
    level=level,
    alarm=alarm,
    threshold=threshold,
    rule=f"moving average of {config.alarm.window} probabilities > {threshold}",
  )
