"""Supervised anomaly classifiers: inputs, losses, steps and evaluation.

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
* evaluation: clip-level and frame-level accuracy, precision, recall, F1 (per class,
  macro, weighted), ROC-AUC and confusion matrix; the alarm state (moving average of the
  last ``alarm.window`` frame probabilities above ``alarm.threshold``) scored against the
  frame labels. Clip probability: mean frame probability (hybrid, EfficientNet+HOG) or
  the softmax output (ConvLSTM); a ConvLSTM frame takes its clip's probability.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import pathlib
import warnings
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vad_jax import metrics, plots
from vad_jax.data import input_pipeline, sources
from vad_jax.losses import tcr as tcr_lib
from vad_jax.models import boxes as boxes_lib
from vad_jax.models.build import build_model

Array = Any
MUTABLE = ("batch_stats",)


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
    return boxes_lib.MotionBoxSource(b.max_boxes, threshold=b.threshold, min_area=b.min_area)
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
    out = {"boxes": np.zeros((b, n, self.max_boxes, 4), np.float32),
           "box_scores": np.zeros((b, n, self.max_boxes), np.float32),
           "box_valid": np.zeros((b, n, self.max_boxes), bool)}
    for i in np.flatnonzero(batch["valid"]):  # one call per clip, whole-frame operations
      video = self.video_names[int(batch["video_index"][i])]
      found = self.box_source(batch["frames"][i], video=video, frame_indices=batch["frame_index"][i])
      out["boxes"][i], out["box_scores"][i], out["box_valid"][i] = found.boxes, found.scores, found.valid
    return {**batch, **out}


def open_split(config: ml_collections.ConfigDict, train: bool) -> sources.VideoSplit:
  """The training or evaluation split, restricted to ``data.train_videos`` / ``eval_videos``."""
  data = config.data
  name = data.train_split if train else data.eval_split
  split = input_pipeline.open_split(data, name)
  return sources.select_videos(split, data.get("train_videos" if train else "eval_videos", ""))


def create_iterator(config, mesh, *, train: bool, split: sources.VideoSplit | None = None):
  """``(iterator of global batches, clip table)`` for training (endless, shuffled) or
  evaluation (ordered, padded), boxes included when the model needs them."""
  split = split or open_split(config, train)
  transform = None
  if needs_boxes(config):
    transform = AddBoxes(make_box_source(config), config.boxes.max_boxes,
                         tuple(str(v["name"]) for v in split.videos))
  return input_pipeline.create_clip_iterator(config, mesh, train=train, split=split, transform=transform)


def example_batch(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """A one-clip batch of zeros with the shapes of the real inputs (for initialisation)."""
  h, w = config.data.image_size
  n, k = config.data.clip_frames, config.boxes.max_boxes
  batch = {"frames": np.zeros((1, n, h, w, config.data.channels), np.float32)}
  if needs_boxes(config):
    batch.update(boxes=np.zeros((1, n, k, 4), np.float32), box_scores=np.zeros((1, n, k), np.float32),
                 box_valid=np.zeros((1, n, k), bool))
  return batch


def model_inputs(config: ml_collections.ConfigDict, batch: Mapping[str, Array]) -> tuple:
  """Positional model arguments from a batch."""
  if needs_boxes(config):
    return batch["frames"], batch["boxes"], batch["box_scores"], batch["box_valid"]
  return (batch["frames"],)


def init_variables(model, config: ml_collections.ConfigDict, rng: Array, batch: Mapping[str, Array]) -> dict:
  params_rng, dropout_rng = jax.random.split(rng)
  return model.init({"params": params_rng, "dropout": dropout_rng}, *model_inputs(config, batch), train=False)


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


def classification_loss(loss_config: ml_collections.ConfigDict, logits: Array,
                        batch: Mapping[str, Array]) -> tuple[Array, dict[str, Array]]:
  """The configured loss (``loss.name``: tcr, bce or softmax) and its terms."""
  if loss_config.name == "softmax":
    valid = (batch["valid"] & (batch["label"] >= 0)).astype(jnp.float32)
    labels = jnp.clip(batch["label"], 0, 1)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    loss = jnp.sum(valid * ce) / jnp.maximum(jnp.sum(valid), 1.0)
    return loss, {"loss": loss}
  targets, mask = frame_targets(batch)
  class_weights = None if loss_config.class_weights == "batch" else jnp.ones(2)
  logits = logits.astype(jnp.float32)
  if loss_config.name == "tcr":
    loss, aux = tcr_lib.tcr_loss(logits, targets, class_weights=class_weights, mask=mask,
                                 gamma=loss_config.gamma, lam=loss_config.lam, window=loss_config.window)
    return loss, {"loss": loss, "bce": aux["bce"], "smoothness": aux["smoothness"]}
  if loss_config.name == "bce":
    loss = tcr_lib.weighted_bce(logits, targets, class_weights=class_weights, mask=mask)
    return loss, {"loss": loss}
  raise ValueError(f"loss.name must be 'tcr', 'bce' or 'softmax', got {loss_config.name!r}")


def train_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict):
  """One optimisation step; dropout keys derive from the seed and the step (resumable)."""
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed + 1), state.step)

  def loss_fn(params):
    (logits, _), new_vars = model.apply({"params": params, "batch_stats": state.batch_stats},
                                        *model_inputs(config, batch), train=True,
                                        mutable=list(MUTABLE), rngs={"dropout": dropout_rng})
    loss, terms = classification_loss(config.loss, logits, batch)
    return loss, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars.get("batch_stats", state.batch_stats))
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def probabilities(config: ml_collections.ConfigDict, logits: Array, aux: Mapping[str, Any]) -> dict[str, Array]:
  """``frame_probs [B, N]`` and ``clip_probs [B]`` from a model output."""
  if config.model.name == "convlstm":
    clip = aux["probs"][:, 1]
    return {"clip_probs": clip, "frame_probs": jnp.broadcast_to(clip[:, None], (clip.shape[0], config.data.clip_frames))}
  frame = jax.nn.sigmoid(logits.astype(jnp.float32))
  return {"frame_probs": frame, "clip_probs": frame.mean(axis=1)}


def eval_step(state, batch: dict[str, Array], *, model, config: ml_collections.ConfigDict) -> dict[str, Array]:
  logits, aux = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                            *model_inputs(config, batch), train=False)
  return probabilities(config, logits, aux)


def bind_steps(model, config):
  return (functools.partial(train_step, model=model, config=config),
          functools.partial(eval_step, model=model, config=config))


# --------------------------------------------------------------------------------------
# Evaluation.
# --------------------------------------------------------------------------------------


def collect(config, state, mesh, split: sources.VideoSplit) -> dict[str, np.ndarray]:
  """Probabilities of every clip of ``split`` with labels and indices (padding dropped)."""
  from vad_jax.evaluate import fetch  # noqa: PLC0415  (evaluate imports train, which imports this)

  iterator, _ = create_iterator(config, mesh, train=False, split=split)
  step = jax.jit(bind_steps(build_model(config), config)[1])
  keys = ("label", "frame_labels", "video_index", "frame_index", "valid")
  outputs = [{**step(state, batch), **{k: batch[k] for k in keys}} for batch in iterator]
  if not outputs:
    raise ValueError(f"the evaluation split of {config.data.name} has no clip of at least "
                     f"{config.data.clip_frames} frames")
  return fetch(outputs)


def _report(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
  """Threshold metrics and ROC-AUC of one level (clip or frame)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
    report = metrics.classification_report(labels, (probs > threshold).astype(int), num_classes=2,
                                           class_names=["normal", "anomalous"])
    auc = metrics.roc_auc(labels, probs)
  report["confusion_matrix"] = report["confusion_matrix"].tolist()
  return {**report, "roc_auc": auc, "count": int(labels.size), "anomalous": int(labels.sum())}


def frame_series(arrays: Mapping[str, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Per video: ``(frame indices, probabilities, labels)`` in time order, each frame once
  (a frame sampled by two clips keeps its mean probability)."""
  series = {}
  video = np.repeat(arrays["video_index"], arrays["frame_index"].shape[1])
  frame = arrays["frame_index"].reshape(-1)
  prob = arrays["frame_probs"].reshape(-1)
  label = arrays["frame_labels"].reshape(-1)
  for v in np.unique(video):
    rows = video == v
    frames, inverse = np.unique(frame[rows], return_inverse=True)
    mean_prob = np.bincount(inverse, prob[rows]) / np.bincount(inverse)
    labels = np.full(frames.size, -1)
    labels[inverse] = label[rows]
    series[int(v)] = (frames, mean_prob, labels)
  return series


def classification_metrics(arrays: Mapping[str, np.ndarray], config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Clip-level, frame-level and alarm metrics (see the module docstring)."""
  threshold = config.decision_threshold
  clip_known = arrays["label"] >= 0
  results: dict[str, Any] = {"clip": _report(arrays["label"][clip_known], arrays["clip_probs"][clip_known], threshold)}
  series = frame_series(arrays)
  labels = np.concatenate([s[2] for s in series.values()])
  known = labels >= 0
  if known.any():
    probs = np.concatenate([s[1] for s in series.values()])
    results["frame"] = _report(labels[known], probs[known], threshold)
    alarms = np.concatenate([metrics.moving_average_alarm(s[1], config.alarm.window, config.alarm.threshold)[1]
                             for s in series.values()])
    results["alarm"] = _report(labels[known], alarms[known].astype(np.float64), 0.5)
  results["videos"] = len(series)
  return results


def headline(results: Mapping[str, Any]) -> dict[str, float]:
  """Flat scalars for logs and best-checkpoint selection (``clip_auc``, ``frame_f1``...)."""
  flat = {}
  for level in ("clip", "frame", "alarm"):
    if level in results:
      r = results[level]
      flat.update({f"{level}_auc": r["roc_auc"], f"{level}_accuracy": r["accuracy"],
                   f"{level}_precision": r["per_class"]["anomalous"]["precision"],
                   f"{level}_recall": r["per_class"]["anomalous"]["recall"],
                   f"{level}_f1": r["per_class"]["anomalous"]["f1"], f"{level}_macro_f1": r["macro"]["f1"]})
  return {k: float(v) for k, v in flat.items()}


def write_outputs(eval_dir: pathlib.Path, arrays: Mapping[str, np.ndarray], results: Mapping[str, Any],
                  video_names: list[str], plot: bool = True) -> None:
  eval_dir.mkdir(parents=True, exist_ok=True)
  (eval_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")
  with open(eval_dir / "clip_scores.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "first_frame", "label", "probability"])
    for v, first, label, p in zip(arrays["video_index"], arrays["frame_index"][:, 0], arrays["label"],
                                  arrays["clip_probs"]):
      writer.writerow([video_names[int(v)], int(first), int(label), f"{float(p):.6g}"])
  with open(eval_dir / "frame_scores.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "frame", "label", "probability"])
    for v, (frames, probs, labels) in frame_series(arrays).items():
      for i in range(frames.size):
        writer.writerow([video_names[v], int(frames[i]), int(labels[i]), f"{probs[i]:.6g}"])
  if plot and len(np.unique(arrays["label"][arrays["label"] >= 0])) == 2:
    plots.roc_curves(eval_dir / "roc.png", arrays["label"][arrays["label"] >= 0],
                     {"clip": arrays["clip_probs"][arrays["label"] >= 0]})


def evaluate_state(config, state, mesh, split_name: Optional[str] = None,
                   eval_dir: Optional[pathlib.Path] = None) -> dict[str, Any]:
  """Evaluates a classifier on ``split_name`` (default ``data.eval_split`` with
  ``data.eval_videos``); writes outputs to ``eval_dir`` (process 0)."""
  if split_name is None:
    split = open_split(config, train=False)
  else:
    split = sources.select_videos(input_pipeline.open_split(config.data, split_name),
                                  config.data.get("eval_videos", ""))
  arrays = collect(config, state, mesh, split)
  results = classification_metrics(arrays, config)
  if eval_dir is not None and jax.process_index() == 0:
    write_outputs(pathlib.Path(eval_dir), arrays, results, [str(v["name"]) for v in split.videos],
                  plot=config.eval_plots)
  return results


def summary(results: Mapping[str, Any]) -> str:
  lines = []
  for level in ("clip", "frame", "alarm"):
    if level not in results:
      continue
    r = results[level]
    a = r["per_class"]["anomalous"]
    cm = r["confusion_matrix"]
    lines.append(f"{level:<5} ({r['count']}, {r['anomalous']} anomalous)  AUC {r['roc_auc']:.4f}  "
                 f"acc {r['accuracy']:.4f}  P {a['precision']:.4f}  R {a['recall']:.4f}  F1 {a['f1']:.4f}  "
                 f"macro F1 {r['macro']['f1']:.4f}  weighted F1 {r['weighted']['f1']:.4f}  "
                 f"confusion [[TN FP] [FN TP]] {cm}")
  return "\n".join(lines)
