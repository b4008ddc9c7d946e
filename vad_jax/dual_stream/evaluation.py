"""The frame-prediction literature's evaluation protocol (the dual-stream task).

Every test frame with ``T - 1`` predecessors in its video is scored once (the first
``T - 1`` frames of each video have no prediction and are excluded). Per frame the device
computes the PSNR of the fused prediction and of each stream's frame and the memory
distance of each stream; on the host each video's series are min-max normalised and
fused (Eq. 16). All frames of all videos are then pooled for the headline frame-level
micro AUC; the macro AUC (mean of per-video AUCs over videos that contain both classes)
and the EER are reported beside it, for the fused score and each stream (Table IV).
Nothing is smoothed.

Outputs in ``<workdir>/eval/``: ``metrics.json``, ``scores.csv`` (one row per scored
frame), ``roc.png``, ``score_curves/<video>.png`` and ``frames.png``.

When the evaluated split stores pixel masks (``loaders.stored_mask_size``) and
``eval_pixel_metrics`` is on, the device also computes each scored frame's anomaly map,
the fused prediction's squared error per pixel at the model's resolution (mean over
channels, frames in [0, 1]; ``steps.eval_step(..., error_maps=True)``, the detector's
map), and the batches carry the target frames' masks at their stored size. Each batch's
maps are fetched while the next batch runs and added to a
``localisation.LocalisationAccumulator`` (enlarged bilinearly to the masks) over the
fixed grids ``PIXEL_THRESHOLDS`` / ``REGION_THRESHOLDS``, so that memory does not grow
with the number of frames; the results gain the localisation figures (``PIXEL_KEYS``).
``pixel_level_metrics`` computes the same figures from maps and masks held in memory.
"""

import csv
import dataclasses
import json
import pathlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vad_jax import localisation, metric_writers, metrics, plots, sharding
from vad_jax.data import input_pipeline, loaders, preprocessing
from vad_jax.dual_stream import calibration as calibration_lib
from vad_jax.dual_stream import network, scoring, steps

STREAMS = ("fused", "spatial", "temporal")
# Threshold grids of the localisation figures in ``evaluate``: fixed, so that frames are
# accumulated as they arrive. The error maps lie in [0, 1] and most of a frame's errors
# are small: geometric grids resolve them (the pixel grid's steps are 1.4 %; below 1e-6,
# a quarter of a grey level squared, pixels tie).
PIXEL_THRESHOLDS = np.geomspace(1e-6, 1.0, 1024)
REGION_THRESHOLDS = np.geomspace(1e-4, 1.0, 64)
PIXEL_KEYS = (
  "pixel_auroc",
  "pixel_criterion_auc",
  "pixel_criterion_eer",
  "rbdc",
  "tbdc",
  "rbdc_005",
  "tbdc_005",
  "mask_frames",
  "anomalous_mask_frames",
  "gt_regions",
  "gt_tracks",
)


@dataclasses.dataclass
class VideoScores:
  """Scores of one test video, frames in order."""

  index: int
  name: str
  frames: np.ndarray  # frame index of each scored frame
  labels: np.ndarray  # 0/1 (-1 where undefined)
  stats: dict[str, np.ndarray]  # scoring.STAT_KEYS, raw per-frame values
  scores: dict[str, np.ndarray]  # STREAMS, per-video normalised anomaly scores


def per_video_scores(arrays: Mapping[str, np.ndarray], video_names: Sequence[str], lam: float) -> list[VideoScores]:
  """Groups frame statistics by video and computes the normalised scores of Eq. (16)."""
  video_index, frame_index = arrays["video_index"].astype(int), arrays["frame_index"].astype(int)
  videos = []
  for v in np.unique(video_index):
    rows = np.flatnonzero(video_index == v)
    rows = rows[np.argsort(frame_index[rows], kind="stable")]
    frames = frame_index[rows]
    if np.any(np.diff(frames) == 0):
      dup = frames[np.flatnonzero(np.diff(frames) == 0)[0]]
      raise ValueError(f"frame {dup} of video {video_names[v]} was scored more than once")
    stats = {key: arrays[key][rows].astype(np.float64) for key in scoring.STAT_KEYS}
    scores = {
      "fused": scoring.fused_score(stats["psnr"], stats["spatial_distance"], stats["temporal_distance"], lam),
      "spatial": scoring.stream_score(stats["spatial_psnr"], stats["spatial_distance"], lam),
      "temporal": scoring.stream_score(stats["temporal_psnr"], stats["temporal_distance"], lam),
    }
    videos.append(VideoScores(int(v), str(video_names[v]), frames, arrays["label"][rows].astype(int), stats, scores))
  return videos


def member_mean(arrays: Mapping[str, np.ndarray], members: slice) -> dict[str, np.ndarray]:
  """An ensemble's frame statistics: each ``scoring.STAT_KEYS`` column of ``arrays`` holds
  ``[frames, members]``; its mean over ``members`` (PSNRs averaged in dB, distances as
  they are) is what the ensemble scores with Eq. (16). The other columns pass through."""
  return {key: value[:, members].mean(axis=1) if key in scoring.STAT_KEYS else value for key, value in arrays.items()}


def frame_level_metrics(videos: Sequence[VideoScores]) -> dict[str, float]:
  """Micro AUC (pooled), macro AUC (mean per video) and EER for each stream."""
  labels = np.concatenate([v.labels for v in videos])
  known = labels >= 0
  result = {"frames": int(known.sum()), "anomalous_frames": int((labels == 1).sum()), "videos": len(videos)}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
    for stream in STREAMS:
      scores = np.concatenate([v.scores[stream] for v in videos])
      result[f"{stream}_micro_auc"] = metrics.roc_auc(labels[known], scores[known])
      result[f"{stream}_eer"] = metrics.equal_error_rate(labels[known], scores[known])[0]
      per_video = [
        metrics.roc_auc(v.labels[v.labels >= 0], v.scores[stream][v.labels >= 0])
        for v in videos
        if len(np.unique(v.labels[v.labels >= 0])) == 2
      ]
      result[f"{stream}_macro_auc"] = float(np.mean(per_video)) if per_video else float("nan")
  result["macro_auc_videos"] = sum(len(np.unique(v.labels[v.labels >= 0])) == 2 for v in videos)
  return result


def pixel_level_metrics(
  score_maps: Any,
  masks: Any,
  has_mask: Any,
  video_index: Any,
  *,
  thresholds: Any = None,
  region_thresholds: Any = None,
  num_thresholds: int = 1024,
  num_region_thresholds: int = 64,
) -> dict[str, float]:
  """Localisation metrics of per-frame anomaly maps against pixel masks
  (``localisation.LocalisationAccumulator``; its docstring states the definitions).

  Args:
    score_maps: ``[N, h, w]`` per-frame anomaly maps (larger = more anomalous), any
      resolution: each is enlarged bilinearly to its mask's.
    masks: ``[N, H, W]`` pixel masks (nonzero anomalous), e.g. the evaluation batches'
      ``masks`` (``input_pipeline.create_eval_iterator(..., mask_size=...)``).
    has_mask: ``[N]`` bool; frames without a mask are left out.
    video_index: ``[N]`` the frames' videos; frames in order within each video (as the
      evaluation pipeline yields them), so that regions link into tracks.
    thresholds: the pixel grid; default ``num_thresholds`` points evenly from the lowest
      to the highest score of the masked frames.
    region_thresholds: the region grid; default ``num_region_thresholds`` quantiles of
      the masked frames' maximum scores, where 0 to 1 false-positive regions per frame
      lie.

  Returns:
    ``pixel_auroc``, ``pixel_criterion_auc``, ``pixel_criterion_eer``, ``rbdc``,
    ``tbdc``, ``rbdc_005``, ``tbdc_005`` and the counts ``mask_frames``,
    ``anomalous_mask_frames``, ``gt_regions``, ``gt_tracks``; ``{}`` when no frame has a
    mask.
  """
  has_mask = np.asarray(has_mask, dtype=bool).reshape(-1)
  rows = np.flatnonzero(has_mask)
  if not rows.size:
    return {}
  maps = [np.asarray(score_maps[i], dtype=np.float32) for i in rows]
  if thresholds is None:
    low, high = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
    thresholds = np.unique(np.linspace(low, high, num_thresholds))
  if region_thresholds is None:
    region_thresholds = np.unique(np.quantile([float(m.max()) for m in maps], np.linspace(0, 1, num_region_thresholds)))
  accumulator = localisation.LocalisationAccumulator(thresholds, region_thresholds)
  for score_map, i in zip(maps, rows):
    accumulator.add(score_map, masks[i], video=int(video_index[i]))
  return accumulator.result()


class PixelMaps:
  """The localisation figures of ``evaluate``, accumulated batch by batch: per frame with
  a mask, its anomaly map against the mask (``[mask_size]``, the split's stored size)."""

  def __init__(self, mask_size: tuple[int, int]):
    self.mask_size = tuple(int(s) for s in mask_size)
    self.accumulator = localisation.LocalisationAccumulator(PIXEL_THRESHOLDS, REGION_THRESHOLDS)

  @classmethod
  def for_split(cls, config, split) -> Optional["PixelMaps"]:
    """None when ``eval_pixel_metrics`` is off or the split stores no masks."""
    if not config.eval_pixel_metrics:
      return None
    size = loaders.stored_mask_size(split)
    return None if size is None else cls(size)

  def add(self, batch: Mapping[str, np.ndarray]) -> None:
    """Adds a host batch of ``error_map``, ``masks``, ``has_mask`` and ``video_index``
    (padding dropped; frames in order)."""
    for i in np.flatnonzero(batch["has_mask"]):
      self.accumulator.add(batch["error_map"][i], batch["masks"][i], video=int(batch["video_index"][i]))

  def result(self) -> dict[str, float]:
    """``PIXEL_KEYS`` as ``pixel_level_metrics`` gives them; ``{}`` when no scored frame
    has a mask. An undefined figure is nan (``summary`` prints it as such)."""
    if not self.accumulator.frames.sum():
      return {}
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
      return self.accumulator.result()


def write_outputs(
  eval_dir: pathlib.Path, videos: Sequence[VideoScores], results: Mapping[str, float], curves: bool = True
) -> None:
  eval_dir.mkdir(parents=True, exist_ok=True)
  (eval_dir / "metrics.json").write_text(json.dumps(dict(results), indent=2, sort_keys=True) + "\n")
  with open(eval_dir / "scores.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["video", "frame", "label", *scoring.STAT_KEYS, *(f"score_{s}" for s in STREAMS)])
    for v in videos:
      for i in range(len(v.frames)):
        writer.writerow(
          [
            v.name,
            int(v.frames[i]),
            int(v.labels[i]),
            *(f"{v.stats[k][i]:.6g}" for k in scoring.STAT_KEYS),
            *(f"{v.scores[s][i]:.6g}" for s in STREAMS),
          ]
        )
  labels = np.concatenate([v.labels for v in videos])
  known = labels >= 0
  if len(np.unique(labels[known])) == 2:
    plots.roc_curves(
      eval_dir / "roc.png", labels[known], {s: np.concatenate([v.scores[s] for v in videos])[known] for s in STREAMS}
    )
  if curves:
    (eval_dir / "score_curves").mkdir(exist_ok=True)
    for v in videos:
      plots.score_curve(eval_dir / "score_curves" / f"{v.name}.png", v.name, v.frames, v.scores["fused"], v.labels)


def choose_frames(videos: Sequence[VideoScores], count: int = 2) -> list[tuple[int, int, str]]:
  """Frames for the Fig. 7 panels: the most anomalous-scored anomalous frames and the
  least anomalous-scored normal frame, as ``(video_index, frame_index, title)``."""
  rows = [
    (v.scores["fused"][i], v.index, int(v.frames[i]), v.name, int(v.labels[i]))
    for v in videos
    for i in range(len(v.frames))
  ]
  anomalous = sorted((r for r in rows if r[4] == 1), reverse=True)[:count]
  normal = sorted(r for r in rows if r[4] == 0)[:1]
  return [(r[1], r[2], f"{'anomalous' if r[4] else 'normal'} {r[3]}#{r[2]}") for r in anomalous + normal]


def frame_statistics(
  config, mesh, split, stats_fn: Callable[[Any], Mapping[str, Any]], maps: Optional[PixelMaps] = None
) -> dict[str, np.ndarray]:
  """Scores every scorable frame of ``split``; host arrays without padding.

  ``stats_fn`` maps a global batch of clips ``[B, T, h, w, c]`` to per-example
  ``scoring.STAT_KEYS`` arrays (``steps.model_statistics`` for a trained state). Per-batch results stay
  on the device and are fetched once at the end (gathered from all hosts), so the loop
  never waits on a transfer. With ``maps``, ``stats_fn`` also returns ``error_map``
  ``[B, h, w]`` and the batches carry the masks: each batch's maps and masks are fetched
  once the next batch is dispatched and added to ``maps``; they are not returned.
  """
  keys = ("video_index", "frame_index", "label", "valid")
  total = input_pipeline.eval_num_batches(
    split,
    sequence_length=config.model.sequence_length,
    global_batch_size=config.data.eval_batch_size or config.batch_size,
    num_devices=mesh.devices.size,
    frame_stride=config.data.frame_stride,
  )
  mask_size = None if maps is None else maps.mask_size
  batches = metric_writers.counting(
    input_pipeline.create_eval_iterator(config, mesh, split=split, mask_size=mask_size), "evaluation", total
  )
  pending = []  # the previous batch's maps, fetched once the next batch is dispatched

  def step(batch):
    stats = dict(stats_fn(batch["frames"]))
    if maps is not None:
      if pending:
        maps.add(sharding.fetch([pending.pop()]))
      map_keys = ("masks", "has_mask", "video_index", "valid")
      pending.append({"error_map": stats.pop("error_map"), **{k: batch[k] for k in map_keys}})
    return {**stats, **{k: batch[k] for k in keys}}

  outputs = sharding.dispatch_in_order(step, batches)
  if pending:
    maps.add(sharding.fetch(pending))
  if not outputs:
    raise ValueError(
      f"the evaluation split of {config.data.name} has no frame with {config.model.sequence_length - 1} predecessors"
    )
  return sharding.fetch(outputs)


def frame_panels(config, model, state, split, videos: Sequence[VideoScores], path: pathlib.Path) -> None:
  """Fig. 7: input, prediction error and attention map for a few chosen frames."""
  chosen = choose_frames(videos)
  if not chosen:
    return
  t, stride = config.model.sequence_length, config.data.frame_stride
  records = np.stack([split.videos[v]["start"] + f - (t - 1 - np.arange(t)) * stride for v, f, _ in chosen])
  settings = input_pipeline.frame_settings(config.data, "signed_unit")
  pixels, _ = loaders.read_frames(split.source, records, settings)
  clips = preprocessing.to_signed_unit(pixels)
  fused, aux = jax.jit(lambda v, x: model.apply(v, x, train=False))(state.variables, clips)
  plots.frame_panels(
    path,
    [title for *_, title in chosen],
    np.asarray(aux["target"]),
    np.asarray(fused),
    np.asarray(aux["spatial"]["attention_map"]),
  )


def evaluate(
  config,
  state,
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
  calibration: Optional[Mapping[str, Any]] = None,
) -> dict[str, float]:
  """Evaluates ``state`` on ``split_name`` (default ``data.eval_split``) with the
  literature's protocol, and the deployment protocol when a ``calibration`` is given;
  writes the outputs to ``eval_dir`` when given (process 0 only). With masks in the split
  (and ``eval_pixel_metrics``), also the localisation figures ``PIXEL_KEYS``."""
  split = input_pipeline.open_split(config.data, split_name or config.data.eval_split)
  maps = PixelMaps.for_split(config, split)  # localisation figures where the split has masks
  stats_fn = steps.model_statistics(config, state, error_maps=maps is not None)
  arrays = frame_statistics(config, mesh, split, stats_fn, maps)
  videos = per_video_scores(arrays, [v["name"] for v in split.videos], config.score.lam)
  results = frame_level_metrics(videos)
  if maps is not None:
    results.update(maps.result())
  if calibration is not None:  # the deployment protocol beside the literature's
    calibrated = [(v.frames, v.labels, calibration_lib.calibrated_scores(v.stats, calibration)) for v in videos]
    results.update(calibration_lib.deployment_metrics(calibrated, calibration["threshold"]))
    results["false_alarm_target"] = float(calibration["false_alarm_rate"])
  if eval_dir is not None and jax.process_index() == 0:
    write_outputs(pathlib.Path(eval_dir), videos, results, curves=config.eval_plots)
    if config.eval_plots and jax.process_count() == 1:
      frame_panels(config, network.from_config(config), state, split, videos, pathlib.Path(eval_dir) / "frames.png")
  return results


def evaluate_ensemble(
  members: Sequence[tuple[str, Any, Any]],
  mesh,
  split_name: Optional[str] = None,
  eval_dir: Optional[pathlib.Path] = None,
) -> dict[str, Any]:
  """Evaluates networks ``(name, config, state)`` together, as one model whose per-frame
  statistics (PSNRs, memory distances) are the mean of the members', scored with Eq. (16)
  and the literature's protocol like ``evaluate``. The members must see the same frames
  (``vad_jax.studies.ensemble`` checks their data settings); the first member's data
  settings are used. Beside the ensemble's figures: ``members``, each network's own
  figures, and ``first``, those of the ensembles of the first 1, 2, ... members (cost
  against AUC)."""
  config = members[0][1]
  split = input_pipeline.open_split(config.data, split_name or config.data.eval_split)
  statistics = [steps.model_statistics(member_config, state) for _, member_config, state in members]

  def stats_fn(frames):  # [batch, members] per statistic; stays on the devices until the end
    outputs = [fn(frames) for fn in statistics]
    return {key: jnp.stack([o[key] for o in outputs], axis=1) for key in scoring.STAT_KEYS}

  arrays = frame_statistics(config, mesh, split, stats_fn)
  names = [v["name"] for v in split.videos]

  def scored(chosen: slice) -> tuple[list[VideoScores], dict[str, Any]]:
    videos = per_video_scores(member_mean(arrays, chosen), names, config.score.lam)
    return videos, frame_level_metrics(videos)

  videos, results = scored(slice(None))
  results["members"] = [{"name": name, **scored(slice(i, i + 1))[1]} for i, (name, _, _) in enumerate(members)]
  results["first"] = [{"members": k, **scored(slice(0, k))[1]} for k in range(1, len(members) + 1)]
  if eval_dir is not None and jax.process_index() == 0:
    write_outputs(pathlib.Path(eval_dir), videos, results, curves=config.eval_plots)
  return results


def summary(results: Mapping[str, float]) -> str:
  """Terminal lines: frame counts; per stream the literature's figures (per-video min-max,
  Eq. 16: micro AUC, macro AUC, EER), a ``nan`` among them followed by a line saying why;
  then the localisation figures where the split had masks; then, for a calibrated model,
  the deployment protocol's beside them (no per-video step, alarms at the calibrated
  target)."""
  lines = [
    f"frame-level evaluation: {results['frames']} frames ({results['anomalous_frames']} anomalous) "
    f"in {results['videos']} videos; literature protocol (per-video min-max, Eq. 16):"
  ]
  for stream in STREAMS:
    lines.append(
      f"  {stream:<8} micro AUC {results[f'{stream}_micro_auc']:.4f}   "
      f"macro AUC {results[f'{stream}_macro_auc']:.4f}   EER {results[f'{stream}_eer']:.4f}"
    )
  reason = metrics.undefined_auc_reason(results["frames"], results["anomalous_frames"])
  if reason:
    lines.append(f"  micro AUC and EER nan: {reason}")
  if results.get("macro_auc_videos") == 0:
    lines.append("  macro AUC nan: no video has both normal and anomalous labelled frames")
  if "pixel_auroc" in results:
    lines.append(
      f"pixel-level localisation: fused prediction error against the masks of {results['mask_frames']} frames "
      f"({results['anomalous_mask_frames']} anomalous; {results['gt_regions']} regions in "
      f"{results['gt_tracks']} tracks):"
    )
    lines.append(
      f"  pixel AUROC {results['pixel_auroc']:.4f}   UCSD criterion AUC {results['pixel_criterion_auc']:.4f}, "
      f"EER {results['pixel_criterion_eer']:.4f}   RBDC {results['rbdc']:.4f}   TBDC {results['tbdc']:.4f}   "
      f"to 0.05 false positives per frame: RBDC {results['rbdc_005']:.4f}, TBDC {results['tbdc_005']:.4f}"
    )
  if "fused_deployment_auc" in results:
    target = results.get("false_alarm_target")
    lines.append(
      "deployment protocol (calibrated scores, no per-video step"
      + (f"; alarm at the {100 * target:g} % false-alarm target" if target is not None else "")
      + "):"
    )
    for stream in STREAMS:
      delay = results[f"{stream}_detection_delay"]
      lines.append(
        f"  {stream:<8} AUC {results[f'{stream}_deployment_auc']:.4f}   "
        f"false alarms {100 * results[f'{stream}_false_alarm_rate']:.1f} % of normal frames   "
        f"events detected {round(results[f'{stream}_events_detected'] * results['anomalous_events'])}"
        f"/{int(results['anomalous_events'])}   "
        f"mean delay {'-' if np.isnan(delay) else f'{delay:.1f} frames'}"
      )
  return "\n".join(lines)
