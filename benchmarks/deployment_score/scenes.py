"""Two generated scenes besides UCSD Ped2, written for the score comparison of issue #32.

* ``walkway``: the project's synthetic walkway (tfds_builders/synthetic_surveillance/
  scene.py) as it is, 64x64 grayscale; walkers left to right along a horizontal band; each
  video samples its own background texture (same layout); crowd density varies per video
  (4.5-7.5 walkers on screen). Anomalies: fast_mover, wrong_way, thrown_object, loiterer.
* ``plaza``: own footage with a different background and motion: ONE fixed background
  (same camera for every video): a building facade with windows at the top, a lawn at
  the lower left where nobody walks, a paved diagonal path from bottom-left to top-right
  walked in both directions with perspective (figures shrink towards the top), a fountain
  whose water flickers every frame (a place with high prediction error in normal video),
  per-video brightness (time of day, 0.85-1.12) and density (2-8 walkers on screen).
  Anomalies: runner (3-4x walking speed on the path), cart (a large box pushed along the
  path at walking speed: appearance), lawn_walker (a normal walker crossing the lawn:
  place), cyclist (fast, crossing the path horizontally), thrown_object.

Writes, for each scene, ``scenes/<scene>/footage/train/<video>/NNN.png`` (normal training
videos, for the own_videos builder) and ``scenes/<scene>/heldout/<video>.npz`` (frames
uint8 [n, 64, 64, 1], labels int32 [n], masks uint8 [n, 64, 64], kind) for held-out
normal videos (``normal_*``) and labelled anomalous ones (``anom_*``), which no model
trains on.

  python scenes.py            # both scenes
"""

import os
import pathlib
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.environ["CODE"])
from tfds_builders.synthetic_surveillance import scene as ws  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent / "scenes"
H = W = 64
N_TRAIN, N_NORMAL, N_ANOM, FRAMES = 16, 8, 12, 150


# ------------------------------------------------------------------------ walkway
def walkway_video(seed, kinds=()):
  rng = np.random.default_rng([32, seed])
  density = float(rng.uniform(4.5, 7.5))
  settings = ws.SceneSettings(height=H, width=W, channels=1, num_frames=FRAMES, walkers_on_screen=density)
  v = ws.generate_video(rng, anomalies=kinds, settings=settings)
  return v.frames, v.labels, v.masks


# ------------------------------------------------------------------------ plaza
def _smooth(rng, h, w, cell):
  return ws._smooth_noise(rng, h, w, cell)


PATH_HALF_WIDTH = 7.0  # pixels, at the bottom of the frame (shrinks with perspective)
FOUNTAIN = (14, 44, 7, 9)  # centre row, centre col, radius rows, radius cols
LAWN_ROWS, LAWN_COLS = (34, 64), (0, 26)


def path_centre_x(y):
  """The path's centre line: from (row 64, col 18) to (row 18, col 60)."""
  return 18 + (64 - y) * (42 / 46)


def perspective(y):
  return 0.45 + 0.55 * np.clip(y / 64.0, 0, 1)  # 1.0 at the bottom, 0.55 at row 10


def plaza_background():
  rng = np.random.default_rng(2024)  # the same camera for every video
  yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
  base = 0.50 + 0.03 * _smooth(rng, H, W, 6) + 0.015 * _smooth(rng, H, W, 1.2)
  # facade at the top with two rows of windows
  facade = yy < 12
  windows = facade & (np.mod(xx, 8) >= 2) & (np.mod(xx, 8) < 5) & (((yy >= 2) & (yy < 5)) | ((yy >= 7) & (yy < 10)))
  img = np.where(facade, 0.68 + 0.02 * _smooth(rng, H, W, 3), base)
  img = np.where(windows, 0.22, img)
  # lawn, lower left, darker and textured
  lawn = (yy >= LAWN_ROWS[0]) & (xx < LAWN_COLS[1]) & (np.abs(xx - path_centre_x(yy)) > PATH_HALF_WIDTH * perspective(yy) + 2)
  img = np.where(lawn, 0.30 + 0.06 * _smooth(rng, H, W, 4) + 0.03 * _smooth(rng, H, W, 1.0), img)
  # paved path with cross joints
  d = np.abs(xx - path_centre_x(yy))
  on_path = (d < PATH_HALF_WIDTH * perspective(yy)) & (yy >= 12)
  joints = on_path & (np.mod(yy + 0.5 * xx, 6) < 0.8)
  img = np.where(on_path, 0.62 + 0.02 * _smooth(rng, H, W, 5), img)
  img = np.where(joints, img - 0.06, img)
  edge = (np.abs(d - PATH_HALF_WIDTH * perspective(yy)) < 0.7) & (yy >= 12)
  img = np.where(edge, 0.78, img)
  # fountain basin
  fy, fx, ry, rx = FOUNTAIN
  r = ((yy - fy) / ry) ** 2 + ((xx - fx) / rx) ** 2
  img = np.where((r >= 0.75) & (r <= 1.0), 0.82, img)
  water = r < 0.75
  return np.clip(img, 0, 1).astype(np.float32), water


def _walker_on_path(rng, n, t0, direction, speed_factor=1.0, shape="walker"):
  """Feet trajectory along the path, walking up (+1) or down (-1) the path."""
  offset = rng.uniform(-0.6, 0.6)  # lateral position, fraction of the half width
  speed = rng.uniform(0.55, 0.9) * speed_factor  # pixels per frame at the bottom
  # parametrise by row: y decreases walking up
  t = np.arange(n, dtype=np.float64) - t0
  y = np.empty(n)
  y0 = 70.0 if direction > 0 else 12.0
  # integrate with perspective-dependent speed
  yc = y0
  for i in range(n):
    y[i] = yc
    if t[i] >= 0:
      yc = yc - direction * speed * perspective(yc) * 0.74
  x = path_centre_x(y) + offset * PATH_HALF_WIDTH * perspective(y)
  x = np.where((t < 0) | (y < 11.5), -100.0, x)  # not drawn before it starts or once at the facade
  return x, y, speed


def _figure(rng, x, y, speed, shape="walker", anomalous=None, height=None, n=FRAMES):
  body_lo, body_hi = [(0.08, 0.3), (0.7, 0.95)][rng.integers(2)]
  return ws.Figure(
    x=x.astype(np.float32),
    y=y.astype(np.float32),
    height=float(height if height is not None else rng.uniform(8.0, 10.5)),
    body=np.array([rng.uniform(body_lo, body_hi)], np.float32),
    head=np.array([rng.uniform(0.45, 0.8)], np.float32),
    gait_phase=float(rng.uniform(0, 2 * np.pi)),
    gait_rate=float(0.9 * speed),
    shape=shape,
    anomalous=np.zeros(n, bool) if anomalous is None else anomalous,
  )


def _scaled(fig, t):
  """The figure at frame t with its height scaled by perspective."""
  return fig.height * perspective(float(fig.y[t]))


def _paint_scaled(canvas, fig, t, mask):
  import dataclasses

  scaled = dataclasses.replace(fig, height=_scaled(fig, t) if fig.shape != "ball" else fig.height)
  ws._paint(canvas, scaled, t, mask)


def _paint_box(canvas, x, y, w, h, level, mask):
  """An anti-aliased box (a cart) with a darker frame, feet at (x, y)."""
  ss = 4
  yy, xx = np.mgrid[0 : H * ss, 0 : W * ss] / ss + 0.5 / ss
  inside = (np.abs(xx - x) <= w / 2) & (yy <= y) & (yy >= y - h)
  inner = (np.abs(xx - x) <= w / 2 - 1) & (yy <= y - 1) & (yy >= y - h + 1)
  cover = inside.reshape(H, ss, W, ss).mean(axis=(1, 3))[..., None]
  innerc = inner.reshape(H, ss, W, ss).mean(axis=(1, 3))[..., None]
  colour = 0.25 * (cover - innerc) + level * innerc
  canvas[:] = canvas * (1 - cover) + colour
  if mask is not None:
    mask |= cover[..., 0] > 0.25


def plaza_video(seed, kinds=()):
  rng = np.random.default_rng([77, seed])
  background, water = plaza_background()
  n = FRAMES
  brightness = rng.uniform(0.85, 1.12)
  density = rng.uniform(2.0, 8.0)
  walkers = []
  rate = density / 90.0  # about 90 frames to walk the path
  for _ in range(rng.poisson(density)):  # on screen at frame 0
    direction = rng.choice([-1, 1])
    x, y, s = _walker_on_path(rng, n + 120, 0, direction)
    start = rng.integers(0, 100)
    walkers.append(_figure(rng, x[start : start + n], y[start : start + n], s))
  for t0 in np.sort(rng.uniform(0, n, rng.poisson(rate * n))):
    x, y, s = _walker_on_path(rng, n, t0, rng.choice([-1, 1]))
    walkers.append(_figure(rng, x, y, s))
  tt = np.arange(n)
  anomalies = []  # (kind, figure or box trajectory)
  for kind in kinds:
    t0 = rng.uniform(0.1, 0.5) * n
    on = tt >= t0
    if kind == "runner":
      x, y, s = _walker_on_path(rng, n, t0, rng.choice([-1, 1]), speed_factor=rng.uniform(3.0, 4.0))
      anomalies.append(("fig", _figure(rng, x, y, s * 0.5, anomalous=on)))
    elif kind == "cart":
      x, y, s = _walker_on_path(rng, n, t0, rng.choice([-1, 1]))
      anomalies.append(("box", (x, y, rng.uniform(0.1, 0.2) if rng.uniform() < 0.5 else rng.uniform(0.85, 0.95), on)))
    elif kind == "lawn_walker":
      y0 = rng.uniform(44, 62)
      speed = rng.uniform(0.55, 0.9) * perspective(y0) * 0.74
      x = np.where(on, -3 + speed * (tt - t0), -100.0)
      y = np.full(n, y0)
      fig = _figure(rng, x, y, speed, anomalous=on)
      anomalies.append(("fig", fig))
    elif kind == "cyclist":
      y0 = rng.uniform(22, 60)
      speed = rng.uniform(2.2, 3.0)
      d = rng.choice([-1, 1])
      x = np.where(on, (-5 if d > 0 else W + 5) + d * speed * (tt - t0), -100.0)
      fig = _figure(rng, x, np.full(n, y0), speed, shape="cyclist", anomalous=on)
      anomalies.append(("fig", ws.dataclasses.replace(fig, gait_rate=0.0)))
    elif kind == "thrown_object":
      g, radius = 0.25, 1.4
      rise = rng.uniform(25, 40)
      vy0 = -np.sqrt(2 * g * rise)
      vx = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.8)
      x0 = rng.uniform(16, 48)
      tau = tt - t0
      x = x0 + vx * tau
      y = H + radius + vy0 * tau + 0.5 * g * tau**2
      fly = (tau >= 0) & (tau <= 2 * -vy0 / g)
      y = np.where(fly, y, 10.0 * H)
      fig = _figure(rng, x, y, 0.0, shape="ball", anomalous=fly, height=2 * radius)
      anomalies.append(("fig", fig))
    else:
      raise ValueError(kind)
  noise_rng = np.random.default_rng([78, seed])
  water_phase = rng.uniform(0, 6.28)
  frames = np.empty((n, H, W, 1), np.uint8)
  masks = np.zeros((n, H, W), np.uint8)
  gain = brightness * (1 + 0.04 * np.sin(2 * np.pi * tt / rng.uniform(150, 400) + rng.uniform(0, 6.28)))
  for t in range(n):
    canvas = background[..., None].copy()
    ripple = 0.45 + 0.12 * np.sin(0.9 * np.arange(W)[None, :] + 0.6 * np.arange(H)[:, None] + 1.3 * t + water_phase)
    ripple += 0.06 * noise_rng.standard_normal((H, W))
    canvas[water] = ripple[water][:, None]
    for fig in sorted(walkers, key=lambda f: float(f.y[t])):
      _paint_scaled(canvas, fig, t, None)
    mask = np.zeros((H, W), bool)
    for what, obj in anomalies:
      if what == "fig":
        _paint_scaled(canvas, obj, t, mask if obj.anomalous[t] else None)
      else:
        x, y, level, on = obj
        if on[t]:
          p = perspective(y[t])
          _paint_box(canvas, x[t], y[t], 7.0 * p, 6.0 * p, level, mask)
    masks[t] = mask
    noise = noise_rng.standard_normal((H, W, 1)).astype(np.float32) * 0.015
    frames[t] = (np.clip(canvas * gain[t] + noise, 0, 1) * 255 + 0.5).astype(np.uint8)
  labels = masks.reshape(n, -1).any(axis=1).astype(np.int32)
  return frames, labels, masks


SCENES = {
  "walkway": (walkway_video, ("fast_mover", "wrong_way", "thrown_object", "loiterer")),
  "plaza": (plaza_video, ("runner", "cart", "lawn_walker", "cyclist", "thrown_object")),
}


def write(scene):
  make, kinds = SCENES[scene]
  root = ROOT / scene
  for i in range(N_TRAIN):
    frames, labels, _ = make(1000 + i)
    assert labels.sum() == 0
    d = root / "footage" / "train" / f"train_{i:03d}"
    d.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
      Image.fromarray(f[..., 0]).save(d / f"{t:03d}.png")
  (root / "heldout").mkdir(parents=True, exist_ok=True)
  for i in range(N_NORMAL):
    frames, labels, masks = make(2000 + i)
    np.savez_compressed(root / "heldout" / f"normal_{i:03d}.npz", frames=frames, labels=labels, masks=masks, kind="normal")
  for i in range(N_ANOM):
    kind = kinds[i % len(kinds)]
    frames, labels, masks = make(3000 + i, (kind,))
    np.savez_compressed(root / "heldout" / f"anom_{i:03d}.npz", frames=frames, labels=labels, masks=masks, kind=kind)
    print(scene, i, kind, "anomalous frames", int(labels.sum()))


if __name__ == "__main__":
  for s in sys.argv[1:] or SCENES:
    write(s)
