"""UCF-Crime: 1,900 real surveillance videos, weakly labelled for training.

Manual download. The builder reads whatever layout the user extracted into the manual
dir (the four `Anomaly-Videos-Part-*` archives plus the normal-video archives, the
single `UCF_Crimes/Videos/<Class>/` tree, or a mirror that nests a part folder twice):
videos are found by globbing `**/*_x264.mp4`, never by fixed folder names, and the
split lists and the temporal annotation file are found by name anywhere in the tree.

Labels:
* train: only the video label is known (the class folder), so every frame label is -1;
  `video_label` is 0 for `Normal_Videos...` and 1 otherwise.
* test: frame labels come from the temporal annotation file (0-based inclusive
  segments, up to two per video, `-1` for none).

Input problems are never silent; see `plan_dataset` for what is skipped and why.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from .. import common
from .. import video as video_lib

TRAIN_LIST = "Anomaly_Train.txt"
TEST_LIST = "Anomaly_Test.txt"
ANNOTATION_FILE = "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
VIDEO_GLOB = "**/*_x264.mp4"

CLASSES = (
  "Abuse",
  "Arrest",
  "Arson",
  "Assault",
  "Burglary",
  "Explosion",
  "Fighting",
  "RoadAccidents",
  "Robbery",
  "Shooting",
  "Shoplifting",
  "Stealing",
  "Vandalism",
)
NORMAL = "Normal"

# `Normal_Videos308_x264` (training) and `Normal_Videos_003_x264` (test) are both normal.
_NORMAL_RE = re.compile(r"^Normal_Videos_?\d+_x264$")
_ANOMALY_RE = re.compile(r"^([A-Za-z]+?)(\d+)_x264$")

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download UCF-Crime (https://www.crcv.ucf.edu/projects/real-world/) and extract into the
manual dir (`<manual_dir>/ucf_crime/` by default), in any folder structure:
  * the videos, `*_x264.mp4`: `Anomaly-Videos-Part-1..4.zip`,
    `Training-Normal-Videos-Part-1/2.zip` and `Testing_Normal_Videos.zip`, or the single
    `UCF_Crimes/Videos/<Class>/` tree;
  * `{TRAIN_LIST}` and `{TEST_LIST}` (from `UCF_Crimes-Train-Test-Split.zip`);
  * `{ANNOTATION_FILE}`.
"""

# ----------------------------------------------------------------------- parsing


@dataclasses.dataclass(frozen=True)
class Annotation:
  """Temporal annotation of one test video."""

  class_name: str
  # 0-based inclusive (start, end) frame segments; empty for normal videos.
  segments: tuple[tuple[int, int], ...]


def video_name(path_or_name: str) -> str:
  """`Abuse/Abuse028_x264.mp4` or `Abuse028_x264.mp4` -> `Abuse028_x264`."""
  name = os.fspath(path_or_name).replace("\\", "/").rsplit("/", 1)[-1].strip()
  return name[:-4] if name.lower().endswith(".mp4") else name


def class_of(name: str) -> str:
  """Class of a video from its name (`Normal` for both normal-video namings)."""
  name = video_name(name)
  if _NORMAL_RE.match(name):
    return NORMAL
  match = _ANOMALY_RE.match(name)
  if not match or match.group(1) not in CLASSES:
    raise ValueError(f"Cannot tell the UCF-Crime class of video {name!r}.")
  return match.group(1)


def parse_split_list(text: str) -> list[str]:
  """Parses `Anomaly_Train.txt` / `Anomaly_Test.txt` into video names, in file order.

  Lines are `Class/Name_x264.mp4` (any line ending; surrounding blanks ignored). A name
  listed twice is an error: it would give one video two sets of records.
  """
  names, seen = [], set()
  for number, line in enumerate(text.splitlines(), start=1):
    line = line.strip()
    if not line:
      continue
    name = video_name(line)
    class_of(name)  # Validates the name.
    if name in seen:
      raise ValueError(f"Line {number}: video {name} listed twice.")
    seen.add(name)
    names.append(name)
  return names


def _parse_segment(start: str, end: str, where: str) -> tuple[int, int] | None:
  try:
    a, b = int(start), int(end)
  except ValueError:
    raise ValueError(f"{where}: frame numbers must be integers, got {start!r} {end!r}.") from None
  if a == -1 and b == -1:
    return None
  if a < 0 or b < 0 or b < a:
    raise ValueError(f"{where}: invalid segment [{a}, {b}].")
  return a, b


def parse_temporal_annotations(text: str) -> dict[str, Annotation]:
  """Parses the temporal annotation file into `{video name: Annotation}`.

  Each non-blank line has six whitespace-separated fields: video, class, start1,
  end1, start2, end2. The file uses two-space separators, trailing blanks and
  sometimes CRLF line ends, hence plain whitespace splitting.
  """
  annotations = {}
  for number, line in enumerate(text.splitlines(), start=1):
    fields = line.split()
    if not fields:
      continue
    where = f"Line {number}"
    if len(fields) != 6:
      raise ValueError(f"{where}: expected 6 fields, got {len(fields)}: {line!r}.")
    name, class_name = video_name(fields[0]), fields[1]
    segments = tuple(
      s for s in (_parse_segment(fields[2], fields[3], where), _parse_segment(fields[4], fields[5], where)) if s
    )
    if class_name == NORMAL and segments:
      raise ValueError(f"{where}: normal video {name} has anomalous segments.")
    if name in annotations:
      raise ValueError(f"{where}: video {name} annotated twice.")
    annotations[name] = Annotation(class_name=class_name, segments=segments)
  return annotations


def frame_labels(frame_numbers: Iterable[int], segments: Iterable[tuple[int, int]] | None) -> np.ndarray:
  """0/1 labels of the given (original) frame numbers; all -1 if `segments` is None."""
  numbers = np.asarray(list(frame_numbers), np.int64)
  if segments is None:
    return np.full(numbers.shape, -1, np.int32)
  labels = np.zeros(numbers.shape, np.int32)
  for start, end in segments:
    labels[(numbers >= start) & (numbers <= end)] = 1
  return labels


# ------------------------------------------------------------------------ planning


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  name: str
  path: epath.Path
  class_name: str
  video_label: int
  # 0-based inclusive segments for test videos; None where frame labels are unknown.
  segments: tuple[tuple[int, int], ...] | None


@dataclasses.dataclass
class Plan:
  """What to build: videos per split, plus every input left out and every oddity."""

  splits: dict[str, list[VideoEntry]]
  skipped: list[tuple[str, str, str]]  # (split, name, reason)
  notes: dict[str, list[str]]


def walk_files(root: epath.PathLike) -> list[epath.Path]:
  """Every file under `root` (following links), junk excluded, in sorted path order.

  `os.walk` rather than `epath.glob("**/...")`, which epath refuses for recursion.
  """
  found = []
  for folder, dirs, files in os.walk(os.fspath(root), followlinks=True):
    dirs[:] = sorted(d for d in dirs if not common.is_junk(d))
    found.extend(epath.Path(folder) / f for f in files if not common.is_junk(f))
  return sorted(found, key=os.fspath)


def _find_one(files: Sequence[epath.Path], root: epath.Path, filename: str) -> epath.Path:
  matches = [p for p in files if p.name == filename]
  if not matches:
    raise common.ManualDataError(f"Missing {filename} anywhere under {root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  # Copies that differ only in line ends or blanks count as one.
  texts = {tuple(p.read_text(encoding="utf-8-sig").split()) for p in matches}
  if len(texts) > 1:
    raise common.ManualDataError(
      f"Found {len(matches)} different copies of {filename}: " + ", ".join(map(os.fspath, matches)) + ". Keep one."
    )
  return matches[0]


def index_videos(paths: Iterable[epath.Path]) -> tuple[dict[str, epath.Path], list[str]]:
  """Maps video name -> file; names found at several paths are returned separately.

  For a name found more than once (two extracted copies of one archive), the first
  path in sorted order is used.
  """
  found: dict[str, list[epath.Path]] = collections.defaultdict(list)
  for path in paths:
    found[video_name(path.name)].append(path)
  index = {name: sorted(ps, key=os.fspath)[0] for name, ps in found.items()}
  duplicates = sorted(name for name, ps in found.items() if len(ps) > 1)
  return index, duplicates


def plan_dataset(root: epath.PathLike) -> Plan:
  """Reads the split lists and annotations under `root` and matches them with videos.

  Decisions (also in README.md and the dataset description):
  * a listed video absent from disk is skipped (reason `missing_video`);
  * a test video without a temporal annotation is skipped (`unannotated_test_video`):
    its frame labels are unknown;
  * notes, not skips: annotated videos absent from the test list
    (`annotated_not_in_test_list`), files in no split list (`unlisted_video`),
    duplicate files (`duplicate_file`, first sorted path used), annotation classes that
    disagree with the name (`annotation_class_mismatch`, the name wins).
  """
  root = epath.Path(root)
  files = walk_files(root)
  read = lambda name: _find_one(files, root, name).read_text(encoding="utf-8-sig")
  lists = {"train": parse_split_list(read(TRAIN_LIST)), "test": parse_split_list(read(TEST_LIST))}
  annotations = parse_temporal_annotations(read(ANNOTATION_FILE))
  # The glob `**/*_x264.mp4`, files only: DCSASS-style folders named `*_x264.mp4` are
  # not videos.
  paths = [p for p in files if fnmatch.fnmatch(p.name, VIDEO_GLOB.rsplit("/", 1)[-1])]
  if not paths:
    raise common.ManualDataError(f"No *_x264.mp4 video under {root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  on_disk, duplicates = index_videos(paths)
  overlap = sorted(set(lists["train"]) & set(lists["test"]))
  if overlap:
    raise ValueError(f"Videos in both {TRAIN_LIST} and {TEST_LIST}: {overlap[:10]}.")

  plan = Plan(splits={}, skipped=[], notes=collections.defaultdict(list))
  plan.notes["duplicate_file"] = duplicates
  for split, listed in lists.items():
    entries = []
    for name in sorted(listed):
      class_name = class_of(name)
      if name not in on_disk:
        plan.skipped.append((split, name, "missing_video"))
        continue
      segments = None
      if split == "test":
        if name not in annotations:
          plan.skipped.append((split, name, "unannotated_test_video"))
          continue
        if annotations[name].class_name != class_name:
          plan.notes["annotation_class_mismatch"].append(name)
        segments = annotations[name].segments
      entries.append(
        VideoEntry(
          name=name, path=on_disk[name], class_name=class_name, video_label=int(class_name != NORMAL), segments=segments
        )
      )
    plan.splits[split] = entries
  plan.notes["annotated_not_in_test_list"] = sorted(set(annotations) - set(lists["test"]))
  plan.notes["unlisted_video"] = sorted(set(on_disk) - set(lists["train"]) - set(lists["test"]))
  plan.notes = {k: v for k, v in plan.notes.items() if v}
  for split, entries in plan.splits.items():
    if not entries:
      raise common.ManualDataError(
        f"None of the {len(lists[split])} videos of the {split} list was found under "
        f"{root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
  return plan


def _log(plan: Plan) -> None:
  reasons = collections.Counter(reason for _, _, reason in plan.skipped)
  for reason, count in sorted(reasons.items()):
    logging.warning("ucf_crime: skipped %d videos (%s).", count, reason)
  for note, names in sorted(plan.notes.items()):
    logging.warning("ucf_crime: %s: %d (%s).", note, len(names), ", ".join(names[:5]))


# ------------------------------------------------------------------------- builder


DEFAULT = common.VideoConfig(name="default", description="Native 320x240 frames, all frames (30 fps).")
STRIDE30_112 = common.VideoConfig(
  name="stride30_112",
  frame_size=(112, 112),
  frame_stride=30,
  description="Every 30th frame (1 fps), resized to 112x112 (aspect not kept).",
)


class Builder(common.FrameBuilder):
  """UCF-Crime frames with weak (train) and temporal (test) labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [DEFAULT, STRIDE30_112]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  OPTIONAL_KEYS = ("class_name", "video_label")
  HOMEPAGE = "https://www.crcv.ucf.edu/projects/real-world/"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    plan = plan_dataset(dl_manager.manual_dir)
    _log(plan)
    metadata = self.info.metadata
    common.empty_metadata(metadata, plan.splits)
    for split, name, reason in plan.skipped:
      common.record_skip(metadata, split, name, reason)
    metadata["notes"] = {key: list(names) for key, names in plan.notes.items()}
    metadata["notes"]["segment_past_end"] = []
    return {split: self._generate_examples(split, entries) for split, entries in plan.splits.items()}

  def _generate_examples(self, split: str, entries: Sequence[VideoEntry]):
    config: common.VideoConfig = self.builder_config
    records = common.SplitRecords(self.info.metadata, split, num_videos=len(entries))
    for entry in entries:
      yield from records.add_video(
        entry.name,
        lambda e=entry: self._frames(e, config),
        label=entry.video_label,
        skip_undecodable=self._skip_undecodable,
      )

  def _frames(self, entry: VideoEntry, config: common.VideoConfig):
    stride = config.frame_stride
    if entry.segments:
      last = video_lib.probe(entry.path).num_frames - 1
      if any(end > last for _, end in entry.segments):
        self.info.metadata["notes"]["segment_past_end"].append(entry.name)
    frames = video_lib.iter_frames(entry.path, stride=stride, size=config.frame_size)
    # Encode while decoding: a long video never sits in memory as raw pixels.
    for i, frame in enumerate(frames):
      label = frame_labels([i * stride], entry.segments)[0]
      yield {
        "frame": common.encode_frame(frame),
        "label": int(label),
        "class_name": entry.class_name,
        "video_label": entry.video_label,
      }
