"""The supervised classifier task: wires this package into ``vad_jax.tasks``' protocols.

HybridModel-1 and its two baselines (``config.model.name`` in ``hybrid``, ``convlstm``,
``effnet_hog``; ``configs/classifier.py``) train through the same loop as the prediction
network: same mesh, sharding, checkpoints, logging and resumption. What differs lives
in this package: the networks (``networks.py``), which videos train and evaluate and
the clip batches with object boxes (``inputs.py``, ``boxes.py``), the losses
(``loss.py``, ``tcr.py``), the steps (``steps.py``), the classification metrics and the
alarm state (``evaluation.py``), the controls (``controls.py``) and the windows a
detector scores (``detection.py``).
"""

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import ml_collections
from absl import logging

from vad_jax.configs import classifier as classifier_configs
from vad_jax.data import augment as augment_lib
from vad_jax.data import prepare as data_prep
from vad_jax.hybrid import boxes, detection, evaluation, inputs, keras_weights, networks, steps
from vad_jax.hybrid import controls as controls_lib

Array = Any
Config = ml_collections.ConfigDict

# --------------------------------------------------------------------------------------
# Training and evaluation (``tasks.Trainable``).
# --------------------------------------------------------------------------------------


def prepare(config: Config) -> None:
  """Prepares the configured TFDS dataset if needed (``data.prepare``)."""
  data_prep.ensure_prepared(config.data)


def check_config(config: Config) -> None:
  """The configured splits exist in the prepared dataset; augmentation is not combined
  with boxes read from a file (they would no longer match the moved frames)."""
  data = config.data
  if boxes.needs_boxes(config) and config.boxes.source == "file" and augment_lib.from_config(data) is not None:
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


def metrics(config: Config) -> dict[str, str]:
  """``evaluation.headline``'s names (clip, frame and alarm level); all higher-is-better."""
  del config
  return {name: "max" for name in evaluation.HEADLINE_NAMES}


build_model = networks.build
example_batch = inputs.example_batch
model_inputs = inputs.model_inputs


def init_variables(model, config: Config, rng: Array, batch: Mapping[str, Array]) -> dict:
  params_rng, dropout_rng = jax.random.split(rng)
  return model.init({"params": params_rng, "dropout": dropout_rng}, *inputs.model_inputs(config, batch), train=False)


def train_iterator(config: Config, mesh) -> tuple[Iterator[dict[str, Array]], int]:
  """Shuffled labelled clips of the training videos; the number of training clips."""
  iterator, table = inputs.create_iterator(config, mesh, train=True)  # raises if there is no clip
  return iterator, len(table)


train_step = steps.train_step
gradients = steps.gradients
eval_step = steps.eval_step
evaluate = evaluation.evaluate
evaluate_ensemble = evaluation.evaluate_ensemble
scalar_metrics = evaluation.headline
summary = evaluation.summary

# --------------------------------------------------------------------------------------
# Scoring a video (``tasks.Scoring``).
# --------------------------------------------------------------------------------------

video_scorer = detection.ClassifierScorer


def input_description(config: Config) -> dict[str, Any]:
  """Consecutive windows of ``data.clip_frames`` frames in [0, 1]; every frame scored."""
  return {
    "scaling": "[0, 1]: x / 255",
    "window": {"frames": int(config.data.clip_frames), "scores": "every frame of each window"},
  }


# --------------------------------------------------------------------------------------
# Study hooks: pretrained weights, ablations, controls.
# --------------------------------------------------------------------------------------


def load_pretrained(state, config: Config):
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


def ablations(config: Config) -> dict[str, Callable[[Config], None]]:
  """HybridModel-1's ablations (``configs/classifier.py``): no AFFM, BCE instead of TCR,
  one branch only, no object features. The baselines have none."""
  if config.model.name != "hybrid":
    return {}
  return {
    name: functools.partial(classifier_configs.apply_ablation, ablation=name) for name in classifier_configs.ABLATIONS
  }


controls = controls_lib.for_config
