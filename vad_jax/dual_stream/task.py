"""The dual-stream prediction task: the functions ``vad_jax.tasks.Task`` names.

The network (``network.DualStreamNet``) sees clips of ``model.sequence_length`` frames
in [-1, 1] from normal videos and predicts the last frame; the loss is Eq. (13)
(``loss.dual_stream_loss``). Memory items and BatchNorm statistics are mutable
collections updated in the training step over the global batch. Evaluation follows
the literature's protocol (``evaluation``); ``detect`` scores each frame with its
``T - 1`` predecessors, normalised over the whole video (as in evaluation) or causally
(``normalisation``), or with the calibrated deployment score (``calibration.py``).
"""

import functools
import pathlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vad_jax import detection
from vad_jax.data import indexing, input_pipeline, loaders, preprocessing, sources
from vad_jax.data import prepare as data_prep
from vad_jax.dual_stream import calibration as calibration_lib
from vad_jax.dual_stream import evaluation, scoring, validation
from vad_jax.dual_stream.loss import dual_stream_loss
from vad_jax.dual_stream.network import DualStreamNet

Array = Any
MUTABLE = ("batch_stats", "memory")
DEFAULT_THRESHOLD = 0.6  # alarm threshold of ``detect`` on the normalised fused score


def prepare(config: ml_collections.ConfigDict) -> None:
  """Prepares the configured TFDS dataset if needed (``data.prepare``)."""
  data_prep.ensure_prepared(config.data)


def check_config(config: ml_collections.ConfigDict) -> None:
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


def build_model(config: ml_collections.ConfigDict) -> DualStreamNet:
  """The network of ``config.model`` with the loss margins of ``config.loss``."""
  m = config.model
  return DualStreamNet(
    widths=tuple(m.widths),
    num_items=m.num_items,
    spatial_inputs=m.spatial_inputs or None,
    fusion=m.fusion,
    update_memory_at_test=m.update_memory_at_test,
    use_rtsm=m.use_rtsm,
    use_rcam=m.use_rcam,
    use_memory=m.use_memory,
    skip_query=m.skip_query,
    fold_fraction=m.fold_fraction,
    circular_shift=m.circular_shift,
    attention_reduction=m.attention_reduction,
    margin_a=config.loss.margin_a,
    margin_b=config.loss.margin_b,
    hinge=config.loss.hinge,
    negative_slope=m.negative_slope,
    dtype=jnp.dtype(m.dtype),
    conv_impl=m.get("conv_impl", "auto"),  # configs saved before the field existed compute as auto
  )


def example_batch(config: ml_collections.ConfigDict, batch_size: int) -> tuple[dict[str, np.ndarray], int]:
  """Zero clips ``[B, T, h, w, c]``; each predicts one frame."""
  h, w = config.data.image_size
  frames = np.zeros((batch_size, config.model.sequence_length, h, w, config.data.channels), np.float32)
  return {"frames": frames}, batch_size


def model_inputs(config: ml_collections.ConfigDict, batch: Mapping[str, Array]) -> tuple:
  """Positional model arguments from a batch."""
  del config
  return (batch["frames"],)


def init_variables(model, config: ml_collections.ConfigDict, rng: Array, batch: Mapping[str, Array]) -> dict:
  return model.init(rng, *model_inputs(config, batch), train=False)


def load_pretrained(state, config: ml_collections.ConfigDict):
  """The prediction network trains from scratch (as in the paper)."""
  del config
  return state


def train_iterator(config: ml_collections.ConfigDict, mesh) -> tuple[Iterator[dict[str, Array]], int]:
  """Shuffled clips of the training split; the count of distinct training clips."""
  split = input_pipeline.open_split(config.data, config.data.train_split)
  split = sources.select_videos(split, config.calibration.videos, exclude=True)  # held out for calibration
  num_clips = len(indexing.ClipIndex.from_videos(split.videos, config.model.sequence_length, config.data.frame_stride))
  if num_clips <= 0:
    raise ValueError(
      f"the training split has no clip of model.sequence_length frames "
      f"({config.model.sequence_length} frames, split {config.data.train_split!r} of "
      f"{config.data.name})"
    )
  return input_pipeline.create_train_iterator(config, mesh, split=split), num_clips


def train_step(
  state, batch: Mapping[str, Array], *, model, config: ml_collections.ConfigDict
) -> tuple[Any, dict[str, Array]]:
  """One optimisation step on ``batch["frames"]``; returns the new state and loss terms."""
  loss_config = config.loss

  def loss_fn(params):
    (_, aux), new_vars = model.apply(
      {**state.variables, "params": params}, batch["frames"], train=True, mutable=list(MUTABLE)
    )
    loss, terms = dual_stream_loss(aux, loss_config.alpha, loss_config.beta, loss_config.gamma_i, loss_config.gamma_x)
    return loss, (terms, new_vars)

  grads, (terms, new_vars) = jax.grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_vars["batch_stats"], memory=new_vars["memory"])
  return state, {**terms, "grad_norm": optax.global_norm(grads)}


def eval_step(
  state, batch: Mapping[str, Array], *, model, config: ml_collections.ConfigDict, error_maps: bool = False
) -> dict[str, Array]:
  """Per-frame score inputs (PSNR of fused and per-stream frames, memory distances);
  with ``error_maps`` also ``error_map [batch, h, w]``: the fused prediction's squared
  error per pixel (mean over channels, frames scaled to [0, 1] as for the PSNR)."""
  fused, aux = model.apply(state.variables, batch["frames"], train=False)
  stats = scoring.frame_statistics(aux, fused, config.score.memory_level)
  if error_maps:
    stats["error_map"] = jnp.mean(jnp.square((fused - aux["target"]) / 2.0), axis=-1)
  return stats


def model_statistics(
  config: ml_collections.ConfigDict, state, error_maps: bool = False
) -> Callable[[Array], Mapping[str, Array]]:
  """The jitted ``eval_step`` of ``state``'s model as a function of clips."""
  step = jax.jit(functools.partial(eval_step, model=build_model(config), config=config, error_maps=error_maps))
  return lambda frames: step(state, {"frames": frames})


def evaluate(
  config: ml_collections.ConfigDict,
  state,
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
  calibration: Optional[Mapping[str, Any]] = None,
) -> dict[str, float]:
  """Evaluates ``state`` on ``split_name`` (default ``data.eval_split``) with the
  literature's protocol, and the deployment protocol when a ``calibration`` is given;
  writes the outputs to ``eval_dir`` when given (process 0 only)."""
  split = input_pipeline.open_split(config.data, split_name or config.data.eval_split)
  arrays = evaluation.frame_statistics(config, mesh, split, model_statistics(config, state))
  videos = evaluation.per_video_scores(arrays, [v["name"] for v in split.videos], config.score.lam)
  results = evaluation.frame_level_metrics(videos)
  if calibration is not None:  # the deployment protocol beside the literature's
    calibrated = [(v.frames, v.labels, calibration_lib.calibrated_scores(v.stats, calibration)) for v in videos]
    results.update(calibration_lib.deployment_metrics(calibrated, calibration["threshold"]))
  if eval_dir is not None and jax.process_index() == 0:
    evaluation.write_outputs(pathlib.Path(eval_dir), videos, results, curves=config.eval_plots)
    if config.eval_plots and jax.process_count() == 1:
      evaluation.frame_panels(config, build_model(config), state, split, videos, pathlib.Path(eval_dir) / "frames.png")
  return results


def evaluate_ensemble(
  members: Sequence[tuple[str, ml_collections.ConfigDict, Any]],
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
) -> dict[str, Any]:
  """Evaluates networks ``(name, config, state)`` together, as one model whose per-frame
  statistics (PSNRs, memory distances) are the mean of the members', scored with Eq. (16)
  and the literature's protocol like ``evaluate``. The members must see the same frames
  (``vad_jax.ensemble`` checks their data settings); the first member's data settings
  are used. Beside the ensemble's figures: ``members``, each network's own figures, and
  ``first``, those of the ensembles of the first 1, 2, ... members (cost against AUC)."""
  config = members[0][1]
  split = input_pipeline.open_split(config.data, split_name or config.data.eval_split)
  statistics = [model_statistics(member_config, state) for _, member_config, state in members]

  def stats_fn(frames):  # [batch, members] per statistic; stays on the devices until the end
    outputs = [fn(frames) for fn in statistics]
    return {key: jnp.stack([o[key] for o in outputs], axis=1) for key in evaluation.STAT_KEYS}

  arrays = evaluation.frame_statistics(config, mesh, split, stats_fn)
  names = [v["name"] for v in split.videos]

  def scored(chosen: slice) -> tuple[list[evaluation.VideoScores], dict[str, Any]]:
    videos = evaluation.per_video_scores(evaluation.member_mean(arrays, chosen), names, config.score.lam)
    return videos, evaluation.frame_level_metrics(videos)

  videos, results = scored(slice(None))
  results["members"] = [{"name": name, **scored(slice(i, i + 1))[1]} for i, (name, _, _) in enumerate(members)]
  results["first"] = [{"members": k, **scored(slice(0, k))[1]} for k in range(1, len(members) + 1)]
  if eval_dir is not None and jax.process_index() == 0:
    evaluation.write_outputs(pathlib.Path(eval_dir), videos, results, curves=config.eval_plots)
  return results


def metrics(config: ml_collections.ConfigDict) -> dict[str, str]:
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


def scalar_metrics(results: Mapping[str, Any]) -> dict[str, float]:
  return {k: v for k, v in results.items() if isinstance(v, float)}


summary = evaluation.summary


def ablations(config: ml_collections.ConfigDict) -> dict[str, Callable[[ml_collections.ConfigDict], None]]:
  """The paper's component ablations (Table V): without RTSM, RCAM or the memories."""
  del config

  def switch(field: str) -> Callable[[ml_collections.ConfigDict], None]:
    return lambda config: setattr(config.model, field, False)

  return {"no_rtsm": switch("use_rtsm"), "no_rcam": switch("use_rcam"), "no_memory": switch("use_memory")}


def controls(config: ml_collections.ConfigDict) -> dict[str, Callable[..., dict[str, Any]]]:
  """None: the prediction network is compared with its published figures instead."""
  del config
  return {}


def fused_scorer(
  normalisation: str, lam: float, calibration: Optional[Mapping[str, Any]] = None
) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
  """Statistics of consecutive frames -> fused scores: ``calibrated`` (``calibration.py``),
  ``video`` (Eq. 16, min-max over what it is given: a whole video) or ``causal`` (Eq. 16
  with running min/max). Called on a whole video, or batch after batch (the causal
  state carries over), it gives the same scores."""
  if normalisation == "calibrated":
    return lambda stats: calibration_lib.calibrated_scores(stats, calibration)["fused"]
  if normalisation == "video":
    return lambda stats: scoring.fused_score(stats["psnr"], stats["spatial_distance"], stats["temporal_distance"], lam)
  norms = {k: detection.CausalMinMax() for k in ("psnr", "spatial_distance", "temporal_distance")}
  return lambda stats: (
    lam * (1.0 - norms["psnr"](stats["psnr"]))
    + 0.5 * (1.0 - lam) * norms["spatial_distance"](stats["spatial_distance"])
    + 0.5 * (1.0 - lam) * norms["temporal_distance"](stats["temporal_distance"])
  )


def _threshold_and_rule(
  normalisation: str, threshold: Optional[float], calibration: Optional[Mapping[str, Any]]
) -> tuple[float, str]:
  if normalisation == "calibrated":
    threshold = calibration["threshold"] if threshold is None else threshold
    return threshold, f"calibrated score > {threshold:g} (target false-alarm rate {calibration['false_alarm_rate']:g})"
  threshold = DEFAULT_THRESHOLD if threshold is None else threshold
  return threshold, f"{normalisation}-normalised score > {threshold:g}"


def video_statistics(
  config: ml_collections.ConfigDict, state, frames: Iterator[detection.Frame], batch_size: int = 8, name: str = "video"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """``(frame indices, raw statistics per frame)`` of every frame with ``T - 1``
  predecessors; per-batch results stay on the device until the video ends."""
  stats_fn = model_statistics(config, state)
  t = config.model.sequence_length
  parts, targets = [], []
  windows = detection.sliding_windows(
    frames, t, tuple(config.data.image_size), config.data.channels, batch_size, config.data.jpeg_draft
  )
  for clips, index, count in windows:
    parts.append((stats_fn(preprocessing.to_signed_unit(clips)), count))  # stays on the device
    targets.append(index[:count])
  if not parts:
    raise ValueError(f"{name} has fewer than {t} frames: nothing to score")
  host = jax.device_get([p for p, _ in parts])
  stats = {
    k: np.concatenate([h[k][:count] for h, (_, count) in zip(host, parts)]).astype(np.float64)
    for k in evaluation.STAT_KEYS
  }
  return np.concatenate(targets), stats


NORMALISATIONS = ("calibrated", "video", "causal")


def _normalisation(normalisation: Optional[str], calibration: Optional[Mapping[str, Any]], name: str) -> str:
  """The normalisation asked for, checked; ``None`` means ``calibrated`` when a
  calibration is given and is an error otherwise."""
  if normalisation is None:
    if calibration is None:
      raise ValueError(
        f"{name}: this model has no calibration, so its scores cannot be compared with a fixed threshold; fit one "
        f"(python -m vad_jax.calibrate --workdir RUN [--videos NORMAL_VIDEOS]) or ask for the per-video normalised "
        f"score (normalisation 'video', or 'causal' for a stream)"
      )
    return "calibrated"
  if normalisation not in NORMALISATIONS:
    raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
  if normalisation == "calibrated" and calibration is None:
    raise ValueError(f"{name}: normalisation 'calibrated' needs a calibration (python -m vad_jax.calibrate)")
  return normalisation


def score_video(
  config: ml_collections.ConfigDict,
  state,
  frames: Iterator[detection.Frame],
  *,
  batch_size: int = 8,
  threshold: Optional[float] = None,
  normalisation: Optional[str] = None,
  calibration: Optional[Mapping[str, Any]] = None,
  name: str = "video",
) -> detection.Detection:
  """Scores of every frame with ``T - 1`` predecessors, and alarms.

  ``normalisation``: ``calibrated`` (the deployment score of ``calibration.py``; needs
  ``calibration``; alarm above ``1 - false_alarm_rate``), ``video`` (Eq. 16 with
  min-max over the whole video, the literature's protocol; alarm above 0.6) or
  ``causal`` (running min/max of what was seen so far). ``None`` means ``calibrated``
  when a calibration is given and is an error otherwise: an uncalibrated score is used
  only when asked for. ``details`` holds the raw statistics.
  """
  normalisation = _normalisation(normalisation, calibration, name)
  frame_indices, stats = video_statistics(config, state, frames, batch_size, name)
  scores = fused_scorer(normalisation, config.score.lam, calibration)(stats)
  threshold, rule = _threshold_and_rule(normalisation, threshold, calibration)
  return detection.Detection(
    frames=frame_indices,
    scores=scores,
    level=scores,
    alarm=scores > threshold,
    threshold=threshold,
    rule=rule,
    details=stats,
  )


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
  """Every frame's result as soon as its batch is scored (``detection.FrameResult``; the
  first ``T - 1`` frames have no score), for a source that may never end. The scores are
  ``score_video``'s, frame for frame, for the causal normalisations (``calibrated``, the
  default with a calibration, and ``causal``); ``video`` needs the whole video and is
  refused. ``keep_frames`` hands each source frame back with its result; ``error_maps``
  adds the fused prediction's per-pixel error."""
  normalisation = _normalisation(normalisation, calibration, name)
  if normalisation == "video":
    raise ValueError(
      f"{name}: the 'video' normalisation needs the whole video (use score_video), not a stream; use "
      f"'calibrated' or 'causal'"
    )
  stats_fn = model_statistics(config, state, error_maps)
  scorer = fused_scorer(normalisation, config.score.lam, calibration)
  threshold, _ = _threshold_and_rule(normalisation, threshold, calibration)
  keeper = detection.FrameKeeper(frames, keep_frames)
  windows = detection.sliding_windows(
    iter(keeper),
    config.model.sequence_length,
    tuple(config.data.image_size),
    config.data.channels,
    batch_size,
    config.data.jpeg_draft,
  )
  for clips, index, count in windows:
    out = jax.device_get(stats_fn(preprocessing.to_signed_unit(clips)))  # results are wanted now: one transfer
    stats = {k: np.asarray(out[k][:count], np.float64) for k in evaluation.STAT_KEYS}
    scores = scorer(stats)
    position = {int(i): row for row, i in enumerate(index[:count])}
    for i, frame in keeper.release(int(index[count - 1])):
      row = position.get(i)
      if row is None:
        yield detection.FrameResult(i, None, None, False, frame)
        continue
      score = float(scores[row])
      error_map = np.asarray(out["error_map"][row]) if error_maps else None
      yield detection.FrameResult(i, score, score, score > threshold, frame, error_map)
  for i, frame in keeper.release_all():  # a source shorter than T
    yield detection.FrameResult(i, None, None, False, frame)


def calibrate(
  config: ml_collections.ConfigDict, state, mesh, videos: Optional[Mapping[str, Iterator[detection.Frame]]] = None
) -> Optional[dict[str, Any]]:
  """The deployment score's calibration, fitted on normal frames that training did not
  see: the training videos held out by ``calibration.videos``, or ``videos`` (name ->
  frames) when given. ``None`` when there are neither."""
  far = config.calibration.false_alarm_rate
  if videos:
    per_video = [video_statistics(config, state, frames, name=name)[1] for name, frames in videos.items()]
    stats = {k: np.concatenate([s[k] for s in per_video]) for k in evaluation.STAT_KEYS}
    return calibration_lib.fit(stats, config.score.lam, far, list(videos))
  if not config.calibration.videos:
    return None
  split = sources.select_videos(
    input_pipeline.open_split(config.data, config.data.train_split), config.calibration.videos
  )
  arrays = evaluation.frame_statistics(config, mesh, split, model_statistics(config, state))
  return calibration_lib.fit(
    {k: arrays[k] for k in evaluation.STAT_KEYS}, config.score.lam, far, [v["name"] for v in split.videos]
  )


def held_out_frames(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """name -> uint8 ``[n, h, w, c]`` of each training video held out by ``calibration.videos``."""
  split = sources.select_videos(
    input_pipeline.open_split(config.data, config.data.train_split), config.calibration.videos
  )
  settings = input_pipeline.frame_settings(config.data, "signed_unit")
  return {
    str(v["name"]): loaders.read_frames(split.source, np.arange(v["start"], v["start"] + v["length"]), settings)[0]
    for v in split.videos
  }


def validate(config: ml_collections.ConfigDict, state, mesh, speedup: int = 3) -> Optional[dict[str, float]]:
  """The held-out training videos' prediction PSNR and the detection of their sped-up
  regions (``validation.py``); None when training held no video out."""
  del mesh
  if not config.calibration.videos:
    return None
  videos = validation.pseudo_anomaly_videos(held_out_frames(config), config.model.sequence_length, speedup)
  batch_size = config.data.eval_batch_size or config.batch_size
  return validation.validate(videos, model_statistics(config, state), batch_size, config.score.lam)
