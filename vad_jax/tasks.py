"""Tasks: what the training loop, evaluation, the detector and the study tools run.

A task is a module. What it must provide is split by use, each part a
``typing.Protocol`` that documents it (no base class: a module satisfies a protocol by
having the functions):

* ``Trainable``: what training and evaluation need (``vad_jax.loop``, ``evaluate``);
* ``Scoring``: what scoring a video needs (``vad_jax.detector.Detector``, ``detect``,
  ``export``, ``benchmark``);
* ``StudyHooks``: optional functions of the tasks that have them (pretrained weights,
  the deployment score's calibration, validation on held-out training videos,
  ensembles, ablations, controls). Callers test for them (``hook(task, name)``) instead
  of every task stubbing them.

The loop, the commands and the study tools call these functions and name no model,
loss or metric. ``for_config`` is the only place that maps a config to its task. Two
tasks ship:

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

from vad_jax.dual_stream import task as dual_stream_task
from vad_jax.dual_stream import validation as dual_stream_validation
from vad_jax.hybrid import task as hybrid_task
from vad_jax.video import results, windows

Array = Any
Config = ml_collections.ConfigDict
# ``best_metric_split`` value meaning the training videos held out of training
# (``calibration.videos``), scored by the ``validate`` hook instead of ``evaluate``.
HELD_OUT = dual_stream_validation.SPLIT


class Trainable(Protocol):
  """What training and evaluation need (``state`` is a ``vad_jax.state.TrainState``)."""

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

  def init_variables(
    self, model: flax.linen.Module, config: Config, rng: Array, batch: Mapping[str, Array]
  ) -> dict[str, Any]:
    """The model's variables initialised from ``batch`` (traced under ``jax.jit``)."""

  def train_iterator(self, config: Config, mesh) -> tuple[Iterator[dict[str, Array]], int]:
    """``(endless checkpointable iterator of global training batches, clips in the
    training split)``; a clear ``ValueError`` when the split has no clip."""

  def train_step(
    self, state: Any, batch: Mapping[str, Array], *, model: flax.linen.Module, config: Config
  ) -> tuple[Any, dict[str, Array]]:
    """One optimisation step: the new state and scalar metrics (``loss`` first)."""

  def evaluate(
    self, config: Config, state: Any, mesh, split_name: Optional[str] = None, eval_dir: Optional[Any] = None
  ) -> dict[str, Any]:
    """Evaluates on ``split_name`` (default ``data.eval_split``); writes outputs
    (metrics.json, scores, plots) to ``eval_dir`` when given. A task with the
    ``calibrate`` hook also takes ``calibration=`` and adds the deployment protocol's
    metrics."""

  def scalar_metrics(self, results: Mapping[str, Any]) -> dict[str, float]:
    """Flat float metrics of an evaluation (logs, best-checkpoint selection)."""

  def summary(self, results: Mapping[str, Any]) -> str:
    """A few lines for the terminal."""


class VideoScorer(Protocol):
  """A trained model scoring the frames of one video (``Scoring.video_scorer``)."""

  def score(self, frames: Iterator[windows.Frame], *, batch_size: int, name: str) -> results.Detection:
    """Per-frame anomaly scores and alarms of the uint8 ``[H, W, 3]`` frames of one video."""

  def stream(
    self, frames: Iterator[windows.Frame], *, batch_size: int, keep_frames: bool, error_maps: bool, name: str
  ) -> Iterator[results.FrameResult]:
    """``score``'s results frame by frame as the frames arrive, for sources that may
    never end (causal scores only); ``error_maps`` adds the per-pixel prediction error
    where the model has one."""


class Scoring(Protocol):
  """What scoring a video needs (the detector, ``detect``, ``export``, ``benchmark``)."""

  def build_model(self, config: Config) -> flax.linen.Module:
    """The network of ``config.model``."""

  def example_batch(self, config: Config, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
    """As ``Trainable.example_batch``: the shapes of the model's inputs."""

  def model_inputs(self, config: Config, batch: Mapping[str, Array]) -> tuple:
    """The model's positional arguments taken from a batch."""

  def eval_step(
    self, state: Any, batch: Mapping[str, Array], *, model: flax.linen.Module, config: Config
  ) -> dict[str, Array]:
    """Per-example outputs (the exported program's outputs)."""

  def input_description(self, config: Config) -> dict[str, Any]:
    """How frames become the model's inputs: the frames of a window, which of them are
    scored, the pixel scaling (recorded beside an exported program)."""

  def video_scorer(self, config: Config, state: Any, *, threshold: Optional[float] = None, **options) -> VideoScorer:
    """The model's scorer; ``threshold`` overrides the default alarm threshold. Tasks
    with the ``calibrate`` hook take ``calibration=``, tasks with ``NORMALISATIONS``
    take ``normalisation=`` (one of them)."""


class StudyHooks(Protocol):
  """Optional: a task has those of these that apply to it, and callers test for them."""

  NORMALISATIONS: tuple[str, ...]  # the ways the score can be normalised (``video_scorer``)

  def load_pretrained(self, state: Any, config: Config) -> Any:
    """The state with the pretrained weights named by the config loaded."""

  def calibrate(self, config: Config, state: Any, mesh, videos: Optional[Mapping[str, Iterator]] = None):
    """A JSON-able calibration of the deployment score fitted on normal frames training
    did not see (held-out training videos, or ``videos``), or None when no such frames
    are configured."""

  def check_calibration(self, calibration: Any, path: Optional[Any] = None) -> None:
    """``ValueError`` naming the file ``path`` and the field when a saved calibration
    is of another version or a field is missing or of the wrong type."""

  def calibration_summary(self, calibration: Mapping[str, Any]) -> list[str]:
    """Lines for the person who fitted ``calibration``: its threshold, target, frames,
    a check on frames the fit did not see, and ``warning:`` lines."""

  def calibrated_outputs(
    self, config: Config, calibration: Mapping[str, Any]
  ) -> tuple[Callable[[Mapping[str, Array]], dict[str, Array]], dict[str, Any]]:
    """``(fn, description)`` for exporting with a calibration: ``fn(eval_step's
    outputs)`` adds the calibrated scores and the alarm in JAX (traced into the exported
    program), ``description`` records the calibration beside the program."""

  def validate(self, config: Config, state: Any, mesh, speedup: int = 3) -> Optional[dict[str, float]]:
    """Flat figures on held-out normal training videos to choose a recipe by without
    the test split, or None when no video is held out."""

  def evaluate_ensemble(
    self, members: Sequence[tuple[str, Config, Any]], mesh, split_name: Optional[str] = None, eval_dir=None
  ) -> dict[str, Any]:
    """Evaluates trained models ``(name, config, state)`` as one ensemble (their
    per-frame outputs averaged) like ``evaluate``, adding ``members`` (each model's own
    figures) and ``first`` (the ensembles of the first 1, 2, ... members)."""

  def ablations(self, config: Config) -> Mapping[str, Callable[[Config], None]]:
    """Named switches that turn ``config`` into an ablation variant (in place)."""

  def controls(self, config: Config) -> Mapping[str, Callable[..., dict[str, Any]]]:
    """Named simple baselines without training (``control(config, mesh, eval_dir=None)``
    -> results shaped like ``evaluate``'s), scored on the same clips and metrics."""


TASKS = {
  "dual_stream": dual_stream_task,
  "hybrid": hybrid_task,
  "convlstm": hybrid_task,
  "effnet_hog": hybrid_task,
}


def for_config(config: Config):
  """The task module that trains, evaluates and scores ``config.model.name``."""
  name = config.model.name
  if name not in TASKS:
    raise ValueError(f"unknown model.name {name!r}; expected one of {sorted(TASKS)}")
  return TASKS[name]


def hook(task, name: str) -> Optional[Any]:
  """The task's optional ``StudyHooks`` member ``name``, or None when it has none."""
  if name not in StudyHooks.__annotations__ and not hasattr(StudyHooks, name):
    raise AttributeError(f"{name!r} is not a hook of vad_jax.tasks.StudyHooks")
  return getattr(task, name, None)
