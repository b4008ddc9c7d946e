"""A validation split that measures detection, made from normal training videos alone.

The training videos held out of training (``calibration.videos``) show how well the
network predicts normal clips it has not seen (their PSNR), but not whether it notices
an anomaly, and a recipe fixed by that PSNR alone can get worse at detection. Here each
held-out video also gives *pseudo-anomalous* clips: inside one rectangle, the input
frames are taken ``speedup`` frames apart instead of one, so whatever moves there moves
``speedup`` times faster than in the rest of the clip, as a cyclist or a skater does
among walkers. The target frame is the video's own, so a network that learned how
normal things move predicts the wrong place for them.

Every held-out video gives pseudo-videos that are scored like a test split (per-video
min-max of Eq. 16, frames pooled for the micro AUC). The rectangle is a quarter of the
frame's height and width; the ``regions`` busiest places that do not overlap (most change
between frames ``speedup`` apart, over the whole video) each give two pseudo-videos, so
that one badly placed rectangle does not decide the figure: ``mixed`` (its second half
sped up) and ``whole`` (every clip sped up, as four of the twelve UCSD Ped2 test videos
are anomalous throughout, where the per-video min-max costs the most). Only clips whose
sped-up inputs lie inside the video are scored, normal ones included.

The anomalies are of motion only. On UCSD Ped2, whose anomalies are also of appearance,
this AUC did not rank a run's checkpoints by test AUC better than the PSNR did
(docs/RESULTS.md, "Choosing without the test split").
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import jax
import numpy as np

from vad_jax.data import preprocessing
from vad_jax.dual_stream import evaluation, scoring

Array = Any
KINDS = ("mixed", "whole")
SPLIT = "held_out"  # best_metric_split value that picks checkpoints by these figures


@dataclasses.dataclass(frozen=True)
class PseudoVideo:
  """Clips of one held-out video, some of them sped up inside ``region``.

  The clips are built batch by batch (``clips``) from the video's frames and two index
  tables, so a long video at full resolution is never held ``T`` times over.
  """

  name: str
  frames: np.ndarray  # uint8 [n, h, w, c], the held-out video
  normal_index: np.ndarray  # [clips, T] frame indices of each clip
  fast_index: np.ndarray  # [clips, T] the same clip's frames ``speedup`` apart (same target)
  labels: np.ndarray  # [clips] 1 where the clip is sped up inside the region
  region: tuple[int, int, int, int]  # (top, left, height, width)

  def clips(self, rows: np.ndarray, sped_up: Optional[np.ndarray] = None) -> np.ndarray:
    """``float32 [len(rows), T, h, w, c]`` in [-1, 1], sped up where ``sped_up`` (a mask
    over ``rows``; default: where labelled 1)."""
    clips = self.frames[self.normal_index[rows]]  # a copy: the frames are never written
    fast = np.flatnonzero(self.labels[rows] == 1 if sped_up is None else sped_up)
    if fast.size:
      top, left, height, width = self.region
      ys, xs = slice(top, top + height), slice(left, left + width)
      clips[fast, :, ys, xs] = self.frames[self.fast_index[rows[fast]]][:, :, ys, xs]
    return preprocessing.to_signed_unit(clips)


def busiest_windows(motion: np.ndarray, size: tuple[int, int], count: int) -> list[tuple[int, int]]:
  """``(top, left)`` of up to ``count`` non-overlapping ``size`` windows of ``motion
  [h, w]``, each the one with the largest sum among the windows that overlap none before."""
  height, width = size
  total = np.pad(np.cumsum(np.cumsum(motion, axis=0), axis=1), ((1, 0), (1, 0)))
  sums = total[height:, width:] - total[:-height, width:] - total[height:, :-width] + total[:-height, :-width]
  tops, lefts = np.arange(sums.shape[0])[:, None], np.arange(sums.shape[1])[None, :]
  chosen = []
  while len(chosen) < count and np.isfinite(sums).any():
    top, left = (int(i) for i in np.unravel_index(np.argmax(sums), sums.shape))
    chosen.append((top, left))
    sums = np.where((np.abs(tops - top) < height) & (np.abs(lefts - left) < width), -np.inf, sums)
  return chosen


def pseudo_anomaly_videos(
  frames: Mapping[str, np.ndarray],
  sequence_length: int,
  speedup: int = 3,
  regions: int = 3,
  region_fraction: float = 0.25,
) -> list[PseudoVideo]:
  """The pseudo-videos of every held-out video (name -> uint8 ``[n, h, w, c]``): for
  each of its ``regions`` busiest non-overlapping rectangles, a ``mixed`` and a
  ``whole`` one."""
  if speedup < 2:
    raise ValueError(f"speedup must be at least 2 (1 would change nothing), got {speedup}")
  if regions < 1:
    raise ValueError(f"regions must be at least 1, got {regions}")
  if not 0 < region_fraction < 1:
    raise ValueError(f"region_fraction must be in (0, 1), got {region_fraction}")
  t = sequence_length
  reach = (t - 1) * speedup  # the sped-up clip's first frame is this far behind its target
  videos = []
  for name, video in frames.items():
    n, h, w = video.shape[:3]
    if n < reach + 2:
      raise ValueError(
        f"held-out video {name!r} has {n} frames; pseudo-anomalies with speedup {speedup} and "
        f"{t}-frame clips need at least {reach + 2}"
      )
    targets = np.arange(reach, n)
    offsets = np.arange(-(t - 1), 1)
    normal_index, fast_index = targets[:, None] + offsets, targets[:, None] + speedup * offsets
    signed = video.astype(np.float32)
    motion = np.abs(signed[targets] - signed[targets - speedup]).mean(axis=-1).sum(axis=0)  # [h, w]
    size = (max(1, round(h * region_fraction)), max(1, round(w * region_fraction)))
    for r, corner in enumerate(busiest_windows(motion, size, regions)):
      for kind in KINDS:
        labels = np.ones(len(targets), np.int32)
        if kind == "mixed":
          labels[: len(targets) // 2] = 0
        videos.append(PseudoVideo(f"{name}/{r}/{kind}", video, normal_index, fast_index, labels, (*corner, *size)))
  return videos


def metric_modes() -> dict[str, str]:
  """The names ``validate`` returns, each ``max`` or ``min`` (for ``best_metric``)."""
  modes = {"validation_psnr": "max"}
  for stream in evaluation.STREAMS:
    modes.update(
      {f"pseudo_{stream}_micro_auc": "max", f"pseudo_{stream}_macro_auc": "max", f"pseudo_{stream}_eer": "min"}
    )
  return modes


def validate(
  videos: Sequence[PseudoVideo],
  stats_fn: Callable[[np.ndarray], Mapping[str, Array]],
  batch_size: int,
  lam: float,
) -> dict[str, float]:
  """Scores the pseudo-videos with ``stats_fn`` (clips -> per-clip ``STAT_KEYS``, as
  ``steps.model_statistics``) in batches of ``batch_size`` (the last padded), keeping the
  results on the device until all are scored.

  A clip's statistics depend only on its held-out video, its row and where it is sped up,
  so each such clip is scored once: the plain half of the ``mixed`` videos is shared by
  all the regions of a video, and their sped-up half is ``whole``'s.

  Returns ``validation_psnr`` (mean PSNR of the fused prediction on the normal clips)
  and, for the pseudo-anomalies, each stream's ``pseudo_<stream>_micro_auc``,
  ``pseudo_<stream>_macro_auc`` and ``pseudo_<stream>_eer``.
  """
  groups = {}  # (held-out video, region or None) -> (a pseudo-video of it, rows to score)
  for v in videos:
    for sped_up in (False, True):
      key = (id(v.frames), v.region if sped_up else None)
      groups.setdefault(key, (v, set()))[1].update(np.flatnonzero((v.labels == 1) == sped_up).tolist())
  pending = []
  for key, (v, wanted) in groups.items():
    wanted = np.array(sorted(wanted), int)
    for start in range(0, len(wanted), batch_size):
      rows = wanted[start : start + batch_size]
      clips = v.clips(rows, np.full(len(rows), key[1] is not None))
      if len(rows) < batch_size:
        clips = np.concatenate([clips, np.zeros((batch_size - len(rows), *clips.shape[1:]), clips.dtype)])
      pending.append((key, rows, stats_fn(clips)))
  host = jax.device_get([stats for _, _, stats in pending])
  table = {key: {k: np.full(len(v.labels), np.nan) for k in scoring.STAT_KEYS} for key, (v, _) in groups.items()}
  for (key, rows, _), h in zip(pending, host):
    for k in scoring.STAT_KEYS:
      table[key][k][rows] = h[k][: len(rows)]
  per_video = [
    {
      k: np.where(v.labels == 1, table[(id(v.frames), v.region)][k], table[(id(v.frames), None)][k])
      for k in table[(id(v.frames), None)]
    }
    for v in videos
  ]
  stats = {k: np.concatenate([s[k] for s in per_video]) for k in scoring.STAT_KEYS}
  counts = [len(v.labels) for v in videos]
  arrays = {
    **stats,
    "video_index": np.repeat(np.arange(len(videos)), counts),
    "frame_index": np.concatenate([np.arange(c) for c in counts]),
    "label": np.concatenate([v.labels for v in videos]),
  }
  scored = evaluation.per_video_scores(arrays, [v.name for v in videos], lam)
  results = evaluation.frame_level_metrics(scored)
  normal = arrays["label"] == 0
  out = {"validation_psnr": float(np.mean(stats["psnr"][normal]))}
  for stream in evaluation.STREAMS:
    for metric in ("micro_auc", "macro_auc", "eer"):
      out[f"pseudo_{stream}_{metric}"] = float(results[f"{stream}_{metric}"])
  return out
