"""Tasks: what the training loop, evaluation, detection and the benchmark run.

A task is a module exposing the functions of the ``Task`` protocol below (no base
class: the protocol documents the interface, and a module satisfies it by having the
functions). The loop (``vad_jax.train``), ``vad_jax.evaluate``, ``vad_jax.detect``,
``vad_jax.benchmark``, ``vad_jax.ablations`` and ``vad_jax.ensemble`` call these functions and name no model,
loss or metric. ``for_config`` is the only place that maps a config to its task.

Two tasks ship:

* ``vad_jax.dual_stream.task``: the dual-stream memory-augmented prediction network,
  trained on normal clips and evaluated with the frame-prediction literature's protocol;
* ``vad_jax.hybrid.task``: the supervised classifiers (HybridModel-1 and its ConvLSTM and
  EfficientNetV2-B0+HOG baselines), trained on labelled clips.

Adding a model family means writing one such module and one line in ``TASKS``
(docs/architecture.md).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Protocol

import flax
import ml_collections
import numpy as np

from vad_jax import detection
from vad_jax.dual_stream import task as dual_stream_task
from vad_jax.dual_stream import validation as dual_stream_validation
from vad_jax.hybrid import task as hybrid_task

Array = Any
Config = ml_collections.ConfigDict
# ``best_metric_split`` value meaning the training videos held out of training
# (``calibration.videos``), scored by ``Task.validate`` instead of ``Task.evaluate``.
HELD_OUT = dual_stream_validation.SPLIT


class Task(Protocol):
  """The functions a task module provides (``state`` is a ``vad_jax.state.TrainState``)."""

  def prepare(self, config: Config) -> None:
    """Makes the task's data ready (TFDS preparation); called before anything else."""

  def check_config(self, config: Config) -> None:
    """``ValueError`` naming the valid choices for a setting that would fail later
    (e.g. a split the dataset lacks); called after ``prepare``, before training."""

  def metrics(self, config: Config) -> dict[str, str]:
    """The names ``scalar_metrics`` returns, each with ``"max"`` or ``"min"`` (which
    way is better), for ``best_metric``."""

  def build_model(self, config: Config) -> flax.linen.Module:
    """The network of ``config.model``."""

  def example_batch(self, config: Config, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
    """A training batch of zeros with the real shapes and dtypes (every key the steps
    read), and the number of frames it scores (for frames/s)."""

  def model_inputs(self, config: Config, batch: Mapping[str, Array]) -> tuple:
    """The model's positional arguments taken from a batch."""

  def init_variables(
    self, model: flax.linen.Module, config: Config, rng: Array, batch: Mapping[str, Array]
  ) -> dict[str, Any]:
    """The model's variables initialised from ``batch`` (traced under ``jax.jit``)."""

  def load_pretrained(self, state: Any, config: Config) -> Any:
    """The state with pretrained weights named by the config loaded (or unchanged)."""

  def train_iterator(self, config: Config, mesh) -> tuple[Iterator[dict[str, Array]], int]:
    """``(endless checkpointable iterator of global training batches, clips in the
    training split)``; a clear ``ValueError`` when the split has no clip."""

  def train_step(
    self, state: Any, batch: Mapping[str, Array], *, model: flax.linen.Module, config: Config
  ) -> tuple[Any, dict[str, Array]]:
    """One optimisation step: the new state and scalar metrics (``loss`` first)."""

  def eval_step(
    self, state: Any, batch: Mapping[str, Array], *, model: flax.linen.Module, config: Config
  ) -> dict[str, Array]:
    """Per-example outputs that the task's evaluation aggregates."""

  def evaluate(
    self,
    config: Config,
    state: Any,
    mesh,
    split_name: Optional[str] = None,
    eval_dir: Optional[Any] = None,
    calibration: Optional[Mapping[str, Any]] = None,
  ) -> dict[str, Any]:
    """Evaluates on ``split_name`` (default ``data.eval_split``); writes outputs
    (metrics.json, scores, plots) to ``eval_dir`` when given; adds the deployment
    protocol's metrics when a ``calibration`` is given."""

  def evaluate_ensemble(
    self,
    members: Sequence[tuple[str, Config, Any]],
    mesh,
    split_name: Optional[str] = None,
    eval_dir: Optional[Any] = None,
  ) -> dict[str, Any]:
    """Evaluates trained models ``(name, config, state)`` as one ensemble (their
    per-frame outputs averaged) like ``evaluate``, adding ``members`` (each model's own
    figures) and ``first`` (the ensembles of the first 1, 2, ... members)."""

  def calibrate(self, config: Config, state: Any, mesh, videos: Optional[Mapping[str, Iterator]] = None):
    """A JSON-able calibration of the deployment score fitted on normal frames training
    did not see (held-out training videos, or ``videos``), or None when the task has
    nothing to fit or no such frames are configured."""

  def validate(self, config: Config, state: Any, mesh, speedup: int = 3) -> Optional[dict[str, float]]:
    """Flat figures on held-out normal training videos that a recipe can be chosen by
    without the test split (the dual-stream network: their prediction PSNR and the
    detection of sped-up regions, ``dual_stream/validation.py``), or None when the task
    has no such validation or no video is held out."""

  def scalar_metrics(self, results: Mapping[str, Any]) -> dict[str, float]:
    """Flat float metrics of an evaluation (logs, best-checkpoint selection)."""

  def summary(self, results: Mapping[str, Any]) -> str:
    """A few lines for the terminal."""

  def ablations(self, config: Config) -> Mapping[str, Callable[[Config], None]]:
    """Named switches that turn ``config`` into an ablation variant (in place)."""

  def controls(self, config: Config) -> Mapping[str, Callable[..., dict[str, Any]]]:
    """Named simple baselines without training (``control(config, mesh, eval_dir=None)``
    -> results shaped like ``evaluate``'s), scored on the same clips and metrics as the
    model, for ``vad_jax.ablations``; empty when the task has none."""

  def score_video(
    self,
    config: Config,
    state: Any,
    frames: Iterator[np.ndarray],
    *,
    batch_size: int,
    threshold: Optional[float],
    normalisation: Optional[str],
    calibration: Optional[Mapping[str, Any]],
    name: str,
  ) -> detection.Detection:
    """Per-frame anomaly scores and alarms for the uint8 ``[H, W, 3]`` frames of one
    video (``detect``)."""

  def stream(
    self,
    config: Config,
    state: Any,
    frames: Iterator[np.ndarray],
    *,
    batch_size: int,
    threshold: Optional[float],
    normalisation: Optional[str],
    calibration: Optional[Mapping[str, Any]],
    keep_frames: bool,
    error_maps: bool,
    name: str,
  ) -> Iterator[detection.FrameResult]:
    """``score_video``'s results frame by frame as the frames arrive, for sources that
    may never end (causal scores only)."""


TASKS: dict[str, Task] = {
  "dual_stream": dual_stream_task,
  "hybrid": hybrid_task,
  "convlstm": hybrid_task,
  "effnet_hog": hybrid_task,
}


def for_config(config: Config) -> Task:
  """The task that trains and evaluates ``config.model.name``."""
  name = config.model.name
  if name not in TASKS:
    raise ValueError(f"unknown model.name {name!r}; expected one of {sorted(TASKS)}")
  return TASKS[name]
