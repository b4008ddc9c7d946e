"""Frame labels of the user's test footage: per-frame labels or anomalous intervals.

Three files are read from ``test/`` when present (all optional):

* ``labels.csv``: one labelled frame per row, header ``video,frame,label``; ``label`` is
  0 (normal) or 1 (anomalous). Frames of the video without a row stay unknown (-1).
* ``intervals.csv``: one anomalous interval per row, header
  ``video,first_frame,last_frame`` (inclusive). Every frame of a video named here is
  labelled: 1 inside its intervals, 0 elsewhere. A row with both frame fields empty
  (``quiet_night.mp4,,``) labels a video normal throughout.
* ``intervals.txt``: the same as ``intervals.csv`` without a header, one
  ``video first_frame last_frame`` (or ``video`` alone: normal throughout) per line,
  separated by spaces; ``#`` starts a comment, names with spaces go in quotes.

Frames are numbered from 0 in each video's own order (the numbers ``detect`` prints),
before any ``frame_stride``. ``video`` is the video's name (file name without its
extension, or the frame folder's name) or its file name. Blank lines are skipped, as are
CSV lines starting with ``#``; extra CSV columns are ignored. A video's labels come from
one file: a video named in ``labels.csv`` and in an interval file is an error.

Every problem raises ``LabelFileError`` with the file and the line: a missing header, a
field that is not a frame number or a 0/1 label, a reversed interval, two rows giving
one frame different labels, a video that is not in ``test/``, a frame past the end of
its video.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shlex
from collections.abc import Iterator, Mapping

LABELS_CSV = "labels.csv"
INTERVALS_CSV = "intervals.csv"
INTERVALS_TXT = "intervals.txt"
LABEL_FILES = (LABELS_CSV, INTERVALS_CSV, INTERVALS_TXT)

FRAME_COLUMNS = ("video", "frame", "label")
INTERVAL_COLUMNS = ("video", "first_frame", "last_frame")


class LabelFileError(ValueError):
  """A label file that cannot be used. ``path`` is the file, ``line`` its 1-based line
  (None when the problem is the file as a whole)."""

  def __init__(self, path: os.PathLike | str, line: int | None, message: str):
    self.path, self.line = os.fspath(path), line
    super().__init__(f"{self.path}{f', line {line}' if line else ''}: {message}")


@dataclasses.dataclass
class VideoLabels:
  """The labels one file gives a video.

  ``frames``: frame -> (label, line) from ``labels.csv``; ``intervals``: (first, last,
  line) from an interval file, where frames outside every interval are normal.
  """

  path: str
  kind: str  # "frames" or "intervals"
  line: int  # first line naming the video
  frames: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
  intervals: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)

  def last_frame(self) -> tuple[int, int]:
    """The highest frame number given and its line (``(-1, line)`` for a normal video)."""
    points = [(f, line) for f, (_, line) in self.frames.items()] + [(last, line) for _, last, line in self.intervals]
    return max(points, default=(-1, self.line))

  def check_within(self, num_frames: int, video: str, what: str = "frames") -> None:
    """``LabelFileError`` at the line of the first frame number past ``num_frames``."""
    last, line = self.last_frame()
    if last >= num_frames:
      raise LabelFileError(
        self.path,
        line,
        f"frame {last} of video {video!r} is past its end: it has {num_frames} {what} (frames are numbered from 0)",
      )

  def label(self, frame: int) -> int:
    """The label of frame number ``frame``: 1, 0, or -1 (not labelled)."""
    if self.kind == "frames":
      return self.frames.get(frame, (-1, 0))[0]
    return int(any(first <= frame <= last for first, last, _ in self.intervals))


def read_test_labels(folder: os.PathLike | str, videos: Mapping[str, str]) -> dict[str, VideoLabels]:
  """The labels of the videos in ``folder`` (``test/``), by video name.

  Args:
    folder: the folder holding the label files (any of ``LABEL_FILES``).
    videos: every accepted way to name a video (name, file name) -> its name.

  Raises:
    LabelFileError: see the module doc.
  """
  folder = os.fspath(folder)
  paths = {name: os.path.join(folder, name) for name in LABEL_FILES if os.path.isfile(os.path.join(folder, name))}
  if INTERVALS_CSV in paths and INTERVALS_TXT in paths:
    raise LabelFileError(
      paths[INTERVALS_TXT], None, f"{INTERVALS_CSV} is there too; give the intervals in one of the two files"
    )
  labels: dict[str, VideoLabels] = {}
  readers = {LABELS_CSV: _read_frame_csv, INTERVALS_CSV: _read_interval_csv, INTERVALS_TXT: _read_interval_txt}
  for name, path in paths.items():
    for video, given in readers[name](path, videos).items():
      if video in labels:
        first = labels[video]
        raise LabelFileError(
          path,
          given.line,
          f"video {video!r} already has labels in {first.path} (line {first.line}); give each video's labels "
          f"in one file",
        )
      labels[video] = given
  return labels


# ------------------------------------------------------------------------ parsing


def _video(path: str, line: int, reference: str, videos: Mapping[str, str]) -> str:
  if not reference:
    raise LabelFileError(path, line, "the video field is empty")
  if reference not in videos:
    names = sorted(set(videos.values()))
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} videos)" if len(names) > 10 else "")
    raise LabelFileError(
      path,
      line,
      f"no video {reference!r} in {os.path.dirname(path)} (its videos: {shown or 'none'})",
    )
  return videos[reference]


def _frame_number(path: str, line: int, field: str, text: str) -> int:
  if not text.isdigit():
    raise LabelFileError(path, line, f"{field} must be a frame number (0, 1, 2, ...), got {text!r}")
  return int(text)


def _csv_rows(path: str, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
  """``(line, {column: stripped text})`` for each data row of a CSV file with a header."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      header = None
      for row in reader:
        line = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
          continue
        if header is None:
          header = [cell.lower() for cell in cells]
          missing = [c for c in columns if c not in header]
          if missing:
            raise LabelFileError(
              path,
              line,
              f"the first line must be the header {','.join(columns)} (missing {', '.join(missing)}; found "
              f"{','.join(row)!r})",
            )
          continue
        if len(cells) != len(header):
          raise LabelFileError(
            path, line, f"expected {len(header)} fields ({','.join(header)}), got {len(cells)}: {','.join(row)!r}"
          )
        yield line, dict(zip(header, cells))
  except UnicodeDecodeError as error:
    raise LabelFileError(path, None, f"not UTF-8 text ({error})") from error
  except csv.Error as error:
    raise LabelFileError(path, None, f"not a readable CSV file ({error})") from error


def _read_frame_csv(path: str, videos: Mapping[str, str]) -> dict[str, VideoLabels]:
  labels: dict[str, VideoLabels] = {}
  for line, row in _csv_rows(path, FRAME_COLUMNS):
    video = _video(path, line, row["video"], videos)
    frame = _frame_number(path, line, "frame", row["frame"])
    if row["label"] not in ("0", "1"):
      raise LabelFileError(path, line, f"label must be 0 (normal) or 1 (anomalous), got {row['label']!r}")
    label = int(row["label"])
    given = labels.setdefault(video, VideoLabels(path, "frames", line))
    if frame in given.frames and given.frames[frame][0] != label:
      raise LabelFileError(
        path,
        line,
        f"frame {frame} of video {video!r} is labelled {label} here and {given.frames[frame][0]} on line "
        f"{given.frames[frame][1]}",
      )
    given.frames.setdefault(frame, (label, line))
  return labels


def _add_interval(
  labels: dict[str, VideoLabels], path: str, line: int, video: str, first: str | None, last: str | None
) -> None:
  given = labels.setdefault(video, VideoLabels(path, "intervals", line))
  if not first and not last:
    return  # labelled normal throughout
  if not first or not last:
    raise LabelFileError(
      path, line, "give both first_frame and last_frame (or neither, for a video that is normal throughout)"
    )
  first_frame = _frame_number(path, line, "first_frame", first)
  last_frame = _frame_number(path, line, "last_frame", last)
  if first_frame > last_frame:
    raise LabelFileError(path, line, f"the interval {first_frame}-{last_frame} ends before it starts")
  given.intervals.append((first_frame, last_frame, line))


def _read_interval_csv(path: str, videos: Mapping[str, str]) -> dict[str, VideoLabels]:
  labels: dict[str, VideoLabels] = {}
  for line, row in _csv_rows(path, INTERVAL_COLUMNS):
    video = _video(path, line, row["video"], videos)
    _add_interval(labels, path, line, video, row["first_frame"], row["last_frame"])
  return labels


def _read_interval_txt(path: str, videos: Mapping[str, str]) -> dict[str, VideoLabels]:
  labels: dict[str, VideoLabels] = {}
  try:
    with open(path, encoding="utf-8-sig") as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as error:
    raise LabelFileError(path, None, f"not UTF-8 text ({error})") from error
  for line, text in enumerate(lines, start=1):
    try:
      fields = shlex.split(text, comments=True)
    except ValueError as error:
      raise LabelFileError(path, line, f"cannot split {text!r} into fields ({error})") from error
    if not fields:
      continue
    if len(fields) not in (1, 3):
      raise LabelFileError(
        path,
        line,
        f"expected 'video first_frame last_frame' (or 'video' alone: normal throughout), got {len(fields)} "
        f"fields: {text.strip()!r}",
      )
    video = _video(path, line, fields[0], videos)
    first, last = (fields[1], fields[2]) if len(fields) == 3 else (None, None)
    _add_interval(labels, path, line, video, first, last)
  return labels
