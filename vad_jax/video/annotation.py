"""Drawing a detector's results over the frames: the prediction error as a heat map, the
boxes of an alarm's regions, the frame number, time and score, alarms; written as a
video or an image strip as the results arrive (``vad-jax detect --output``)."""

import pathlib

import numpy as np
from PIL import Image, ImageDraw

from vad_jax.video import results, sources, windows

VIDEO_OUTPUTS = (".mp4", ".avi")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg")


def heat_map(frame: np.ndarray, error_map: np.ndarray, scale: float, opacity: float = 0.5) -> np.ndarray:
  """``frame`` (uint8 RGB ``[H, W, 3]``) with the prediction error drawn over it:
  ``error_map`` (``[h, w]``, any resolution) divided by ``scale`` and clipped to [0, 1],
  from transparent (no error) through yellow to red (``scale`` or more)."""
  h, w = frame.shape[:2]
  level = np.clip(np.asarray(error_map, np.float32) / max(float(scale), 1e-12), 0.0, 1.0)
  level = np.asarray(Image.fromarray(level).resize((w, h), Image.BILINEAR))[..., None]
  colour = np.concatenate([np.ones_like(level), 1.0 - level, np.zeros_like(level)], axis=-1) * 255.0
  alpha = opacity * level
  return (frame.astype(np.float32) * (1.0 - alpha) + colour * alpha).round().clip(0, 255).astype(np.uint8)


BOX_COLOUR = (0, 230, 255)  # cyan: apart from the heat map's yellow to red and the alarm's red border


def draw_boxes(frame: np.ndarray, boxes, colour=BOX_COLOUR, width: int | None = None) -> np.ndarray:
  """A copy of ``frame`` (uint8 ``[H, W, 3]``) with the outline of each box ``(x0, y0,
  x1, y1)`` (pixel edges, ``x0 <= x < x1``; clipped to the frame), ``width`` pixels wide
  inside the box (default: about 1/100 of the frame's smaller side, at least 1)."""
  out = np.array(frame, copy=True)
  h, w = out.shape[:2]
  width = width or max(1, round(min(h, w) / 100))
  for x0, y0, x1, y1 in boxes:
    x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
    if x1 <= x0 or y1 <= y0:
      continue
    t = min(width, x1 - x0, y1 - y0)
    out[y0 : y0 + t, x0:x1] = colour
    out[y1 - t : y1, x0:x1] = colour
    out[y0:y1, x0 : x0 + t] = colour
    out[y0:y1, x1 - t : x1] = colour
  return out


def annotate(
  frame: np.ndarray,
  index: int,
  time: float | None,
  score: float | None,
  alarmed: bool,
  error_map: np.ndarray | None = None,
  heat_scale: float | None = None,
  boxes=(),
) -> np.ndarray:
  """The frame with the prediction error drawn over it (when given, ``heat_map``), the
  outlines of the alarm's ``boxes`` (``draw_boxes``), its number, its time from the
  source's clock (when it has one), score (``n/a`` while the model cannot score yet), a
  score bar and a red border while alarmed."""
  if error_map is not None and heat_scale:
    frame = heat_map(frame, error_map, heat_scale)
  if boxes:
    frame = draw_boxes(frame, boxes)
  image = Image.fromarray(frame).convert("RGB")
  draw = ImageDraw.Draw(image)
  w, h = image.size
  bar = max(4, h // 30)
  level = 0.0 if score is None else float(np.clip(score, 0, 1))
  draw.rectangle([0, h - bar, int(w * level), h], fill=(230, 40, 40) if alarmed else (40, 160, 230))
  if alarmed:
    draw.rectangle([0, 0, w - 1, h - 1], outline=(230, 40, 40), width=max(2, w // 100))
  clock = "" if time is None else f"{int(time // 60):02d}:{time % 60:06.3f}  "
  text = f"#{index}  {clock}" + ("n/a" if score is None else f"{score:.3f}")
  draw.text((4, 4), text, fill=(255, 255, 0))
  return np.asarray(image)


class HeatScale:
  """The error drawn at full strength: the calibration's (``Detector.heat_scale``), or
  else the largest error seen so far (causal, like the stream)."""

  def __init__(self, fixed: float | None):
    self.fixed, self.seen = fixed, 0.0

  def __call__(self, error_map: np.ndarray | None) -> float | None:
    if error_map is None:
      return None
    if self.fixed is not None:
      return self.fixed
    self.seen = max(self.seen, float(np.max(error_map)))
    return self.seen


class StripTiles:
  """Up to ``count`` evenly spread annotated frames of a source of unknown length (every
  ``stride``-th frame, the stride doubling whenever the strip is full) and the
  highest-scored frame: bounded memory."""

  def __init__(self, count: int = 8):
    self.count, self.stride = count, 1
    self.tiles: dict[int, np.ndarray] = {}
    self.best: tuple[float, int, np.ndarray] | None = None

  def add(self, index: int, level: float | None, draw) -> None:
    if index % self.stride == 0:
      self.tiles[index] = draw()
      if len(self.tiles) > self.count:
        self.stride *= 2
        self.tiles = {i: t for i, t in self.tiles.items() if i % self.stride == 0}
    if level is not None and (self.best is None or level > self.best[0]):
      self.best = (level, index, self.tiles[index] if index in self.tiles else draw())

  def save(self, output: pathlib.Path) -> None:
    tiles = dict(self.tiles)
    if self.best is not None:
      tiles[self.best[1]] = self.best[2]
    images = [tiles[i] for i in sorted(tiles)]
    h = min(t.shape[0] for t in images)
    Image.fromarray(np.concatenate([t[:h] for t in images], axis=1)).save(output)


class AnnotatedOutput:
  """An annotated video (``.mp4``/``.avi``, written at ``fps``: the source's rate, or 25
  for a frame folder) or image strip (``.png``/``.jpg``)
  drawn from ``results.FrameResult`` s as they arrive (results need ``frame``; with
  ``error_map`` the error is drawn too, at ``heat_scale``, else at the largest error so
  far). The video is written under a hidden name and renamed when complete; an error
  leaves nothing behind."""

  def __init__(self, output: pathlib.Path, fps: float, heat_scale: float | None = None):
    self.output, self.fps = pathlib.Path(output), fps
    self._scale = HeatScale(heat_scale)
    video = self.output.suffix.lower() in VIDEO_OUTPUTS
    if not video and self.output.suffix.lower() not in IMAGE_OUTPUTS:
      raise ValueError(f"{output}: unsupported format {self.output.suffix or '(none)'!r}")
    self._writer = sources.VideoWriter(self.output, fps) if video else None
    self._strip = None if video else StripTiles()

  def add(self, result: results.FrameResult, level: float | None = None, alarm: bool | None = None) -> None:
    """Draws ``result`` (with ``level``/``alarm`` in place of its own when given)."""
    level = result.level if level is None else level
    alarm = result.alarm if alarm is None else alarm
    heat = self._scale(result.error_map)  # every frame counts towards a causal scale, drawn or not

    def draw():
      frame = windows.to_rgb(result.frame)
      boxes = result.boxes if alarm else ()  # a whole-video result's own alarms may differ from the stream's
      return annotate(frame, result.index, result.time, level, alarm, result.error_map, heat, boxes)

    if self._writer is not None:
      self._writer.write(draw())
    else:
      self._strip.add(result.index, level, draw)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
    elif self._strip.tiles:
      self._strip.save(self.output)

  def discard(self) -> None:
    if self._writer is not None:
      self._writer.discard()

  def __enter__(self) -> "AnnotatedOutput":
    return self

  def __exit__(self, exc_type, exc, traceback) -> None:
    if exc_type is None:
      self.close()
    else:
      self.discard()
