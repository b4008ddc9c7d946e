"""Video files in and out, with PyAV.

Reading (``iter_frames`` / ``read_frames``) decodes every frame as uint8 RGB, keeps every
``stride``-th one, optionally resizes it, and then checks the number of frames it
decoded against the number the container reports. A video that cannot be opened or
decoded raises ``VideoDecodeError`` naming the file; a count that disagrees raises
``FrameCountError`` naming the file and both counts.

Count tolerance: decoders commonly lose or gain one frame at the end of a stream (a
last frame flushed or not, an edit list rounded), so a difference of
``count_tolerance(reported)`` = max(1, 1% of the reported count) frames is accepted.
Anything larger means frames were dropped or duplicated, which shifts every frame
label after the damage, so it is an error. Datasets whose labels must line up with
the frames exactly (Avenue) compare the decoded count with the label count as well.

When the container reports no count (``stream.frames == 0``, e.g. some raw streams),
the count is estimated from the stream (or container) duration and the average frame
rate and checked with a looser max(tolerance, 2%); when neither is known the check is
skipped.

Writing (``write_video``) is for test fixtures: tiny AVI (MPEG-4 Part 2) or MP4
(H.264) files from a uint8 array.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from collections.abc import Generator

import av
import numpy as np

from . import common


class VideoDecodeError(common.DecodeError):
  """A video that cannot be opened or decoded. ``path`` is the file."""

  def __init__(self, path: os.PathLike | str, detail: str):
    super().__init__(path, f"Cannot decode video {os.fspath(path)}: {detail}")
    self.detail = detail


class FrameCountError(VideoDecodeError):
  """Decoded frame count disagrees with the container's beyond the tolerance."""

  def __init__(self, path: os.PathLike | str, decoded: int, reported: int, tolerance: int):
    self.decoded = decoded
    self.reported = reported
    super().__init__(
      path,
      f"decoded {decoded} frames but the container reports {reported} "
      f"(tolerance {tolerance}); frames were dropped or duplicated",
    )


def count_tolerance(reported: int) -> int:
  """Accepted |decoded - reported| difference: max(1, 1% of ``reported``)."""
  return max(1, int(0.01 * reported))


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What the container says about its first video stream.

  ``num_frames`` is the container's count (0 if unknown), ``estimated`` tells if it
  was derived from duration x frame rate instead.
  """

  path: str
  num_frames: int
  height: int
  width: int
  fps: float
  estimated: bool = False


def _stream_info(path: str, container: av.container.InputContainer) -> VideoInfo:
  if not container.streams.video:
    raise VideoDecodeError(path, "no video stream")
  stream = container.streams.video[0]
  fps = float(stream.average_rate or stream.guessed_rate or 0)
  num_frames, estimated = int(stream.frames or 0), False
  if num_frames == 0 and fps > 0:
    if stream.duration is not None and stream.time_base is not None:
      seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
      seconds = container.duration / av.time_base
    else:
      seconds = 0.0
    num_frames, estimated = int(round(seconds * fps)), True
  return VideoInfo(
    path=path,
    num_frames=num_frames,
    height=stream.codec_context.height,
    width=stream.codec_context.width,
    fps=fps,
    estimated=estimated,
  )


def _open(path: str) -> av.container.InputContainer:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No such video file: {path}")
  try:
    return av.open(path)
  except (av.FFmpegError, ValueError, UnicodeDecodeError) as error:
    raise VideoDecodeError(path, f"cannot open ({error})") from error


def probe(path: os.PathLike | str) -> VideoInfo:
  """Reported frame count, size and frame rate of ``path``, without decoding."""
  path = os.fspath(path)
  with _open(path) as container:
    return _stream_info(path, container)


def iter_frames(
  path: os.PathLike | str,
  *,
  stride: int = 1,
  size: tuple[int, int] | None = None,
  check_count: bool = True,
  with_times: bool = False,
  one_size: bool = False,
) -> Generator[np.ndarray | tuple[np.ndarray, float | None], None, int]:
  """Yields frames 0, stride, 2 * stride, ... of ``path`` as uint8 ``[H, W, 3]`` RGB
  (with ``with_times``: ``(frame, seconds)`` from the frame's presentation timestamp, or
  ``None`` where the container gives none).

  The generator returns the number of frames decoded (before striding), so a caller
  that needs it writes ``decoded = yield from iter_frames(...)``.

  Args:
    path: the video file.
    stride: keep every ``stride``-th frame; all frames are decoded (and counted)
      regardless.
    size: ``(height, width)`` to resize to (``common.resize_frame``), None = native.
    check_count: compare the decoded count with the container's at the end.
    one_size: refuse a video whose frames change size part-way (before resizing).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    VideoDecodeError: the file cannot be opened or decoded, or holds no frame.
    FrameCountError: the decoded count is off by more than ``count_tolerance``;
      raised after the last frame was yielded, so buffer frames if that matters.
    common.FrameSizeError: with ``one_size``, a frame whose size differs from the
      first's (not a ``VideoDecodeError``: the frames before it are not kept).
  """
  if stride < 1:
    raise ValueError(f"stride must be >= 1, got {stride}.")
  path = os.fspath(path)
  container = _open(path)
  try:
    info = _stream_info(path, container)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    decoded, first_size = 0, None
    try:
      for frame in container.decode(stream):
        if one_size:
          first_size = common.check_frame_size(
            first_size,
            (frame.width, frame.height),
            f"{path}: frame {decoded}",
            "re-encode the video at one size, or cut it where the size changes",
          )
        if decoded % stride == 0:
          pixels = common.resize_frame(frame.to_ndarray(format="rgb24"), size)
          yield (pixels, frame.time) if with_times else pixels
        decoded += 1
    except common.FrameSizeError:
      raise
    except (av.FFmpegError, ValueError) as error:
      raise VideoDecodeError(path, f"decoding failed after {decoded} frames ({error})") from error
  finally:
    container.close()
  if decoded == 0:
    raise VideoDecodeError(path, "no frame could be decoded")
  if check_count and info.num_frames > 0:
    tolerance = count_tolerance(info.num_frames)
    if info.estimated:
      tolerance = max(tolerance, int(math.ceil(0.02 * info.num_frames)))
    if abs(decoded - info.num_frames) > tolerance:
      raise FrameCountError(path, decoded, info.num_frames, tolerance)
  return decoded


def read_frames(
  path: os.PathLike | str,
  *,
  stride: int = 1,
  size: tuple[int, int] | None = None,
  check_count: bool = True,
) -> np.ndarray:
  """All (strided) frames of ``path`` as one uint8 ``[T, H, W, 3]`` array.

  See ``iter_frames`` for the arguments and errors. Holds the whole video in memory;
  builders stream with ``iter_frames`` instead.
  """
  frames = list(iter_frames(path, stride=stride, size=size, check_count=check_count))
  return np.stack(frames)


_CODECS = {".avi": "mpeg4", ".mp4": "libx264", ".mkv": "libx264"}


def write_video(
  path: os.PathLike | str,
  frames: np.ndarray,
  *,
  fps: int = 25,
  codec: str | None = None,
) -> None:
  """Writes uint8 ``[T, H, W, 3]`` frames (even H and W) to ``path``, for fixtures.

  The codec follows the extension: ``.avi`` -> MPEG-4 Part 2 (the Xvid family the
  AVI datasets use), ``.mp4`` -> H.264 (as UCF-Crime and DCSASS).
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}.")
  t, h, w, _ = frames.shape
  if h % 2 or w % 2:
    raise ValueError(f"Height and width must be even for yuv420p, got {h}x{w}.")
  path = os.fspath(path)
  codec = codec or _CODECS.get(os.path.splitext(path)[1].lower(), "mpeg4")
  with av.open(path, mode="w") as container:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if codec == "libx264":
      stream.options = {"preset": "ultrafast", "crf": "18"}
    else:
      stream.bit_rate = 2_000_000
    for i in range(t):
      for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i], format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def set_avi_frame_count(path: os.PathLike | str, count: int) -> None:
  """Rewrites the frame count an AVI's headers report (``avih`` and the first ``strh``).

  For fixtures only: makes a file whose container count disagrees with its content,
  as damaged real files do.
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    data = bytearray(f.read())
  avih, strh = data.find(b"avih"), data.find(b"strh")
  if avih < 0 or strh < 0:
    raise ValueError(f"{path} has no AVI main/stream header.")
  # Chunk id (4) + size (4), then dwTotalFrames at offset 16 of avih and dwLength at
  # offset 32 of strh.
  data[avih + 24 : avih + 28] = struct.pack("<I", count)
  data[strh + 40 : strh + 44] = struct.pack("<I", count)
  with open(path, "wb") as f:
    f.write(data)
