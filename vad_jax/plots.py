"""Evaluation figures: per-video score curves (the paper's Fig. 6), ROC curves of the
three streams (Fig. 8) and input / prediction error / attention panels (Fig. 7)."""

import pathlib
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vad_jax import metrics  # noqa: E402


def _shade_labels(ax, frames: np.ndarray, labels: np.ndarray) -> None:
  """Shades runs of anomalous frames."""
  anomalous = labels == 1
  if not anomalous.any():
    return
  edges = np.flatnonzero(np.diff(np.concatenate([[0], anomalous.astype(int), [0]])))
  for start, stop in zip(edges[::2], edges[1::2]):
    ax.axvspan(frames[start] - 0.5, frames[stop - 1] + 0.5, color="tab:red", alpha=0.15, lw=0)


def score_curve(path: pathlib.Path, name: str, frames: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
  fig, ax = plt.subplots(figsize=(8, 2.6))
  _shade_labels(ax, frames, labels)
  ax.plot(frames, scores, color="tab:blue", lw=1.2, label="anomaly score (Eq. 16)")
  ax.set_xlabel("frame")
  ax.set_ylabel("score")
  ax.set_ylim(-0.02, 1.02)
  ax.set_title(f"video {name} (shaded: ground-truth anomaly)")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def roc_curves(path: pathlib.Path, labels: np.ndarray, streams: Mapping[str, np.ndarray]) -> None:
  fig, ax = plt.subplots(figsize=(4.5, 4.5))
  styles = {"fused": "-", "temporal": "--", "spatial": ":"}
  for name, scores in streams.items():
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    ax.plot(fpr, tpr, styles.get(name, "-"), label=f"{name} (AUC {metrics.roc_auc(labels, scores):.3f})")
  ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def frame_panels(
  path: pathlib.Path, titles: Sequence[str], targets: np.ndarray, predictions: np.ndarray, attention: np.ndarray
) -> None:
  """One row per chosen frame: input frame, squared prediction error, attention map.

  ``targets``/``predictions`` ``[n, h, w, c]`` in [-1, 1]; ``attention`` ``[n, h, w]``.
  The error maps share one colour scale (and the attention maps another), each with a
  colour bar, so a normal frame's error looks as small as it is next to an anomalous one.
  """
  n = len(titles)
  errors = np.mean(np.square(predictions - targets), axis=-1)
  error_max = max(float(errors.max()), 1e-12)
  attention_range = (float(attention.min()), float(max(attention.max(), attention.min() + 1e-12)))
  fig, axes = plt.subplots(n, 3, figsize=(10, 3 * n), squeeze=False)
  for i in range(n):
    frame = np.clip((targets[i] + 1) / 2, 0, 1)
    axes[i][0].imshow(frame.squeeze(-1) if frame.shape[-1] == 1 else frame, cmap="gray", vmin=0, vmax=1)
    shown = axes[i][1].imshow(errors[i], cmap="inferno", vmin=0, vmax=error_max)
    fig.colorbar(shown, ax=axes[i][1], fraction=0.046, pad=0.04)
    shown = axes[i][2].imshow(attention[i], cmap="viridis", vmin=attention_range[0], vmax=attention_range[1])
    fig.colorbar(shown, ax=axes[i][2], fraction=0.046, pad=0.04)
    for ax, label in zip(axes[i], ("input", "squared prediction error (shared scale)", "channel attention")):
      ax.set_title(f"{titles[i]}: {label}", fontsize=8)
      ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
