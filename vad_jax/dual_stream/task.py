"""The dual-stream prediction task: wires this package into ``vad_jax.tasks``' protocols.

The network (``network.py``) sees clips of ``model.sequence_length`` frames in [-1, 1]
from normal videos and predicts the last frame; the loss is Eq. (13) (``loss.py``), the
steps are in ``steps.py``. Evaluation follows the literature's protocol
(``evaluation.py``), and the deployment protocol with a calibration
(``calibration.py``); the detector scores each frame with its ``T - 1`` predecessors
(``detection.py``). Held-out training videos (``calibration.videos``) fit the
calibration and give the validation figures (``validation.py``).
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Optional

import ml_collections
import numpy as np

from vad_jax.data import indexing, input_pipeline, loaders, sources
from vad_jax.data import prepare as data_prep
from vad_jax.dual_stream import calibration as calibration_lib
from vad_jax.dual_stream import detection, evaluation, exported_scores, network, scoring, steps, validation
from vad_jax.video import windows

Array = Any
Config = ml_collections.ConfigDict

# --------------------------------------------------------------------------------------
# Training and evaluation (``tasks.Trainable``).
# --------------------------------------------------------------------------------------


def prepare(config: Config) -> None:
  """Prepares the configured TFDS dataset if needed (``data.prepare``)."""
  data_prep.ensure_prepared(config.data)


def check_config(config: Config) -> None:
  """The configured splits exist in the prepared dataset."""
  data = config.data
  held_out = config.best_metric_split == validation.SPLIT  # not a TFDS split (see metrics)
  data_prep.check_splits(
    data,
    {
      "data.train_split": data.train_split,
      "data.eval_split": data.eval_split,
      "best_metric_split": "" if held_out else config.best_metric_split,
    },
  )


def metrics(config: Config) -> dict[str, str]:
  """AUCs (higher is better) and EERs (lower is better) of each stream; with
  ``best_metric_split = "held_out"``, the figures of ``validate`` instead."""
  if config.best_metric_split == validation.SPLIT:
    if not config.calibration.videos:  # checked here: the loop asks for these names before touching the workdir
      raise ValueError(
        f"best_metric_split={validation.SPLIT!r} picks checkpoints on training videos held out of training, "
        f"but calibration.videos is empty; hold some out (e.g. --config.calibration.videos=fold:0/8)"
      )
    return validation.metric_modes()
  return {
    f"{stream}_{name}": ("min" if name == "eer" else "max")
    for stream in evaluation.STREAMS
    for name in ("micro_auc", "macro_auc", "eer")
  }


build_model = network.from_config


def example_batch(config: Config, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
  """Zero clips ``[B, T, h, w, c]``; each predicts one frame."""
  h, w = config.data.image_size
  frames = np.zeros((batch_size, config.model.sequence_length, h, w, config.data.channels), np.float32)
  return {"frames": frames}, batch_size


def model_inputs(config: Config, batch: Mapping[str, Array]) -> tuple:
  """Positional model arguments from a batch."""
  del config
  return (batch["frames"],)


def init_variables(model, config: Config, rng: Array, batch: Mapping[str, Array]) -> dict:
  return model.init(rng, *model_inputs(config, batch), train=False)


def train_iterator(config: Config, mesh) -> tuple[Iterator[dict[str, Array]], int]:
  """Shuffled clips of the training split (without the videos held out for
  calibration); the count of distinct training clips."""
  split = input_pipeline.open_split(config.data, config.data.train_split)
  split = sources.select_videos(split, config.calibration.videos, exclude=True)
  num_clips = len(indexing.ClipIndex.from_videos(split.videos, config.model.sequence_length, config.data.frame_stride))
  if num_clips <= 0:
    raise ValueError(
      f"the training split has no clip of model.sequence_length frames "
      f"({config.model.sequence_length} frames, split {config.data.train_split!r} of "
      f"{config.data.name})"
    )
  return input_pipeline.create_train_iterator(config, mesh, split=split), num_clips


train_step = steps.train_step
gradients = steps.gradients
eval_step = steps.eval_step
evaluate = evaluation.evaluate
evaluate_ensemble = evaluation.evaluate_ensemble


def scalar_metrics(results: Mapping[str, Any]) -> dict[str, float]:
  return {k: v for k, v in results.items() if isinstance(v, float)}


summary = evaluation.summary

# --------------------------------------------------------------------------------------
# Scoring a video (``tasks.Scoring``).
# --------------------------------------------------------------------------------------

NORMALISATIONS = detection.NORMALISATIONS
video_scorer = detection.PredictionScorer


def input_description(config: Config) -> dict[str, Any]:
  """Windows of ``T`` frames in [-1, 1]; each scores its last frame."""
  return {
    "scaling": "[-1, 1]: (x - 127.5) / 127.5",
    "window": {"frames": int(config.model.sequence_length), "scores": "the last frame of each window"},
  }


# --------------------------------------------------------------------------------------
# Study hooks: calibration, validation, ablations.
# --------------------------------------------------------------------------------------


def _held_out_split(config: Config) -> sources.VideoSplit:
  """The training videos ``calibration.videos`` holds out of training."""
  split = input_pipeline.open_split(config.data, config.data.train_split)
  return sources.select_videos(split, config.calibration.videos)


def calibrate(
  config: Config, state, mesh, videos: Optional[Mapping[str, Iterator[windows.Frame]]] = None
) -> Optional[dict[str, Any]]:
  """The deployment score's calibration, fitted on normal frames that training did not
  see: the training videos held out by ``calibration.videos``, or ``videos`` (name ->
  frames) when given. ``None`` when there are neither."""
  far = config.calibration.false_alarm_rate
  if videos:
    per_video = [steps.video_statistics(config, state, frames, name=name)[1] for name, frames in videos.items()]
    stats = {k: np.concatenate([s[k] for s in per_video]) for k in scoring.STAT_KEYS}
    video_of_frame = np.repeat(np.arange(len(per_video)), [len(s["psnr"]) for s in per_video])
    return calibration_lib.fit(stats, config.score.lam, far, list(videos), video_of_frame)
  if not config.calibration.videos:
    return None
  split = _held_out_split(config)
  arrays = evaluation.frame_statistics(config, mesh, split, steps.model_statistics(config, state))
  order = np.lexsort((arrays["frame_index"], arrays["video_index"]))  # each video's frames in order
  stats = {k: np.asarray(arrays[k])[order] for k in scoring.STAT_KEYS}
  names = [v["name"] for v in split.videos]
  return calibration_lib.fit(stats, config.score.lam, far, names, np.asarray(arrays["video_index"])[order])


check_calibration = calibration_lib.check
calibration_summary = calibration_lib.summary


# The calibrated score and alarm inside an exported program (``vad_jax.export``).
calibrated_outputs = exported_scores.calibrated_outputs


def held_out_frames(config: Config) -> dict[str, np.ndarray]:
  """name -> uint8 ``[n, h, w, c]`` of each training video held out by ``calibration.videos``."""
  split = _held_out_split(config)
  settings = input_pipeline.frame_settings(config.data, "signed_unit")
  return {
    str(v["name"]): loaders.read_frames(split.source, np.arange(v["start"], v["start"] + v["length"]), settings)[0]
    for v in split.videos
  }


def validate(config: Config, state, mesh, speedup: int = 3) -> Optional[dict[str, float]]:
  """The held-out training videos' prediction PSNR and the detection of their sped-up
  regions (``validation.py``); None when training held no video out."""
  del mesh
  if not config.calibration.videos:
    return None
  videos = validation.pseudo_anomaly_videos(held_out_frames(config), config.model.sequence_length, speedup)
  batch_size = config.data.eval_batch_size or config.batch_size
  return validation.validate(videos, steps.model_statistics(config, state), batch_size, config.score.lam)


def ablations(config: Config) -> dict[str, Callable[[Config], None]]:
  """The paper's component ablations (Table V): without RTSM, RCAM or the memories."""
  del config

  def switch(field: str) -> Callable[[Config], None]:
    return lambda config: setattr(config.model, field, False)

  return {"no_rtsm": switch("use_rtsm"), "no_rcam": switch("use_rcam"), "no_memory": switch("use_memory")}
