"""Video in and out for the detector: frames read as they are needed, and written as they
are produced.

Sources: a video file (anything PyAV decodes) or a stream PyAV opens (``rtsp://``,
``http(s)://``, ``udp://``, ``tcp://``, ``srt://``, ``rtmp://`` URLs; a capture device such
as ``/dev/video0``) give uint8 ``[H, W, 3]`` RGB frames; a folder of images (sorted by
name) gives each file's encoded bytes (``windows.EncodedFrame``), decoded for the model
by the input pipeline's own path; a folder of video files is a batch of videos
(``video_files``). None holds more than the frame at hand in memory.
"""

import os
import pathlib
import warnings
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from vad_jax.tfds_builders import common as builder_common
from vad_jax.tfds_builders import video as video_lib
from vad_jax.video import windows

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".ts", ".wmv", ".flv"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_FPS = 25.0  # frame folders carry no rate


def is_stream(source: str | os.PathLike) -> bool:
  """A URL or capture device (not a file or folder)."""
  text = os.fspath(source)
  return text.startswith(STREAM_SCHEMES) or text.startswith("/dev/video")


def video_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """The video files of a folder, sorted by name (none for a frame folder)."""
  return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("._"))


def frame_rate(source: str | os.PathLike) -> float:
  """Frames per second of a video file (its container's), else ``DEFAULT_FPS``."""
  if is_stream(source) or pathlib.Path(source).is_dir():
    return DEFAULT_FPS
  return video_lib.probe(source).fps or DEFAULT_FPS


def read_stream(url: str) -> Iterator[tuple[np.ndarray, float | None]]:
  """Frames of a network stream or capture device as they arrive (until it ends), each
  with its presentation time in seconds (``None`` where the stream gives none)."""
  try:
    container = av.open(url, format="v4l2" if url.startswith("/dev/video") else None)
  except (av.FFmpegError, OSError) as error:
    raise video_lib.VideoDecodeError(url, f"cannot open the stream ({error})") from error
  with container:
    try:
      for frame in container.decode(video=0):
        yield frame.to_ndarray(format="rgb24"), frame.time
    except av.FFmpegError as error:
      raise video_lib.VideoDecodeError(url, f"the stream failed ({error})") from error


class VideoWriter:
  """Writes uint8 RGB frames one at a time at ``fps`` (H.264 for ``.mp4``, MPEG-4 Part 2
  for ``.avi``); odd sizes are cropped by one pixel."""

  def __init__(self, path: str | os.PathLike, fps: float):
    self.path = pathlib.Path(path)
    self.fps = fps
    # Written under a hidden name and renamed when complete: a failed run leaves nothing.
    self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
    self._container = av.open(os.fspath(self._partial), mode="w")
    self._stream = None

  def write(self, frame: np.ndarray) -> None:
    frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
    if self._stream is None:
      codec = "libx264" if self.path.suffix.lower() == ".mp4" else "mpeg4"
      self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
      self._stream.width, self._stream.height, self._stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
      if codec == "libx264":
        self._stream.options = {"preset": "veryfast", "crf": "20"}
      else:
        self._stream.bit_rate = 2_000_000
    for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
      self._container.mux(packet)

  def close(self) -> None:
    """Finishes the file and gives it its name."""
    if self._stream is not None:
      for packet in self._stream.encode():
        self._container.mux(packet)
    self._container.close()
    os.replace(self._partial, self.path)

  def discard(self) -> None:
    """Drops what was written."""
    try:
      self._container.close()
    finally:
      self._partial.unlink(missing_ok=True)

  def __enter__(self) -> "VideoWriter":
    return self

  def __exit__(self, exc_type, exc, traceback) -> None:
    if exc_type is None:
      self.close()
    else:
      self.discard()


def frame_files(folder: pathlib.Path) -> list[pathlib.Path]:
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))
  if not files:
    raise FileNotFoundError(f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
  return files


class IncompleteVideoWarning(UserWarning):
  """A video file held fewer decodable frames than its container promised."""


def check_source(path: str | os.PathLike) -> None:
  """Raises before any model work if ``path`` is neither a frame folder with frames,
  a folder of videos nor a video file whose container opens (streams are opened when
  read)."""
  if is_stream(path):
    return
  path = pathlib.Path(path)
  if path.is_dir():
    if not video_files(path):
      frame_files(path)
  elif not path.exists():
    raise FileNotFoundError(f"no video file or frame folder at {path}")
  else:
    video_lib.probe(path)


def read_video(source: str | os.PathLike) -> Iterator[windows.Frame]:
  """The frames of a video file or stream (uint8 ``[H, W, 3]``) or a frame folder (the
  files' encoded bytes, ``windows.EncodedFrame``), in order (``read_timed`` without the
  times)."""
  for frame, _ in read_timed(source):
    yield frame


def read_timed(source: str | os.PathLike) -> Iterator[tuple[windows.Frame, float | None]]:
  """``(frame, seconds)`` of every frame of a video file, stream or frame folder, in
  order: the time is the frame's presentation timestamp in the container or stream, and
  ``None`` for a frame folder (it has no clock).

  A video file that ends early (truncated, or a decoding error after some frames) gives
  the frames that decode and an ``IncompleteVideoWarning`` saying how many the
  container promised. A video file or frame folder whose frames change size part-way
  raises ``FrameSizeError`` naming the file (or frame file) and both sizes: resized to
  the model's input, they would be scored as one scene (a stream may change size).
  """
  if is_stream(source):
    yield from read_stream(os.fspath(source))
    return
  path = pathlib.Path(source)
  if path.is_dir():
    first_size = None
    for f in frame_files(path):  # decoded later, by the input pipeline's path
      size = builder_common.image_size(f)
      if size is not None:
        first_size = builder_common.check_frame_size(
          first_size, size, str(f), "resize the frames to one size, or split the folder where it changes"
        )
      yield windows.EncodedFrame(f.read_bytes(), str(f)), None
    return
  check_source(path)
  promised = video_lib.probe(path).num_frames
  decoded, problem = 0, ""
  try:
    for frame, time in video_lib.iter_frames(path, check_count=False, with_times=True, one_size=True):
      decoded += 1
      yield frame, time
  except video_lib.VideoDecodeError as error:
    if decoded == 0:
      raise
    problem = f" ({error})"
  if problem or (promised and promised - decoded > video_lib.count_tolerance(promised)):
    warnings.warn(
      f"{path}: the container promises {promised} frames, {decoded} could be decoded{problem}; only those are scored",
      IncompleteVideoWarning,
      stacklevel=2,
    )
