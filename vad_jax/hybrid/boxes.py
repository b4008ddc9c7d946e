"""Object box sources for the spatial branch of HybridModel-1 (host-side numpy).

Every source is a callable with one interface::

    source(frames, *, video=None, frame_indices=None) -> Boxes

``frames`` is one clip ``[time, h, w, c]`` (uint8 in ``[0, 255]`` or float in
``[0, 1]``); the result holds a fixed number ``max_boxes`` of boxes per frame so that
batches have static shapes:

* ``boxes``  float32 ``[time, max_boxes, 4]``: ``x1, y1, x2, y2`` in pixels of ``frames``
  (``x2``/``y2`` exclusive: a box covering columns 3..5 is ``x1 = 3, x2 = 6``);
* ``scores`` float32 ``[time, max_boxes]`` in ``[0, 1]`` (0 for padding);
* ``valid``  bool ``[time, max_boxes]``.

Boxes are sorted by decreasing score; padding slots are zero boxes with ``valid=False``.

Sources:

* :class:`MotionBoxSource` (default, needs no weights): background subtraction against the
  clip's per-pixel temporal median (or a causal running mean), a threshold, a small
  binary opening/dilation, connected components (``scipy.ndimage.label``) and their
  bounding boxes. It runs on the host in the input pipeline, not under ``jit``: the
  labelling is sequential by nature and its outputs are padded to a static shape anyway.
* :class:`FileBoxSource`: precomputed boxes from a JSON or CSV file.
* :class:`OnnxDetectorBoxSource`: a user-supplied ONNX detector (optional dependency
  ``onnxruntime``, imported only when the source is built).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import ml_collections
import numpy as np
from PIL import Image
from scipy import ndimage

Array = Any


class Boxes(NamedTuple):
  """Fixed-size per-frame boxes: ``boxes [t, n, 4]``, ``scores [t, n]``, ``valid [t, n]``."""

  boxes: np.ndarray
  scores: np.ndarray
  valid: np.ndarray


def pad_boxes(per_frame: Sequence[np.ndarray], max_boxes: int) -> Boxes:
  """Pack per-frame ``[k_t, 5]`` arrays (``x1, y1, x2, y2, score``) into :class:`Boxes`.

  Keeps the ``max_boxes`` highest-scoring boxes of each frame (stable order for ties).
  """
  t = len(per_frame)
  boxes = np.zeros((t, max_boxes, 4), np.float32)
  scores = np.zeros((t, max_boxes), np.float32)
  valid = np.zeros((t, max_boxes), bool)
  for i, det in enumerate(per_frame):
    det = np.asarray(det, np.float32).reshape(-1, 5)
    if det.shape[0] == 0:
      continue
    order = np.argsort(-det[:, 4], kind="stable")[:max_boxes]
    k = order.size
    boxes[i, :k] = det[order, :4]
    scores[i, :k] = np.clip(det[order, 4], 0.0, 1.0)
    valid[i, :k] = True
  return Boxes(boxes, scores, valid)


def _to_gray01(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4:
    raise ValueError(f"expected frames of rank 4 [time, h, w, c], got shape {frames.shape}")
  x = frames.astype(np.float32)
  if np.issubdtype(frames.dtype, np.integer):
    x = x / 255.0
  if x.shape[-1] == 3:
    x = x @ np.asarray([0.2125, 0.7154, 0.0721], np.float32)
  elif x.shape[-1] == 1:
    x = x[..., 0]
  else:
    raise ValueError(f"expected 1 or 3 channels, got {x.shape[-1]}")
  return x


class MotionBoxSource:
  """Motion proposals by background subtraction and connected components.

  Args:
    max_boxes: boxes kept per frame (largest confidence first).
    background: ``"median"``: per-pixel median over the whole clip (robust when the moving
      object covers a pixel for less than half of the clip; non-causal, fine for clip
      classification); ``"running_mean"``: causal exponential running mean with rate
      ``alpha``, initialised with the first frame.
    alpha: update rate of the running mean.
    threshold: foreground where ``|gray - background| > threshold`` (gray in ``[0, 1]``).
    min_area: components smaller than this many pixels are dropped.
    opening: iterations of binary opening (removes isolated noisy pixels); 0 disables.
    dilation: iterations of binary dilation after the opening (joins nearby blobs).

  Confidence of a box: ``min(1, mean |diff| over the component / (2 threshold))``: a blob
  just above threshold scores about 0.5, strong motion saturates at 1.
  """

  def __init__(
    self,
    max_boxes: int = 8,
    *,
    background: str = "median",
    alpha: float = 0.05,
    threshold: float = 0.08,
    min_area: int = 16,
    opening: int = 1,
    dilation: int = 2,
  ):
    if background not in ("median", "running_mean"):
      raise ValueError(f"background must be 'median' or 'running_mean', got {background!r}")
    self.max_boxes = max_boxes
    self.background = background
    self.alpha = alpha
    self.threshold = threshold
    self.min_area = min_area
    self.opening = opening
    self.dilation = dilation

  def background_model(self, gray: np.ndarray) -> np.ndarray:
    """``[t, h, w]`` background estimate for each frame."""
    if self.background == "median":
      return np.broadcast_to(np.median(gray, axis=0), gray.shape)
    bg = np.empty_like(gray)
    cur = gray[0].copy()
    for i in range(gray.shape[0]):  # causal recursion over time (cheap, whole frames)
      bg[i] = cur
      cur = (1.0 - self.alpha) * cur + self.alpha * gray[i]
    return bg

  def __call__(self, frames: Array, *, video: str | None = None, frame_indices: Sequence[int] | None = None) -> Boxes:
    del video, frame_indices
    gray = _to_gray01(frames)
    diff = np.abs(gray - self.background_model(gray))
    # One 3D pass over the clip with a structuring element that is flat in time: the same
    # as the 2D operations frame by frame (4-connectivity), without a loop over frames.
    flat = np.zeros((3, 3, 3), bool)
    flat[1] = ndimage.generate_binary_structure(2, 1)
    mask = diff > self.threshold
    if self.opening:
      mask = ndimage.binary_opening(mask, structure=flat, iterations=self.opening)
    if self.dilation:
      mask = ndimage.binary_dilation(mask, structure=flat, iterations=self.dilation)
    labels, n = ndimage.label(mask, structure=flat)
    per_frame = [[] for _ in range(gray.shape[0])]
    if n:
      idx = np.arange(1, n + 1)
      areas = ndimage.sum_labels(np.ones_like(labels), labels, idx)
      strength = ndimage.mean(diff, labels, idx)
      for k, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None or areas[k] < self.min_area:
          continue
        ts, ys, xs = sl
        score = min(1.0, float(strength[k]) / (2.0 * self.threshold))
        per_frame[ts.start].append([xs.start, ys.start, xs.stop, ys.stop, score])
    per_frame = [np.asarray(dets, np.float32).reshape(-1, 5) for dets in per_frame]
    return pad_boxes(per_frame, self.max_boxes)


class FileBoxSource:
  """Precomputed boxes from a file.

  JSON: ``{video: {frame_index: [[x1, y1, x2, y2, score], ...]}}`` (frame keys as strings
  or ints; ``score`` optional, default 1). CSV with a header containing ``video, frame,
  x1, y1, x2, y2`` and optionally ``score``. Coordinates are pixels of the frames the
  model receives (rescale them beforehand if the pipeline resizes frames), or fractions of
  the frame size when ``normalized=True``.
  """

  def __init__(self, path: str | os.PathLike, max_boxes: int = 8, *, normalized: bool = False):
    self.path = os.fspath(path)
    self.max_boxes = max_boxes
    self.normalized = normalized
    self._table = self._read(self.path)

  @staticmethod
  def _read(path: str) -> dict[str, dict[int, np.ndarray]]:
    table: dict[str, dict[int, list]] = {}
    if path.endswith(".json"):
      with open(path) as f:
        raw = json.load(f)
      for video, frames in raw.items():
        for frame, dets in frames.items():
          rows = [list(d) + [1.0] * (5 - len(d)) for d in dets]
          table.setdefault(str(video), {}).setdefault(int(frame), []).extend(rows)
    elif path.endswith(".csv"):
      with open(path, newline="") as f:
        for row in csv.DictReader(f):
          det = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
          det.append(float(row["score"]) if row.get("score") not in (None, "") else 1.0)
          table.setdefault(row["video"], {}).setdefault(int(row["frame"]), []).append(det)
    else:
      raise ValueError(f"box file must be .json or .csv, got {path}")
    return {v: {k: np.asarray(d, np.float32) for k, d in fr.items()} for v, fr in table.items()}

  def __call__(self, frames: Array, *, video: str | None = None, frame_indices: Sequence[int] | None = None) -> Boxes:
    frames = np.asarray(frames)
    if frames.ndim != 4:
      raise ValueError(f"expected frames of rank 4 [time, h, w, c], got shape {frames.shape}")
    if video is None:
      raise ValueError("FileBoxSource needs the video name")
    t, h, w = frames.shape[:3]
    if frame_indices is None:
      frame_indices = range(t)
    per_video = self._table.get(str(video), {})
    empty = np.zeros((0, 5), np.float32)
    per_frame = []
    for i in frame_indices:
      det = per_video.get(int(i), empty).copy()
      if self.normalized and det.size:
        det[:, [0, 2]] *= w
        det[:, [1, 3]] *= h
      per_frame.append(det)
    return pad_boxes(per_frame, self.max_boxes)


def decode_detections(
  output: np.ndarray,
  *,
  score_threshold: float = 0.25,
  class_ids: Sequence[int] | None = (0,),
  scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
  """``[k, 6]`` or ``[1, k, 6]`` detector rows ``(x1, y1, x2, y2, score, class)`` ->
  ``[k', 5]`` boxes kept by score and class, coordinates multiplied by ``scale = (sx, sy)``."""
  out = np.asarray(output, np.float32)
  if out.ndim == 3 and out.shape[0] == 1:
    out = out[0]
  if out.ndim != 2 or out.shape[-1] < 6:
    raise ValueError(
      f"expected detections [k, 6] (x1, y1, x2, y2, score, class), got shape {out.shape}; "
      "pass postprocess= for other output formats"
    )
  keep = out[:, 4] >= score_threshold
  if class_ids is not None:
    keep &= np.isin(out[:, 5].astype(np.int64), np.asarray(class_ids))
  det = out[keep, :5].copy()
  det[:, [0, 2]] *= scale[0]
  det[:, [1, 3]] *= scale[1]
  return det


class OnnxDetectorBoxSource:
  """Boxes from a user-supplied ONNX object detector (needs ``onnxruntime``).

  Contract of the default pre/post-processing: the model takes one float32 image
  ``[1, 3, H, W]`` (RGB in ``[0, 1]``, ``H, W = input_size``, plain resize) and returns as
  its first output detections after NMS, ``[k, 6]`` or ``[1, k, 6]`` rows of
  ``(x1, y1, x2, y2, score, class)`` in input pixels (the layout of YOLO exports with
  NMS included). Other models: pass ``postprocess(outputs, frame_hw, input_hw) -> [k, 5]``.

  Args:
    model_path: the ``.onnx`` file.
    max_boxes: boxes kept per frame.
    input_size: ``(H, W)`` of the network input.
    score_threshold: minimum detection score.
    class_ids: classes kept (default ``(0,)``: COCO person); ``None`` keeps all.
    postprocess: optional custom decoder.
    providers: onnxruntime execution providers (default: CPU).
  """

  def __init__(
    self,
    model_path: str | os.PathLike,
    max_boxes: int = 8,
    *,
    input_size: tuple[int, int] = (416, 416),
    score_threshold: float = 0.25,
    class_ids: Sequence[int] | None = (0,),
    postprocess: Callable[..., np.ndarray] | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
  ):
    try:
      import onnxruntime  # noqa: PLC0415  (optional dependency, only for this source)
    except ImportError as e:
      raise ImportError(
        "OnnxDetectorBoxSource needs the optional dependency 'onnxruntime' "
        "(pip install onnxruntime); use MotionBoxSource (no weights) or FileBoxSource "
        "otherwise."
      ) from e
    if not os.path.exists(model_path):
      raise FileNotFoundError(f"ONNX model not found: {model_path}")
    self.session = onnxruntime.InferenceSession(os.fspath(model_path), providers=list(providers))
    self.input_name = self.session.get_inputs()[0].name
    self.max_boxes = max_boxes
    self.input_size = input_size
    self.score_threshold = score_threshold
    self.class_ids = class_ids
    self.postprocess = postprocess

  def _preprocess(self, frame: np.ndarray) -> np.ndarray:
    img = frame if frame.dtype == np.uint8 else (np.clip(frame, 0, 1) * 255).astype(np.uint8)
    if img.shape[-1] == 1:
      img = np.repeat(img, 3, axis=-1)
    h, w = self.input_size
    img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR), np.float32) / 255.0
    return img.transpose(2, 0, 1)[None]

  def __call__(self, frames: Array, *, video: str | None = None, frame_indices: Sequence[int] | None = None) -> Boxes:
    del video, frame_indices
    frames = np.asarray(frames)
    if frames.ndim != 4:
      raise ValueError(f"expected frames of rank 4 [time, h, w, c], got shape {frames.shape}")
    fh, fw = frames.shape[1:3]
    ih, iw = self.input_size
    per_frame = []
    for frame in frames:
      outputs = self.session.run(None, {self.input_name: self._preprocess(frame)})
      if self.postprocess is not None:
        det = self.postprocess(outputs, (fh, fw), (ih, iw))
      else:
        det = decode_detections(
          outputs[0],
          score_threshold=self.score_threshold,
          class_ids=self.class_ids,
          scale=(fw / iw, fh / ih),
        )
      per_frame.append(det)
    return pad_boxes(per_frame, self.max_boxes)


# --------------------------------------------------------------------------------------
# The configured source, applied to clip-level batches.
# --------------------------------------------------------------------------------------


def needs_boxes(config: ml_collections.ConfigDict) -> bool:
  """Whether the configured model takes object boxes (HybridModel-1 with object features)."""
  m = config.model
  return m.name == "hybrid" and m.use_object_features and m.branches != "temporal"


def make_box_source(config: ml_collections.ConfigDict):
  """The configured box source (``config.boxes``)."""
  b = config.boxes
  if b.source == "motion":
    return MotionBoxSource(
      b.max_boxes,
      threshold=b.threshold,
      min_area=b.min_area,
      opening=b.opening,
      dilation=b.dilation,
    )
  if b.source == "file":
    return FileBoxSource(b.path, max_boxes=b.max_boxes, normalized=b.normalized)
  if b.source == "onnx":
    return OnnxDetectorBoxSource(b.path, max_boxes=b.max_boxes)
  raise ValueError(f"boxes.source must be 'motion', 'file' or 'onnx', got {b.source!r}")


@dataclasses.dataclass(frozen=True)
class AddBoxes:
  """Host transform: object boxes for every clip of a clip-level batch (uint8 frames)."""

  box_source: Any
  max_boxes: int
  video_names: tuple[str, ...]

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    b, n = batch["frames"].shape[:2]
    out = {
      "boxes": np.zeros((b, n, self.max_boxes, 4), np.float32),
      "box_scores": np.zeros((b, n, self.max_boxes), np.float32),
      "box_valid": np.zeros((b, n, self.max_boxes), bool),
    }
    for i in np.flatnonzero(batch["valid"]):  # one call per clip, whole-frame operations
      video = self.video_names[int(batch["video_index"][i])]
      found = self.box_source(batch["frames"][i], video=video, frame_indices=batch["frame_index"][i])
      out["boxes"][i], out["box_scores"][i], out["box_valid"][i] = found.boxes, found.scores, found.valid
    return {**batch, **out}
