"""UCF-Crime: 1,900 real surveillance videos, weakly labelled for training.

Manual download. The builder reads whatever layout the user extracted into the manual
dir (the four `Anomaly-Videos-Part-*` archives plus the normal-video archives, the
single `UCF_Crimes/Videos/<Class>/` tree, or a mirror that nests a part folder twice):
videos are found by globbing `**/*_x264.mp4`, never by fixed folder names, and the
split lists and the temporal annotation file are found by name anywhere in the tree.

Labels:
* train: only the video label is known (the class folder), so every frame label is -1;
  `video_label` is 0 for `Normal_Videos...` and 1 otherwise.
* test: frame labels come from the temporal annotation file (up to two segments per
  video, `-1` for none), read with the config's `frame_numbering`: `zero_based`
  (default; frame numbers are 0-based inclusive, as RTFM's evaluation reads them) or
  `one_based` (1-based inclusive, as the dataset authors' MATLAB evaluation reads them;
  2 frames per segment differ). See README.md for both sources.

Input problems are never silent; see `plan_dataset` for what is skipped and why.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import functools
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
# The same annotations under the name of the authors' repository and of the single
# `UCF_Crimes/` tree (`Temporal_Anomaly_Annotation_For_Testing_Videos/Txt_formate/`).
ANNOTATION_FILES = (ANNOTATION_FILE, "Temporal_Anomaly_Annotation.txt")
VIDEO_GLOB = "**/*_x264.mp4"

ZERO_BASED = "zero_based"
ONE_BASED = "one_based"
FRAME_NUMBERINGS = {
  ZERO_BASED: "0-based inclusive (as RTFM's evaluation reads them)",
  ONE_BASED: "1-based inclusive (as the dataset authors' MATLAB evaluation reads them)",
}

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
manual dir (`<manual_dir>/ucf_crime/` by default). Accepted layouts (files are found by
name anywhere under the manual dir, in any folder structure):
  * the videos, `*_x264.mp4`: the archives `Anomaly-Videos-Part-1..4.zip`,
    `Training-Normal-Videos-Part-1/2.zip` and `Testing_Normal_Videos.zip` extracted side
    by side (a part nested twice is fine), or the single `UCF_Crimes/Videos/<Class>/` tree;
  * `{TRAIN_LIST}` (from `UCF_Crimes-Train-Test-Split.zip`, or `UCF_Crimes/Anomaly_Detection_splits/`);
  * the temporal annotations, named `{ANNOTATION_FILES[0]}` (the download page),
    or `{ANNOTATION_FILES[1]}` (the authors' repository, and
    `UCF_Crimes/Temporal_Anomaly_Annotation_For_Testing_Videos/Txt_formate/`);
  * optional: `{TEST_LIST}`; without it the test videos are the 290 the annotation file names.
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
  # Which files were read (relative to the manual dir; `test_list` is None when the
  # test videos came from the annotation file), and how many inputs of each kind.
  sources: dict[str, str | None] = dataclasses.field(default_factory=dict)
  counts: dict[str, int] = dataclasses.field(default_factory=dict)


def walk_files(root: epath.PathLike) -> list[epath.Path]:
  """Every file under `root` (following links), junk excluded, in sorted path order.

  `os.walk` rather than `epath.glob("**/...")`, which epath refuses for recursion.
  """
  found = []
  for folder, dirs, files in os.walk(os.fspath(root), followlinks=True):
    dirs[:] = sorted(d for d in dirs if not common.is_junk(d))
    found.extend(epath.Path(folder) / f for f in files if not common.is_junk(f))
  return sorted(found, key=os.fspath)


def _find_one(
  files: Sequence[epath.Path], root: epath.Path, names: str | Sequence[str], *, required: bool = True
) -> epath.Path | None:
  """The file named one of ``names`` anywhere under ``root`` (copies must agree)."""
  names = (names,) if isinstance(names, str) else tuple(names)
  matches = [p for p in files if p.name in names]
  if not matches:
    if not required:
      return None
    raise common.ManualDataError(
      f"Missing {' or '.join(names)} anywhere under {root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  # Copies that differ only in line ends or blanks count as one.
  texts = {tuple(p.read_text(encoding="utf-8-sig").split()) for p in matches}
  if len(texts) > 1:
    raise common.ManualDataError(
      f"Found {len(matches)} different copies of {' / '.join(names)}: "
      + ", ".join(map(os.fspath, matches))
      + ". Keep one."
    )
  return sorted(matches, key=lambda p: (names.index(p.name), os.fspath(p)))[0]


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


def _to_zero_based(segments: tuple[tuple[int, int], ...], frame_numbering: str) -> tuple[tuple[int, int], ...]:
  """Annotation segments as 0-based inclusive frame ranges under ``frame_numbering``.

  ``one_based`` reads ``[a, b]`` as MATLAB's ``GT(max(a, 1):b) = 1``, i.e. 0-based
  frames ``max(a, 1) - 1 .. b - 1``.
  """
  if frame_numbering == ZERO_BASED:
    return segments
  if frame_numbering == ONE_BASED:
    return tuple((max(a, 1) - 1, b - 1) for a, b in segments)
  raise ValueError(f"frame_numbering must be one of {sorted(FRAME_NUMBERINGS)}, got {frame_numbering!r}.")


def plan_dataset(root: epath.PathLike, frame_numbering: str = ZERO_BASED) -> Plan:
  """Reads the split lists and annotations under `root` and matches them with videos.

  Decisions (also in README.md and the dataset description):
  * the test videos are those of `Anomaly_Test.txt`; without that file, those the
    annotation file names (it names all 290);
  * a listed video absent from disk is skipped (reason `missing_video`);
  * a test video without a temporal annotation is skipped (`unannotated_test_video`):
    its frame labels are unknown;
  * notes, not skips: annotated videos absent from the test list
    (`annotated_not_in_test_list`), files in no split list (`unlisted_video`),
    duplicate files (`duplicate_file`, first sorted path used), annotation classes that
    disagree with the name (`annotation_class_mismatch`, the name wins).
  """
  if frame_numbering not in FRAME_NUMBERINGS:
    raise ValueError(f"frame_numbering must be one of {sorted(FRAME_NUMBERINGS)}, got {frame_numbering!r}.")
  root = epath.Path(root)
  files = walk_files(root)
  train_path = _find_one(files, root, TRAIN_LIST)
  test_path = _find_one(files, root, TEST_LIST, required=False)
  annotation_path = _find_one(files, root, ANNOTATION_FILES)
  annotations = parse_temporal_annotations(annotation_path.read_text(encoding="utf-8-sig"))
  lists = {"train": parse_split_list(train_path.read_text(encoding="utf-8-sig"))}
  if test_path is not None:
    lists["test"] = parse_split_list(test_path.read_text(encoding="utf-8-sig"))
  else:
    lists["test"] = list(annotations)
  # The glob `**/*_x264.mp4`, files only: DCSASS-style folders named `*_x264.mp4` are
  # not videos.
  paths = [p for p in files if fnmatch.fnmatch(p.name, VIDEO_GLOB.rsplit("/", 1)[-1])]
  if not paths:
    raise common.ManualDataError(f"No *_x264.mp4 video under {root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  on_disk, duplicates = index_videos(paths)
  overlap = sorted(set(lists["train"]) & set(lists["test"]))
  if overlap:
    raise ValueError(f"Videos in both {TRAIN_LIST} and the test list: {overlap[:10]}.")

  relative = lambda p: os.path.relpath(os.fspath(p), os.fspath(root))
  plan = Plan(splits={}, skipped=[], notes=collections.defaultdict(list))
  plan.sources = {
    "train_list": relative(train_path),
    "test_list": relative(test_path) if test_path is not None else None,
    "annotations": relative(annotation_path),
  }
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
        segments = _to_zero_based(annotations[name].segments, frame_numbering)
      entries.append(
        VideoEntry(
          name=name, path=on_disk[name], class_name=class_name, video_label=int(class_name != NORMAL), segments=segments
        )
      )
    plan.splits[split] = entries
  plan.notes["annotated_not_in_test_list"] = sorted(set(annotations) - set(lists["test"]))
  plan.notes["unlisted_video"] = sorted(set(on_disk) - set(lists["train"]) - set(lists["test"]))
  plan.notes = {k: v for k, v in plan.notes.items() if v}
  plan.counts = {
    "listed_train_videos": len(lists["train"]),
    "listed_test_videos": len(lists["test"]),
    "annotated_videos": len(annotations),
    "annotated_segments": sum(len(a.segments) for a in annotations.values()),
    "video_files": len(paths),
    "distinct_videos_on_disk": len(on_disk),
    **{f"skipped_{reason}": n for reason, n in collections.Counter(r for _, _, r in plan.skipped).items()},
    **{f"noted_{note}": len(names) for note, names in plan.notes.items()},
  }
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


@dataclasses.dataclass(eq=False)
class UcfCrimeConfig(common.VideoConfig):
  """``frame_numbering``: how the annotation's frame numbers are read: ``"zero_based"``
  (0-based inclusive, as RTFM's evaluation; the default) or ``"one_based"`` (1-based
  inclusive, as the dataset authors' MATLAB evaluation). frame_size / frame_stride: see
  VideoConfig."""

  frame_numbering: str = ZERO_BASED

  def __post_init__(self):
    super().__post_init__()
    if self.frame_numbering not in FRAME_NUMBERINGS:
      raise ValueError(f"frame_numbering must be one of {sorted(FRAME_NUMBERINGS)}, got {self.frame_numbering!r}.")


DEFAULT = UcfCrimeConfig(
  name="default", description="Native 320x240 frames, all frames (30 fps); annotation frames read 0-based."
)
DEFAULT_ONE_BASED = UcfCrimeConfig(
  name="default_one_based",
  frame_numbering=ONE_BASED,
  description="Native 320x240 frames, all frames (30 fps); annotation frames read 1-based (authors' MATLAB code).",
)
STRIDE30_112 = UcfCrimeConfig(
  name="stride30_112",
  frame_size=(112, 112),
  frame_stride=30,
  description="Every 30th frame (1 fps), resized to 112x112 (aspect not kept).",
)


class Builder(common.FrameBuilder):
  """UCF-Crime frames with weak (train) and temporal (test) labels."""

  # Accepting more layouts and recording more metadata left the records of 1.0.0 as they
  # were, so the version (and the folder prepared data live in) is unchanged.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [DEFAULT, DEFAULT_ONE_BASED, STRIDE30_112]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  OPTIONAL_KEYS = ("class_name", "video_label")
  HOMEPAGE = "https://www.crcv.ucf.edu/projects/real-world/"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config: UcfCrimeConfig = self.builder_config
    numbering = getattr(config, "frame_numbering", ZERO_BASED)
    plan = plan_dataset(dl_manager.manual_dir, numbering)
    metadata = self.info.metadata
    common.empty_metadata(metadata, plan.splits)
    for split, name, reason in plan.skipped:
      common.record_skip(metadata, split, name, reason)
    metadata["notes"] = {key: list(names) for key, names in plan.notes.items()}
    metadata["notes"]["segment_past_end"] = _segments_past_end(plan.splits.get("test", []))
    metadata["sources"] = dict(plan.sources)
    metadata["frame_numbering"] = numbering
    metadata["counts"]["inputs"] = dict(plan.counts, noted_segment_past_end=len(metadata["notes"]["segment_past_end"]))
    _log(plan)
    test_list = plan.sources["test_list"] or f"the videos named in {plan.sources['annotations']} ({TEST_LIST} absent)"
    self.record_source(
      layout=(
        f"videos found by {VIDEO_GLOB}; train list {plan.sources['train_list']}; test list {test_list}; "
        f"annotations {plan.sources['annotations']}"
      ),
      labels=(
        "train: video labels only (frame label -1); test: frame labels from the temporal annotations "
        f"({plan.sources['annotations']}), frame numbers read {FRAME_NUMBERINGS[numbering]}"
      ),
    )
    return {split: self._generate_examples(split, entries) for split, entries in plan.splits.items()}

  def _generate_examples(self, split: str, entries: Sequence[VideoEntry]):
    config: common.VideoConfig = self.builder_config
    jobs = [
      common.VideoJob(entry.name, functools.partial(_frames, entry, config), label=entry.video_label)
      for entry in entries
    ]
    return self.split_records(split, jobs)


def _segments_past_end(entries: Sequence[VideoEntry]) -> list[str]:
  """Test videos whose annotated segments end after their last frame (by the container's
  count; a video that cannot be opened is left to the decoding to report)."""
  names = []
  for entry in entries:
    if not entry.segments:
      continue
    try:
      last = video_lib.probe(entry.path).num_frames - 1
    except video_lib.VideoDecodeError:
      continue
    if last >= 0 and any(end > last for _, end in entry.segments):
      names.append(entry.name)
  return names


def _frames(entry: VideoEntry, config: common.VideoConfig):
  stride = config.frame_stride
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
