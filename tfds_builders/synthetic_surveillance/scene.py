"""Procedural surveillance videos: a fixed camera over a one-way walkway.

The scene is the project's built-in dataset (no download). A static, textured
background shows a paved walkway crossing the frame between two grass verges. Walkers
(small figures: an elliptical body and a round head, with a slight gait wobble) enter
on the left and walk to the right along the walkway at normal walking speed, with a
small spread of headings. The camera adds mild Gaussian sensor noise and the lighting
drifts slowly (a global gain following a long sinusoid).

Anomalies are objects whose *motion* differs from the walkers, while their appearance
is drawn from the same distribution as the walkers' (same grey levels or colours, same
scale), so that a single frame does not give them away by pixel value:

* ``fast_mover``: a cyclist crossing along the walkway 3.5-5x faster than walking.
* ``wrong_way``: a walker going right-to-left, against the flow.
* ``thrown_object``: a small object thrown from below the frame on a ballistic arc.
* ``loiterer``: a walker who stops half-way and wanders on a small circle for a while
  (moving backwards and sideways) before walking on; only the loitering phase is
  anomalous.

Every video comes with per-frame labels and per-frame pixel masks of the anomalous
objects. Anomalous objects are drawn last (on top of the walkers), so the mask is
exactly the set of pixels that show an anomalous object: ``labels[t] == 1`` if and only
if ``masks[t]`` has a nonzero pixel.

Everything is seeded: the same generator state (or integer seed) gives byte-identical
videos. Sampling and rendering are separate (:func:`sample_scene`,
:func:`render_scene`) so that a scene can be rendered without its anomalies, which is
how the tests check that masks cover exactly the anomalous pixels.

Typical use::

    video = generate_video(0, num_frames=120, anomalies=("wrong_way",))
    video.frames  # uint8 [T, H, W, C]
    video.labels  # int32 [T]
    video.masks   # uint8 [T, H, W], values in {0, 1}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

ANOMALY_KINDS = ("fast_mover", "wrong_way", "thrown_object", "loiterer")

# Geometry is defined for a 64-pixel reference frame and scaled with the frame size.
_REFERENCE_SIZE = 64.0
# Walkway band, as fractions of the frame height (feet of walkers stay inside it).
_WALKWAY_TOP = 0.36
_WALKWAY_BOTTOM = 0.92
# Normal walking: speed range in reference pixels per frame, heading spread (radians).
_WALK_SPEED = (0.7, 1.1)
_HEADING_STD = np.deg2rad(5.0)
_HEADING_MAX = np.deg2rad(12.0)
# Figure height as a fraction of the frame height.
_FIGURE_HEIGHT = (0.10, 0.13)
# Grey levels of walkers' bodies and heads (before lighting), shared with anomalies.
_BODY_LEVELS = ((0.10, 0.38), (0.66, 0.92))
_HEAD_LEVELS = (0.45, 0.80)


@dataclasses.dataclass(frozen=True)
class SceneSettings:
  """Scene parameters; sizes are in pixels of the rendered frame."""

  height: int = 64
  width: int = 64
  channels: int = 1  # 1 (grayscale) or 3 (RGB).
  num_frames: int = 120
  # Mean number of walkers on screen (the arrival rate is derived from it).
  walkers_on_screen: float = 6.0
  noise_std: float = 0.015  # Sensor noise, in [0, 1] intensity units.
  lighting_amplitude: tuple[float, float] = (0.03, 0.08)  # Gain drift amplitude.
  lighting_period: tuple[float, float] = (200.0, 600.0)  # Gain drift period, frames.

  def __post_init__(self):
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {self.channels}")
    if min(self.height, self.width) < 16:
      raise ValueError(f"frames must be at least 16x16, got {self.height}x{self.width}")
    if self.num_frames < 1:
      raise ValueError(f"num_frames must be positive, got {self.num_frames}")

  @property
  def scale(self) -> float:
    """Pixels of this frame per pixel of the 64-pixel reference frame."""
    return min(self.height, self.width) / _REFERENCE_SIZE


@dataclasses.dataclass(frozen=True)
class Figure:
  """One moving object: trajectory, shape and appearance (all per frame)."""

  # Per-frame position of the feet (or centre, for a thrown object), [T] each.
  x: np.ndarray
  y: np.ndarray
  height: float  # Figure height in pixels.
  body: np.ndarray  # [C] body colour in [0, 1].
  head: np.ndarray  # [C] head colour in [0, 1].
  gait_phase: float
  gait_rate: float  # Radians per frame.
  shape: str  # "walker", "cyclist" or "ball".
  # Per-frame flag: True where the object is anomalous (drawn into the mask), [T].
  anomalous: np.ndarray


@dataclasses.dataclass(frozen=True)
class AnomalyEvent:
  kind: str
  first_frame: int  # First frame where the anomalous object is visible (-1: never).
  last_frame: int  # Last such frame, inclusive (-1: never).


@dataclasses.dataclass(frozen=True)
class Scene:
  """Everything needed to render a video deterministically."""

  settings: SceneSettings
  background: np.ndarray  # float32 [H, W, C] in [0, 1].
  walkers: tuple[Figure, ...]
  anomalies: tuple[Figure, ...]
  kinds: tuple[str, ...]  # Kind of each anomaly, aligned with `anomalies`.
  gain: np.ndarray  # float32 [T] lighting gain.
  noise_seed: int


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
  frames: np.ndarray  # uint8 [T, H, W, C].
  labels: np.ndarray  # int32 [T], 1 where an anomalous object is visible.
  masks: np.ndarray  # uint8 [T, H, W] in {0, 1}.
  events: tuple[AnomalyEvent, ...]

  @property
  def video_label(self) -> int:
    return int(self.labels.any())


# ----------------------------------------------------------------------------------
# Sampling.


def _as_generator(rng: np.random.Generator | int | Sequence[int]) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  return np.random.default_rng(rng)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
  """Zero-mean, unit-scale value noise, bilinearly interpolated from a coarse grid."""
  gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
  grid = rng.standard_normal((gh, gw)).astype(np.float32)
  fy = np.arange(h, dtype=np.float32) / cell
  fx = np.arange(w, dtype=np.float32) / cell
  y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
  wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
  top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x0 + 1] * wx
  bottom = grid[y0 + 1][:, x0] * (1 - wx) + grid[y0 + 1][:, x0 + 1] * wx
  return top * (1 - wy) + bottom * wy


def _sample_background(rng: np.random.Generator, s: SceneSettings) -> np.ndarray:
  """Grass verges above and below a paved walkway with tile joints and kerbs."""
  h, w, k = s.height, s.width, s.scale
  yy = np.arange(h, dtype=np.float32)[:, None]
  xx = np.arange(w, dtype=np.float32)[None, :]
  top, bottom = _WALKWAY_TOP * h, _WALKWAY_BOTTOM * h
  on_walkway = (yy >= top) & (yy < bottom)

  grass = 0.34 + 0.07 * _smooth_noise(rng, h, w, 9 * k) + 0.03 * _smooth_noise(rng, h, w, 1.5 * k)
  tile = 8.0 * k
  joints = np.mod(xx + 0.5 * tile * (np.floor(yy / tile) % 2), tile) < max(1.0, 0.6 * k)
  joints |= np.mod(yy - top, tile) < max(1.0, 0.6 * k)
  paving = 0.55 + 0.04 * _smooth_noise(rng, h, w, 14 * k) + 0.015 * _smooth_noise(rng, h, w, 1.0 * k) - 0.07 * joints
  kerb = (np.abs(yy - top) < max(1.0, k)) | (np.abs(yy - bottom) < max(1.0, k))
  grey = np.where(on_walkway, paving, grass)
  grey = np.where(kerb, 0.72 + 0.02 * _smooth_noise(rng, h, w, 3 * k), grey)
  grey = np.broadcast_to(grey, (h, w)).astype(np.float32)
  if s.channels == 1:
    return np.clip(grey, 0.0, 1.0)[..., None]
  tint_grass = np.array([0.80, 1.05, 0.70], np.float32)
  tint_paving = np.array([1.02, 1.0, 0.95], np.float32)
  tint = np.where(on_walkway[..., None], tint_paving, tint_grass)
  tint = np.where(kerb[..., None], np.ones(3, np.float32), tint)
  return np.clip(grey[..., None] * tint, 0.0, 1.0).astype(np.float32)


def _sample_colours(rng: np.random.Generator, channels: int) -> tuple[np.ndarray, np.ndarray]:
  """Body and head colours; walkers and anomalies share this distribution."""
  low, high = _BODY_LEVELS[rng.integers(len(_BODY_LEVELS))]
  level = rng.uniform(low, high)
  head = rng.uniform(*_HEAD_LEVELS)
  if channels == 1:
    return np.array([level], np.float32), np.array([head], np.float32)
  # A random hue around the grey level keeps the luminance range of the grey scene.
  hue = rng.uniform(-0.12, 0.12, size=3)
  body = np.clip(level + hue - hue.mean(), 0.0, 1.0).astype(np.float32)
  skin = np.clip(head * np.array([1.08, 0.95, 0.85]), 0.0, 1.0).astype(np.float32)
  return body, skin


def _walk_track(
  rng: np.random.Generator, s: SceneSettings, t0: float, x0: float, y0: float, direction: float
) -> tuple[np.ndarray, np.ndarray, float]:
  """Straight walk (with small heading) from (x0, y0) at frame t0; returns x, y, speed."""
  k = s.scale
  speed = rng.uniform(*_WALK_SPEED) * k
  heading = np.clip(rng.normal(0.0, _HEADING_STD), -_HEADING_MAX, _HEADING_MAX)
  t = np.arange(s.num_frames, dtype=np.float64) - t0
  x = x0 + direction * speed * np.cos(heading) * t
  y = y0 + speed * np.sin(heading) * t
  return x, _clip_to_walkway(y, s), speed


def _clip_to_walkway(y: np.ndarray, s: SceneSettings) -> np.ndarray:
  low = _WALKWAY_TOP * s.height + _FIGURE_HEIGHT[1] * s.height * 0.6
  high = _WALKWAY_BOTTOM * s.height - 1.0
  return np.clip(y, low, high)


def _sample_feet_y(rng: np.random.Generator, s: SceneSettings) -> float:
  low = _WALKWAY_TOP * s.height + _FIGURE_HEIGHT[1] * s.height * 0.6
  high = _WALKWAY_BOTTOM * s.height - 1.0
  return float(rng.uniform(low, high))


def _new_walker(
  rng: np.random.Generator,
  s: SceneSettings,
  x: np.ndarray,
  y: np.ndarray,
  speed: float,
  shape: str = "walker",
  anomalous: np.ndarray | None = None,
) -> Figure:
  body, head = _sample_colours(rng, s.channels)
  return Figure(
    x=x.astype(np.float32),
    y=y.astype(np.float32),
    height=float(rng.uniform(*_FIGURE_HEIGHT) * s.height),
    body=body,
    head=head,
    gait_phase=float(rng.uniform(0, 2 * np.pi)),
    gait_rate=float(0.9 * speed / s.scale),
    shape=shape,
    anomalous=(np.zeros(s.num_frames, bool) if anomalous is None else anomalous),
  )


def _sample_walkers(rng: np.random.Generator, s: SceneSettings) -> list[Figure]:
  """Walkers on screen at frame 0 plus Poisson arrivals at the left edge."""
  margin = 0.1 * s.width
  mean_speed = np.mean(_WALK_SPEED) * s.scale
  crossing = (s.width + 2 * margin) / mean_speed  # Frames to cross the frame.
  rate = s.walkers_on_screen / crossing  # Arrivals per frame.
  starts = [(0.0, x) for x in rng.uniform(-margin, s.width + margin, size=rng.poisson(s.walkers_on_screen))]
  arrivals = rng.uniform(0, s.num_frames, size=rng.poisson(rate * s.num_frames))
  starts += [(float(t), -margin) for t in np.sort(arrivals)]
  walkers = []
  for t0, x0 in starts:
    x, y, speed = _walk_track(rng, s, t0, x0, _sample_feet_y(rng, s), +1.0)
    # Before arrival the walker is off screen (left of the frame).
    x = np.where(np.arange(s.num_frames) < t0, -10.0 * s.width, x)
    walkers.append(_new_walker(rng, s, x, y, speed))
  return walkers


def _sample_anomaly(rng: np.random.Generator, s: SceneSettings, kind: str) -> Figure:
  t_all = np.arange(s.num_frames, dtype=np.float64)
  n, k, margin = s.num_frames, s.scale, 0.1 * s.width
  if kind == "fast_mover":
    t0 = rng.uniform(0.1, 0.7) * n
    speed = rng.uniform(3.5, 5.0) * np.mean(_WALK_SPEED) * k
    y0 = _sample_feet_y(rng, s)
    x = np.where(t_all < t0, -10.0 * s.width, -margin + speed * (t_all - t0))
    y = np.full(n, y0)
    fig = _new_walker(rng, s, x, y, speed, shape="cyclist")
    return dataclasses.replace(fig, anomalous=np.ones(n, bool), gait_rate=0.0)
  if kind == "wrong_way":
    t0 = rng.uniform(0.05, 0.45) * n
    x, y, speed = _walk_track(rng, s, t0, s.width + margin, _sample_feet_y(rng, s), -1.0)
    x = np.where(t_all < t0, 10.0 * s.width, x)
    return _new_walker(rng, s, x, y, speed, anomalous=np.ones(n, bool))
  if kind == "thrown_object":
    t0 = rng.uniform(0.1, 0.75) * n
    gravity = 0.25 * k
    radius = 0.035 * s.height
    rise = rng.uniform(0.35, 0.65) * s.height + radius  # From below the bottom edge.
    vy0 = -np.sqrt(2 * gravity * rise)
    vx = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.8) * k
    x0 = rng.uniform(0.25, 0.75) * s.width
    tau = t_all - t0
    x = x0 + vx * tau
    y = s.height + radius + vy0 * tau + 0.5 * gravity * tau**2
    # Outside its flight the ball is below the frame.
    in_flight = (tau >= 0) & (tau <= 2 * -vy0 / gravity)
    y = np.where(in_flight, y, 10.0 * s.height)
    fig = _new_walker(rng, s, x, y, 0.0, shape="ball", anomalous=np.ones(n, bool))
    return dataclasses.replace(fig, height=2 * radius)
  if kind == "loiterer":
    # Walks in from the left, circles around an anchor point, then walks on.
    t_stop = rng.uniform(0.2, 0.55) * n
    duration = rng.uniform(0.2, 0.35) * n
    x_stop = rng.uniform(0.3, 0.6) * s.width
    y0 = _sample_feet_y(rng, s)
    speed = rng.uniform(*_WALK_SPEED) * k
    radius = rng.uniform(0.035, 0.05) * s.width
    omega = rng.choice([-1.0, 1.0]) * speed / radius  # Same speed as walking.
    phase = -np.pi / 2  # Start the circle heading right, continuing the walk.
    tau = np.clip(t_all - t_stop, 0.0, duration)
    circle_x = radius * (np.cos(phase + omega * tau) - np.cos(phase))
    circle_y = radius * (np.sin(phase + omega * tau) - np.sin(phase))
    walked = speed * (t_all - t_stop) - speed * np.clip(t_all - t_stop, 0.0, duration)
    x = x_stop + walked + circle_x
    y = _clip_to_walkway(y0 + circle_y, s)
    loitering = (t_all >= t_stop) & (t_all <= t_stop + duration)
    return _new_walker(rng, s, x, y, speed, anomalous=loitering)
  raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}")


def sample_scene(
  rng: np.random.Generator | int | Sequence[int], settings: SceneSettings | None = None, anomalies: Sequence[str] = ()
) -> Scene:
  """Samples background, walkers, anomalous objects and lighting of one video.

  Args:
    rng: a numpy Generator, or a seed (int or sequence of ints) for one.
    settings: frame size, length and scene parameters.
    anomalies: kinds (from ``ANOMALY_KINDS``) of the anomalous objects to add, each at
      a random time; empty for a normal video.
  """
  s = settings or SceneSettings()
  rng = _as_generator(rng)
  # Independent streams, so that adding an anomaly does not change the walkers.
  streams = [np.random.default_rng(seed) for seed in rng.integers(2**63, size=5)]
  background_rng, walker_rng, anomaly_rng, light_rng, noise_rng = streams
  for kind in anomalies:
    if kind not in ANOMALY_KINDS:
      raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}")
  t = np.arange(s.num_frames, dtype=np.float32)
  amplitude = light_rng.uniform(*s.lighting_amplitude)
  period = light_rng.uniform(*s.lighting_period)
  gain = 1.0 + amplitude * np.sin(2 * np.pi * t / period + light_rng.uniform(0, 2 * np.pi))
  return Scene(
    settings=s,
    background=_sample_background(background_rng, s),
    walkers=tuple(_sample_walkers(walker_rng, s)),
    anomalies=tuple(_sample_anomaly(anomaly_rng, s, kind) for kind in anomalies),
    kinds=tuple(anomalies),
    gain=gain.astype(np.float32),
    noise_seed=int(noise_rng.integers(2**63)),
  )


# ----------------------------------------------------------------------------------
# Rendering.


def _ellipse(h: int, w: int, cx: float, cy: float, ax: float, ay: float):
  """Pixels whose centres lie inside an axis-aligned ellipse: (rows, cols, inside)."""
  y0, y1 = max(int(np.floor(cy - ay)), 0), min(int(np.ceil(cy + ay)) + 1, h)
  x0, x1 = max(int(np.floor(cx - ax)), 0), min(int(np.ceil(cx + ax)) + 1, w)
  if y0 >= y1 or x0 >= x1:
    return None
  yy = np.arange(y0, y1, dtype=np.float32)[:, None]
  xx = np.arange(x0, x1, dtype=np.float32)[None, :]
  inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
  return slice(y0, y1), slice(x0, x1), inside


def _figure_parts(fig: Figure, t: int):
  """Ellipses (cx, cy, ax, ay, colour) making up a figure at frame t."""
  x, y, hgt = float(fig.x[t]), float(fig.y[t]), fig.height
  if fig.shape == "ball":
    r = hgt / 2
    return [(x, y, r, r, fig.body)]
  wobble = 1.0 + 0.18 * np.sin(fig.gait_phase + fig.gait_rate * t)
  head_r = max(0.14 * hgt, 0.75)
  if fig.shape == "walker":
    return [(x, y - 0.4 * hgt, 0.21 * hgt * wobble, 0.4 * hgt, fig.body), (x, y - 0.86 * hgt, head_r, head_r, fig.head)]
  if fig.shape == "cyclist":
    # A rider (body and head) over a long, low bicycle ellipse.
    return [
      (x, y - 0.12 * hgt, 0.5 * hgt, 0.14 * hgt, fig.body * 0.8),
      (x, y - 0.5 * hgt, 0.2 * hgt, 0.32 * hgt, fig.body),
      (x + 0.05 * hgt, y - 0.9 * hgt, head_r, head_r, fig.head),
    ]
  raise ValueError(f"unknown shape {fig.shape!r}")


def _paint(canvas: np.ndarray, fig: Figure, t: int, mask: np.ndarray | None) -> None:
  h, w = canvas.shape[:2]
  for cx, cy, ax, ay, colour in _figure_parts(fig, t):
    region = _ellipse(h, w, cx, cy, ax, ay)
    if region is None:
      continue
    rows, cols, inside = region
    canvas[rows, cols] = np.where(inside[..., None], colour, canvas[rows, cols])
    if mask is not None:
      mask[rows, cols] |= inside


def render_scene(scene: Scene, include_anomalies: bool = True) -> SyntheticVideo:
  """Renders frames, labels and masks; without anomalies the rest is identical."""
  s = scene.settings
  n, h, w = s.num_frames, s.height, s.width
  noise_rng = np.random.default_rng(scene.noise_seed)
  frames = np.empty((n, h, w, s.channels), np.uint8)
  masks = np.zeros((n, h, w), np.uint8)
  for t in range(n):
    canvas = scene.background.copy()
    # Far walkers (smaller feet y) first, so nearer ones occlude them.
    for fig in sorted(scene.walkers, key=lambda f: float(f.y[t])):
      _paint(canvas, fig, t, None)
    if include_anomalies:
      mask = np.zeros((h, w), bool)
      for fig in scene.anomalies:
        _paint(canvas, fig, t, mask if fig.anomalous[t] else None)
      masks[t] = mask
    noise = noise_rng.standard_normal((h, w, s.channels), dtype=np.float32) * s.noise_std
    frames[t] = np.clip(canvas * scene.gain[t] + noise, 0.0, 1.0) * 255.0 + 0.5
  labels = masks.reshape(n, -1).any(axis=1).astype(np.int32)
  events = []
  if include_anomalies:
    for fig, kind in zip(scene.anomalies, scene.kinds):
      shown = np.array([fig.anomalous[t] and _visible(fig, t, h, w) for t in range(n)])
      idx = np.flatnonzero(shown)
      events.append(AnomalyEvent(kind, int(idx[0]) if idx.size else -1, int(idx[-1]) if idx.size else -1))
  return SyntheticVideo(frames=frames, labels=labels, masks=masks, events=tuple(events))


def _visible(fig: Figure, t: int, h: int, w: int) -> bool:
  for cx, cy, ax, ay, _ in _figure_parts(fig, t):
    region = _ellipse(h, w, cx, cy, ax, ay)
    if region is not None and region[2].any():
      return True
  return False


def generate_video(
  rng: np.random.Generator | int | Sequence[int] = 0,
  *,
  num_frames: int = 120,
  height: int = 64,
  width: int = 64,
  channels: int = 1,
  anomalies: Sequence[str] = (),
  settings: SceneSettings | None = None,
) -> SyntheticVideo:
  """Generates one video; see the module docstring.

  Args:
    rng: a numpy Generator or a seed.
    num_frames, height, width, channels: video shape (ignored if `settings` is given).
    anomalies: kinds of anomalous objects to add (empty: a normal video).
    settings: full scene settings, overriding the shape arguments.

  Returns:
    A `SyntheticVideo` with frames uint8 [T, H, W, C], labels int32 [T] and masks
    uint8 [T, H, W].
  """
  if settings is None:
    settings = SceneSettings(height=height, width=width, channels=channels, num_frames=num_frames)
  return render_scene(sample_scene(rng, settings, anomalies))


# ----------------------------------------------------------------------------------
# Splits.


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """How many videos a split has, which of them contain anomalies, and of what kind."""

  name: str  # "train" or "test"; part of the video names and of the seeds.
  num_videos: int
  num_frames: int
  # Every `anomalous_every`-th video (starting with the first) has anomalies; 0: none.
  anomalous_every: int = 1
  # Kinds cycled over the anomalous videos (the n-th anomalous video gets kinds[n % len]).
  kinds: tuple[str, ...] = ANOMALY_KINDS
  # Probability that an anomalous video also gets a second, different kind.
  second_kind_probability: float = 0.4
  walkers_on_screen: float = SceneSettings.walkers_on_screen

  def __post_init__(self):
    unknown = [k for k in self.kinds if k not in ANOMALY_KINDS]
    if unknown or not self.kinds:
      raise ValueError(
        f"split {self.name!r}: anomaly kinds must be a non-empty subset of {ANOMALY_KINDS}, got {self.kinds}"
      )


_SPLIT_CODES = {"train": 0, "test": 1}


def video_anomalies(
  rng: np.random.Generator, index: int, kinds: Sequence[str] = ANOMALY_KINDS, second_kind_probability: float = 0.4
) -> tuple[str, ...]:
  """Kinds for an anomalous video: one cycling kind, sometimes a second, different one."""
  first = index % len(kinds)
  chosen = [kinds[first]]
  if rng.uniform() < second_kind_probability and len(kinds) > 1:
    others = [k for i, k in enumerate(kinds) if i != first]
    chosen.append(others[rng.integers(len(others))])
  return tuple(chosen)


def generate_split(
  seed: int, split: SplitSpec, height: int = 64, width: int = 64, channels: int = 1
) -> Iterator[tuple[str, SyntheticVideo]]:
  """Yields ``(name, video)`` for a split, in name order; each video has its own seed.

  Video ``i`` of split ``name`` is seeded by ``(seed, split code, i)``, so a single
  video can be regenerated without the others.
  """
  code = _SPLIT_CODES.get(split.name, sum(map(ord, split.name)))
  for i in range(split.num_videos):
    rng = np.random.default_rng([seed, code, i])
    anomalous = split.anomalous_every > 0 and i % split.anomalous_every == 0
    kinds = (
      video_anomalies(rng, i // max(split.anomalous_every, 1), split.kinds, split.second_kind_probability)
      if anomalous
      else ()
    )
    settings = SceneSettings(
      height=height,
      width=width,
      channels=channels,
      num_frames=split.num_frames,
      walkers_on_screen=split.walkers_on_screen,
    )
    yield f"{split.name}_{i:03d}", generate_video(rng, anomalies=kinds, settings=settings)
