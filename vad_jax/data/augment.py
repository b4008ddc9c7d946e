"""Training-time augmentation of clip-level batches (host side, numpy, uint8 frames).

The supervised classifiers see few labelled videos (nine per UCSD Ped2 fold), and
without augmentation they fit those videos' exact layout (docs/hybrid.md, "How many
labelled videos?"). ``FlipAndShift`` shows each training clip mirrored left-right or
not, and moved by a few pixels, so that where an event happens in the frame stops being
a feature of a particular video. One draw per clip: every frame of a clip moves
together, so the motion within the clip and the frame labels stay valid. It runs before
the box proposals (``hybrid.task.AddBoxes``), which then see the moved frames.

Mirroring also reverses the direction of motion: leave ``flip`` off where the direction
is part of what is normal (a one-way corridor; the synthetic set's ``wrong_way``
walkers, where mirrored clips kept the model from learning at all: docs/hybrid.md,
"Augmented training clips").

The random draws come from grain's ``random_map``: one generator per batch position,
derived from the seed, the host and the position, so a resumed run sees the same
augmented batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FlipAndShift:
  """Mirrors each clip with probability 1/2 (``flip``) and translates it by a whole number
  of pixels drawn uniformly from ``[-s, s]`` per axis, ``s = round(max_shift * size)``;
  the uncovered border repeats the edge pixels (a fixed camera's scene continues past
  the frame more like its edge than like black)."""

  flip: bool = True
  max_shift: float = 0.0

  def __post_init__(self):
    if not 0.0 <= self.max_shift < 0.5:
      raise ValueError(f"data.augment.max_shift must be in [0, 0.5), got {self.max_shift!r}")

  def __call__(self, batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    frames = batch["frames"]  # [b, N, H, W, C]
    b, _, h, w, _ = frames.shape
    mirror = (rng.random(b) < 0.5) & self.flip  # drawn either way: one stream of draws
    out = np.where(mirror[:, None, None, None, None], frames[:, :, :, ::-1], frames)
    sy, sx = round(self.max_shift * h), round(self.max_shift * w)
    dy = rng.integers(-sy, sy + 1, size=b)
    dx = rng.integers(-sx, sx + 1, size=b)
    if sy or sx:
      padded = np.pad(out, ((0, 0), (0, 0), (sy, sy), (sx, sx), (0, 0)), mode="edge")
      for i in range(b):  # one slice per clip
        out[i] = padded[i, :, sy - dy[i] : sy - dy[i] + h, sx - dx[i] : sx - dx[i] + w]
    return {**batch, "frames": out}


def from_config(data_config) -> FlipAndShift | None:
  """The augmentation ``data.augment`` asks for (None when it is off or absent)."""
  augment = data_config.get("augment", None)
  if augment is None or not (augment.flip or augment.max_shift):
    return None
  return FlipAndShift(flip=bool(augment.flip), max_shift=float(augment.max_shift))
