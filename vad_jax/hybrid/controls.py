"""Simple controls for the supervised classifiers: is there signal a learned model misses?

A control scores the same clips and frames as the classifier of a config and is evaluated
by the same code: ``for_config`` runs it through ``evaluation.score_clips`` (the
classifiers' evaluation iterator: same split, windows, sampled frames, image size) and
``evaluation.report`` (``evaluation.classification_metrics``, the function behind
``evaluation.evaluate``), so its figures sit beside the models' in one table
(``python -m vad_jax.studies.ablations``).

``motion_energy``: a logistic regression on per-frame motion statistics fitted on the
training split's frame labels. Per frame of a clip ``[n, h, w, c]`` in ``[0, 1]``
(grayscale, BT.709 luma):

* frame difference ``|g_t - g_{t-1}|`` (the first frame of a clip uses ``|g_1 - g_0|``):
  mean, 90th and 99th percentile, max, fraction of pixels above 0.04, 0.08 and 0.16;
* background difference ``|g_t - median_t g|`` (the clip's per-pixel median, the motion
  box source's background): the same seven statistics;
* the motion box source's boxes (``boxes.py``, the config's ``boxes`` settings): count,
  total and largest area (fractions of the frame), largest height and width
  (fractions), highest confidence, and the largest and mean displacement of a box centre
  from the nearest box centre of the previous frame (pixels per frame; boxes of a frame
  without a predecessor count 0).

``prediction_score``: the same regression on the prediction network's per-frame
statistics (``PREDICTION_FEATURES``: PSNR of the prediction, of its spatial and temporal
streams and of their worst block, distances to the memory items), read from the
``scores.csv`` files its evaluation writes for the training and the test split. This is
the supervised use of an anomaly score learned without labels.

Features are standardised with the training frames' mean and deviation; the regression
(L2 penalty, class weights ``n / (2 n_y)`` as the classifiers' loss) is fitted by
Newton's method in float64. A frame probability is the regression's sigmoid; a clip's
is the mean of its frames', as for the per-frame classifiers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax.data import sources
from vad_jax.hybrid import boxes as boxes_lib
from vad_jax.hybrid import evaluation, inputs

DIFF_THRESHOLDS = (0.04, 0.08, 0.16)
_STATS = ("mean", "q90", "q99", "max", *(f"above_{t:g}" for t in DIFF_THRESHOLDS))
BOX_FEATURES = ("count", "area", "max_area", "max_height", "max_width", "max_score", "max_speed", "mean_speed")
FEATURE_NAMES = (
  *(f"diff_{s}" for s in _STATS),
  *(f"background_{s}" for s in _STATS),
  *(f"box_{s}" for s in BOX_FEATURES),
)


def to_gray(frames: np.ndarray) -> np.ndarray:
  """``[..., h, w, c]`` (c = 1 or 3, floats in [0, 1]) -> ``[..., h, w]`` float32."""
  frames = np.asarray(frames, np.float32)
  if frames.shape[-1] == 3:
    return frames @ np.asarray([0.2125, 0.7154, 0.0721], np.float32)
  if frames.shape[-1] == 1:
    return frames[..., 0]
  raise ValueError(f"expected 1 or 3 channels, got shape {frames.shape}")


def frame_differences(gray: np.ndarray) -> np.ndarray:
  """``|g_t - g_{t-1}|`` of clips ``[b, n, h, w]``; frame 0 takes frame 1's difference
  (zeros for one-frame clips)."""
  if gray.ndim != 4:
    raise ValueError(f"expected gray clips [batch, time, h, w], got shape {gray.shape}")
  if gray.shape[1] < 2:
    return np.zeros_like(gray)
  diff = np.abs(np.diff(gray, axis=1))
  return np.concatenate([diff[:, :1], diff], axis=1)


def pixel_statistics(maps: np.ndarray) -> np.ndarray:
  """The ``_STATS`` of each frame of ``[b, n, h, w]`` maps -> ``[b, n, 7]``."""
  flat = maps.reshape(*maps.shape[:2], -1)
  q90, q99 = np.quantile(flat, [0.9, 0.99], axis=-1)
  above = [(flat > t).mean(-1) for t in DIFF_THRESHOLDS]
  return np.stack([flat.mean(-1), q90, q99, flat.max(-1), *above], axis=-1).astype(np.float32)


def box_statistics(found: boxes_lib.Boxes, frame_hw: tuple[int, int]) -> np.ndarray:
  """``BOX_FEATURES`` of each frame of one clip's boxes (``[n, k, 4]`` ...) -> ``[n, 8]``."""
  h, w = frame_hw
  valid = found.valid
  size = np.where(valid[..., None], found.boxes[..., 2:] - found.boxes[..., :2], 0.0)  # [n, k, 2] (w, h)
  area = size[..., 0] * size[..., 1] / (h * w)
  centres = (found.boxes[..., :2] + found.boxes[..., 2:]) / 2
  n = valid.shape[0]
  speed = np.zeros(valid.shape, np.float32)
  for t in range(1, n):  # nearest centre of the previous frame; k is small (max_boxes)
    now, before = valid[t], valid[t - 1]
    if now.any() and before.any():
      dist = np.linalg.norm(centres[t][now][:, None] - centres[t - 1][before][None], axis=-1)
      speed[t][now] = dist.min(axis=1)
  count = valid.sum(-1)
  mean_speed = np.where(count > 0, speed.sum(-1) / np.maximum(count, 1), 0.0)
  return np.stack(
    [
      count,
      area.sum(-1),
      area.max(-1),
      size[..., 1].max(-1) / h,
      size[..., 0].max(-1) / w,
      np.where(valid, found.scores, 0.0).max(-1),
      speed.max(-1),
      mean_speed,
    ],
    axis=-1,
  ).astype(np.float32)


def motion_features(frames: np.ndarray, box_source: Callable[..., boxes_lib.Boxes]) -> np.ndarray:
  """``FEATURE_NAMES`` for every frame of clips ``[b, n, h, w, c]`` in [0, 1] -> ``[b, n, 22]``."""
  frames = np.asarray(frames, np.float32)
  if frames.ndim != 5:
    raise ValueError(f"expected clips [batch, time, h, w, c], got shape {frames.shape}")
  gray = to_gray(frames)
  background = np.abs(gray - np.median(gray, axis=1, keepdims=True))
  boxes = np.stack([box_statistics(box_source(clip), gray.shape[2:]) for clip in frames])
  return np.concatenate(
    [pixel_statistics(frame_differences(gray)), pixel_statistics(background), boxes], axis=-1
  ).astype(np.float32)


# --------------------------------------------------------------------------------------
# Logistic regression.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogisticRegression:
  """``p = sigmoid(((x - mean) / scale) @ weights + bias)``."""

  mean: np.ndarray
  scale: np.ndarray
  weights: np.ndarray
  bias: float

  def logits(self, x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weights + self.bias

  def probabilities(self, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-self.logits(x)))


def fit_logistic(
  x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, balanced: bool = True, iterations: int = 50
) -> LogisticRegression:
  """Weighted L2-penalised logistic regression by Newton's method (``x [m, f]``, ``y [m]``
  in {0, 1}). ``balanced``: example weights ``n / (2 n_y)`` (the classifiers' class
  weights); the penalty ``l2/2 |weights|^2`` (not the bias) is on the mean loss."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ValueError(f"expected x [m, f] and y [m], got {x.shape} and {y.shape}")
  if not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
    raise ValueError("y must hold both labels 0 and 1")
  mean = x.mean(0)
  scale = x.std(0)
  scale = np.where(scale > 0, scale, 1.0)
  z = np.concatenate([(x - mean) / scale, np.ones((x.shape[0], 1))], axis=1)
  sample = np.ones_like(y)
  if balanced:
    counts = np.array([np.sum(y == 0), np.sum(y == 1)])
    sample = (y.size / (2.0 * counts))[y.astype(int)]
  sample = sample / sample.sum()
  penalty = np.full(z.shape[1], l2)
  penalty[-1] = 0.0
  theta = np.zeros(z.shape[1])
  for _ in range(iterations):
    p = 1.0 / (1.0 + np.exp(-(z @ theta)))
    grad = z.T @ (sample * (p - y)) + penalty * theta
    hess = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-10 * np.eye(z.shape[1])
    step = np.linalg.solve(hess, grad)
    theta -= step
    if np.max(np.abs(step)) < 1e-8:
      break
  return LogisticRegression(mean=mean, scale=scale, weights=theta[:-1], bias=float(theta[-1]))


# --------------------------------------------------------------------------------------
# The control on a split's clips (``evaluation.score_clips`` outputs).
# --------------------------------------------------------------------------------------


def feature_step(box_source: Callable[..., boxes_lib.Boxes]) -> Callable[[Mapping[str, Any]], dict[str, np.ndarray]]:
  """A ``evaluation.score_clips`` step: ``motion_features`` of a batch's clips, on the host."""

  def step(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {"features": motion_features(jax.device_get(batch["frames"]), box_source)}

  return step


def labelled_frames(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """``(features [m, f], targets [m])`` of every sampled frame with a known target (the
  classifiers' rule, ``task.frame_targets``: an unknown frame label takes the clip label)."""
  targets = np.where(arrays["frame_labels"] >= 0, arrays["frame_labels"], arrays["label"][:, None])
  known = targets >= 0
  return arrays["features"][known], targets[known]


def logistic_control(
  name: str,
  train: Mapping[str, np.ndarray],
  test: Mapping[str, np.ndarray],
  feature_names: Sequence[str],
  *,
  l2: float = 1e-2,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Fits the regression on the training clips' frames and scores the test clips.

  ``train``/``test``: ``evaluation.score_clips`` outputs of a feature step (``features [B, N,
  f]`` with the labels and indices). Returns the test arrays with ``frame_probs [B, N]``
  and ``clip_probs [B]`` in place of the features (what ``task.report`` evaluates), and
  a summary of the fit (weights by feature name).
  """
  x, y = labelled_frames(train)
  model = fit_logistic(x, y, l2=l2)
  arrays = {k: v for k, v in test.items() if k != "features"}
  frame_probs = model.probabilities(test["features"]).astype(np.float32)
  arrays.update(frame_probs=frame_probs, clip_probs=frame_probs.mean(axis=1))
  fit = {
    "name": name,
    "train_frames": int(y.size),
    "train_anomalous": int(y.sum()),
    "bias": model.bias,
    "weights": {n: float(v) for n, v in zip(feature_names, model.weights)},
  }
  return arrays, fit


# --------------------------------------------------------------------------------------
# The prediction network's scores as features.
# --------------------------------------------------------------------------------------

# Columns of the prediction network's ``scores.csv`` (``vad_jax/dual_stream/evaluation.py``):
# its per-frame statistics before any per-video normalisation.
PREDICTION_FEATURES = (
  "psnr",
  "spatial_psnr",
  "temporal_psnr",
  "block_psnr",
  "spatial_block_psnr",
  "temporal_block_psnr",
  "spatial_distance",
  "temporal_distance",
)


def read_prediction_scores(path: str | os.PathLike) -> dict[str, dict[int, np.ndarray]]:
  """``{video: {frame: PREDICTION_FEATURES values}}`` from a ``scores.csv`` written by
  ``python -m vad_jax.evaluate`` for the prediction network."""
  table: dict[str, dict[int, np.ndarray]] = {}
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    missing = [c for c in ("video", "frame", *PREDICTION_FEATURES) if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(f"{path} lacks the columns {missing} of the prediction network's scores.csv")
    for row in reader:
      values = np.asarray([float(row[c]) for c in PREDICTION_FEATURES], np.float32)
      table.setdefault(row["video"], {})[int(row["frame"])] = values
  return table


def lookup_step(
  table: Mapping[str, Mapping[int, np.ndarray]], video_names: Sequence[str]
) -> Callable[[Mapping[str, Any]], dict[str, np.ndarray]]:
  """A ``evaluation.score_clips`` step: the scores of each sampled frame looked up by video
  name and frame index. A frame without a score (the prediction network scores a frame
  only once it has ``T`` predecessors) takes the mean of its video's scores."""
  means = {v: np.mean(list(frames.values()), axis=0) for v, frames in table.items() if frames}

  def step(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    video_index, frame_index = jax.device_get((batch["video_index"], batch["frame_index"]))
    out = np.zeros((*frame_index.shape, len(PREDICTION_FEATURES)), np.float32)
    for i, v in enumerate(video_index):
      if v < 0:
        continue  # a padding example
      name = video_names[int(v)]
      if name not in table:
        raise ValueError(f"the prediction scores have no frame of video {name!r}")
      for j, f in enumerate(frame_index[i]):
        out[i, j] = table[name].get(int(f), means[name])
    return {"features": out}

  return step


# --------------------------------------------------------------------------------------
# The controls of a config, evaluated like a classifier.
# --------------------------------------------------------------------------------------


def for_config(config: ml_collections.ConfigDict) -> dict[str, Callable[..., dict[str, Any]]]:
  """Simple controls on the config's clips and frames (this module), each called as
  ``control(config, mesh, eval_dir=None)`` and evaluated like a classifier: always the
  motion-energy regression; the regression on the prediction network's scores when
  ``prediction_scores`` names their folder."""
  found = {"motion_energy": motion_energy_control}
  if config.prediction_scores:
    found["prediction_score"] = prediction_score_control
  return found


def _control(config, mesh, eval_dir, name: str, feature_names, step_for_split) -> dict[str, Any]:
  """Fits the logistic regression ``name`` on the features that ``step_for_split(split,
  split_names)`` gives for the training split's clips, evaluates it on the evaluation
  split by ``report`` (as ``evaluate`` does a classifier) and adds the fit under
  ``control``. The features are computed on the host: one process only."""
  train_split = inputs.open_split(config, train=True)
  train = evaluation.score_clips(
    config, mesh, train_split, step_for_split(train_split, inputs.split_names(config, train=True))
  )
  split = inputs.open_split(config, train=False)
  test = evaluation.score_clips(config, mesh, split, step_for_split(split, inputs.split_names(config, train=False)))
  arrays, fit = logistic_control(name, train, test, feature_names)
  results = evaluation.report(config, arrays, split, eval_dir)
  if eval_dir is not None and jax.process_index() == 0:
    (pathlib.Path(eval_dir) / "control.json").write_text(json.dumps(fit, indent=2) + "\n")
  return {**results, "control": fit}


def motion_energy_control(config, mesh, eval_dir: Optional[pathlib.Path] = None) -> dict[str, Any]:
  """Logistic regression on per-frame motion statistics and motion boxes (the config's
  box settings, or the defaults for a model without boxes)."""
  source = boxes_lib.make_box_source(config) if "boxes" in config else boxes_lib.MotionBoxSource()
  step = feature_step(source)
  return _control(config, mesh, eval_dir, "motion_energy", FEATURE_NAMES, lambda split, name: step)


def prediction_score_control(config, mesh, eval_dir: Optional[pathlib.Path] = None) -> dict[str, Any]:
  """Logistic regression on the prediction network's per-frame statistics, read from
  ``<prediction_scores>/<split>/scores.csv`` for every split the videos come from
  (``split_names``; its evaluation of each split: ``python -m vad_jax.evaluate --split
  SPLIT --output <prediction_scores>/SPLIT``)."""
  folder = pathlib.Path(config.prediction_scores)

  def step_for_split(split: sources.VideoSplit, names: str):
    table = {}
    for name in names.split("+"):
      table.update(read_prediction_scores(folder / name / "scores.csv"))
    return lookup_step(table, [str(v["name"]) for v in split.videos])

  return _control(config, mesh, eval_dir, "prediction_score", PREDICTION_FEATURES, step_for_split)
