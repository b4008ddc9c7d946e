"""DCSASS: UCF-Crime videos cut into short clips, each with a 0/1 clip label.

Manual download (Kaggle). The archive extracts to `DCSASS Dataset/` with
`<Class>/<Video>_x264.mp4/<Video>_x264_<k>.mp4` (the per-video FOLDER name ends in
`.mp4`), `Labels/<Class>.csv` without a header (`clip_id,class,label`), and a
byte-identical nested copy `DCSASS Dataset/DCSASS Dataset/...` that is read once.

Each clip is one "video" of the record schema (`video` = clip id, `frame_index`
restarts at 0 per clip); records also carry `clip_id`, `clip_index` (k), `clip_label`,
`class_name`, and the frame `label` equals the clip label.

Splits are by SOURCE video by default (clips of one UCF-Crime video never straddle
train and test), stratified per class (`stratified_split`); the authors' random
clip-level split is offered as the separately named `as_published` configs.

Clip ids that contradict their place are caught (`find_misplaced_ids`): a row whose id
names another source video than the block of rows it sits in, filling a gap in that
block's numbering (`Robbery046_x264_28` among Robbery047's rows, where Robbery047 has
no clip 28), is read as the clip of the block's video (`gap_filling_id`); any other
disagreement between a clip's id, its CSV block and its file's folder skips the clip
(`inconsistent_clip_id` / `inconsistent_clip_location`). Either way no one-clip phantom
source video is created, and the split stays leak-free.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence

import tensorflow_datasets as tfds
from etils import epath

from .. import common
from .. import video as video_lib

ROOT_NAME = "DCSASS Dataset"
LABELS_DIR = "Labels"

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the DCSASS dataset from Kaggle (https://www.kaggle.com/datasets/mateohervas/dcsass-dataset)
and extract it into the manual dir (`<manual_dir>/dcsass/` by default). Accepted layout:
the extracted archive, found anywhere under the manual dir (the outermost folder holding
`{LABELS_DIR}/<Class>.csv` is read):
  `{ROOT_NAME}/{LABELS_DIR}/<Class>.csv` and `{ROOT_NAME}/<Class>/<Video>_x264.mp4/<Video>_x264_<k>.mp4`.
The nested copy `{ROOT_NAME}/{ROOT_NAME}/` that the archive contains may stay; it is ignored.
"""

# `Abuse001_x264_3`, or the defective `Abuse001_x264-3`.
_CLIP_ID_RE = re.compile(r"^(?P<video>.+_x264)(?P<sep>[-_])(?P<index>\d+)$")


# ----------------------------------------------------------------------- parsing


@dataclasses.dataclass(frozen=True)
class ClipId:
  source_video: str  # `Abuse001_x264`
  index: int  # k

  @property
  def name(self) -> str:
    return f"{self.source_video}_{self.index}"


def parse_clip_id(text: str) -> tuple[ClipId, bool]:
  """`Abuse001_x264_3` -> ClipId; the flag says the `-` separator was repaired."""
  match = _CLIP_ID_RE.match(text.strip())
  if not match:
    raise ValueError(f"Not a DCSASS clip id: {text!r} (expected <Video>_x264_<k>).")
  clip = ClipId(match.group("video"), int(match.group("index")))
  return clip, match.group("sep") == "-"


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a label file, in file order."""

  clip: ClipId
  csv: str  # class (file name without .csv)
  line: int
  label: int | None  # None: blank


@dataclasses.dataclass
class LabelTable:
  """Clip labels read from the CSV files, with every repair and drop recorded."""

  labels: dict[str, int]  # clip name -> 0/1
  classes: dict[str, str]  # clip name -> class field of its row
  blank_label: list[str]  # clip names whose only rows had a blank label
  duplicate_row: list[str]
  normalised_id: list[str]  # the original (defective) ids
  class_field_mismatch: list[str]
  rows: list[Row] = dataclasses.field(default_factory=list)  # every row, in file order


def parse_label_csv(text: str, class_name: str, table: LabelTable | None = None) -> LabelTable:
  """Adds the rows of one `Labels/<Class>.csv` (no header; LF or CRLF) to `table`.

  Raises:
    ValueError: a row without three fields, a label other than 0/1/blank, or two rows
      of one clip with different labels.
  """
  table = table or LabelTable({}, {}, [], [], [], [])
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    fields = [f.strip() for f in line.split(",")]
    where = f"{class_name}.csv line {number}"
    if len(fields) != 3:
      raise ValueError(f"{where}: expected clip_id,class,label, got {line!r}.")
    raw_id, row_class, label = fields
    clip, repaired = parse_clip_id(raw_id)
    if label not in ("", "0", "1"):
      raise ValueError(f"{where}: label must be 0, 1 or blank, got {label!r}.")
    table.rows.append(Row(clip, class_name, number, int(label) if label else None))
    if repaired:
      table.normalised_id.append(raw_id)
    if row_class != class_name:
      table.class_field_mismatch.append(clip.name)
    if label == "":
      if clip.name not in table.labels and clip.name not in table.blank_label:
        table.blank_label.append(clip.name)
      continue
    if label not in ("0", "1"):
      raise ValueError(f"{where}: label must be 0, 1 or blank, got {label!r}.")
    value = int(label)
    if clip.name in table.labels:
      if table.labels[clip.name] != value:
        raise ValueError(f"{where}: clip {clip.name} has conflicting labels {table.labels[clip.name]} and {value}.")
      table.duplicate_row.append(clip.name)
      continue
    if clip.name in table.blank_label:  # A labelled row after a blank one wins.
      table.blank_label.remove(clip.name)
    table.labels[clip.name] = value
    table.classes[clip.name] = class_name
  return table


# ------------------------------------------------------------------------ planning


def find_root(manual_dir: epath.PathLike) -> tuple[epath.Path, list[epath.Path]]:
  """The outermost folder holding `Labels/*.csv`, and the nested copies it contains.

  The archive's nested `DCSASS Dataset/DCSASS Dataset/` is a second root inside the
  first one; only the outermost root is read.
  """
  manual_dir = epath.Path(manual_dir)
  found = set()
  # `os.walk`: epath refuses recursive globs.
  for folder, dirs, files in os.walk(os.fspath(manual_dir), followlinks=True):
    dirs[:] = [d for d in dirs if not common.is_junk(d)]
    folder = epath.Path(folder)
    if folder.name == LABELS_DIR and any(f.lower().endswith(".csv") for f in files):
      found.add(folder.parent)
  roots = sorted(found, key=lambda p: (len(p.parts), os.fspath(p)))
  if not roots:
    raise common.ManualDataError(f"No {LABELS_DIR}/<Class>.csv under {manual_dir}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  root = roots[0]
  nested = [r for r in roots[1:] if root in r.parents]
  others = [r for r in roots[1:] if root not in r.parents]
  if others:
    raise common.ManualDataError(f"Two separate DCSASS trees under {manual_dir}: {root} and {others[0]}. Keep one.")
  return root, nested


@dataclasses.dataclass(frozen=True)
class Clip:
  clip: ClipId
  path: epath.Path
  class_name: str
  label: int


@dataclasses.dataclass
class Plan:
  clips: list[Clip]  # In (source video, clip index) order.
  skipped: list[tuple[str, str]]  # (clip name, reason)
  notes: dict[str, list[str]]
  root: str = ""  # the `DCSASS Dataset/` folder read, relative to the manual dir
  counts: dict[str, int] = dataclasses.field(default_factory=dict)


def _file_sizes(root: epath.Path, exclude: Sequence[epath.Path] = ()) -> dict[str, int]:
  """Relative path -> size of every file under `root`, skipping the `exclude` trees."""
  excluded = {os.fspath(p) for p in exclude}
  sizes = {}
  for folder, dirs, files in os.walk(os.fspath(root)):
    dirs[:] = [d for d in dirs if os.path.join(folder, d) not in excluded]
    for f in files:
      path = os.path.join(folder, f)
      sizes[os.path.relpath(path, os.fspath(root))] = os.path.getsize(path)
  return sizes


def nested_copy_differences(root: epath.Path, nested: epath.Path) -> list[str]:
  """Relative paths whose presence or size differs between `root` and its nested copy."""
  outer = _file_sizes(root, exclude=[nested])
  inner = _file_sizes(nested)
  return sorted(p for p in set(outer) | set(inner) if outer.get(p) != inner.get(p))


def find_clip_files(root: epath.Path, exclude: Sequence[epath.Path]) -> dict[str, tuple[ClipId, epath.Path, str]]:
  """clip name -> (id, mp4 path, class folder) for `<Class>/<Video>.mp4/<clip>.mp4`.

  The source video of the folder (`<Video>`) is the path's parent name without `.mp4`."""
  found = {}
  excluded = {os.fspath(p) for p in exclude}
  for class_dir in common.list_visible(root, dirs=True):
    if class_dir.name == LABELS_DIR or os.fspath(class_dir) in excluded:
      continue
    for video_dir in common.list_visible(class_dir, dirs=True):
      for path in common.list_visible(video_dir, suffixes=(".mp4",), dirs=False):
        clip, _ = parse_clip_id(path.name[:-4])
        if clip.name in found:
          raise ValueError(f"Clip {clip.name} found twice: {found[clip.name][1]} and {path}.")
        found[clip.name] = (clip, path, class_dir.name)
  return found


@dataclasses.dataclass(frozen=True)
class Misplaced:
  """A row whose clip id disagrees with the block of rows it sits in."""

  row: Row
  block_video: str  # the source video of the rows around it
  fills_gap: bool  # the block's video has no clip of this number

  @property
  def corrected(self) -> ClipId:
    return ClipId(self.block_video, self.row.clip.index)

  def describe(self) -> str:
    where = f"{self.row.csv}.csv line {self.row.line}"
    if self.fills_gap:
      return f"{self.row.clip.name} -> {self.corrected.name} ({where}: inside {self.block_video}'s rows, fills its gap)"
    return (
      f"{self.row.clip.name} ({where}: inside {self.block_video}'s rows, which already have clip {self.row.clip.index})"
    )


def find_misplaced_ids(rows: Sequence[Row]) -> list[Misplaced]:
  """Rows whose source video differs from that of the rows just before and after them,
  which agree with each other: a row inside another video's block.

  The row ``fills_gap`` when the block's video has no row of the same clip number (the
  typo ``Robbery046_x264_28`` among Robbery047's rows, Robbery047 lacking clip 28); the
  id is then read as ``<block video>_<k>``. Rows are compared within one CSV file.
  """
  found = []
  by_csv: dict[str, list[Row]] = collections.defaultdict(list)
  for row in rows:
    by_csv[row.csv].append(row)
  for csv_rows in by_csv.values():
    numbers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in csv_rows:
      numbers[row.clip.source_video][row.clip.index] += 1
    for i in range(1, len(csv_rows) - 1):
      row, before, after = csv_rows[i], csv_rows[i - 1], csv_rows[i + 1]
      block = before.clip.source_video
      if after.clip.source_video != block or row.clip.source_video == block:
        continue
      found.append(Misplaced(row, block, fills_gap=numbers[block][row.clip.index] == 0))
  return found


def plan_dataset(manual_dir: epath.PathLike, classes: Sequence[str] | None = None) -> Plan:
  """Matches label rows with clip files; see the module description for each defect.

  Args:
    manual_dir: the folder holding (a folder holding) `DCSASS Dataset/`.
    classes: keep only these classes (CSV file / folder names); None keeps all.
  """
  root, nested = find_root(manual_dir)
  table = None
  csv_files = common.list_visible(root / LABELS_DIR, suffixes=(".csv",), dirs=False)
  for csv_file in csv_files:
    class_name = csv_file.name[:-4]
    if classes is not None and class_name not in classes:
      continue
    text = csv_file.read_bytes().decode("utf-8-sig")
    table = parse_label_csv(text, class_name, table)
  if table is None:
    raise common.ManualDataError(
      f"No label file for classes {list(classes or [])} in {root / LABELS_DIR}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  files = find_clip_files(root, nested)
  if classes is not None:
    files = {k: v for k, v in files.items() if v[2] in classes}
  num_files = len(files)

  # Ids that contradict their block: repaired when they fill the block's gap, else dropped.
  skipped: list[tuple[str, str]] = []
  gap_filling, inconsistent_id = [], []
  # Clip name -> the source videos its file's folder may be named after.
  allowed_folders: dict[str, set[str]] = {}
  for misplaced in find_misplaced_ids(table.rows):
    name = misplaced.row.clip.name
    if name not in table.labels:
      continue  # A blank label: skipped as such.
    if misplaced.fills_gap:
      corrected = misplaced.corrected.name
      table.labels[corrected] = table.labels.pop(name)
      table.classes[corrected] = table.classes.pop(name)
      # Its file, under the correct name or under the name the row gave.
      if corrected not in files and name in files:
        _, path, folder = files.pop(name)
        files[corrected] = (misplaced.corrected, path, folder)
        allowed_folders[corrected] = {misplaced.block_video, misplaced.row.clip.source_video}
      gap_filling.append(misplaced.describe())
    else:
      del table.labels[name]
      files.pop(name, None)
      skipped.append((name, "inconsistent_clip_id"))
      inconsistent_id.append(misplaced.describe())
  # A clip file in the folder of another source video than its name says.
  inconsistent_location = []
  for name, (cid, path, _) in sorted(files.items()):
    folder_video = path.parent.name[: -len(".mp4")] if path.parent.name.endswith(".mp4") else path.parent.name
    if folder_video not in allowed_folders.get(name, {cid.source_video}):
      inconsistent_location.append(f"{name}: file {os.path.relpath(os.fspath(path), os.fspath(root))}")
      del files[name]
      table.labels.pop(name, None)
      skipped.append((name, "inconsistent_clip_location"))

  skipped += [(name, "blank_label") for name in table.blank_label]
  skipped += [(name, "missing_clip_file") for name in table.labels if name not in files]
  blank = set(table.blank_label)
  skipped += [(name, "missing_label_row") for name in files if name not in table.labels and name not in blank]
  clips = [
    Clip(clip=cid, path=path, class_name=folder, label=table.labels[name])
    for name, (cid, path, folder) in files.items()
    if name in table.labels
  ]
  clips.sort(key=lambda c: (c.clip.source_video, c.clip.index))
  where = lambda p: os.path.relpath(os.fspath(p), os.fspath(manual_dir))
  differences = [f"{where(n)}: {d}" for n in nested for d in nested_copy_differences(root, n)]
  notes = {
    "nested_copy": [where(p) for p in nested],
    # The nested copy is never read, even when it differs; the difference is noted.
    "nested_copy_differs": differences,
    "duplicate_row": table.duplicate_row,
    "normalised_id": table.normalised_id,
    "class_field_mismatch": table.class_field_mismatch,
    "gap_filling_id": gap_filling,
    "inconsistent_clip_id": inconsistent_id,
    "inconsistent_clip_location": inconsistent_location,
  }
  if not clips:
    raise common.ManualDataError(f"No labelled clip found under {root}.\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  skipped = sorted(skipped, key=lambda s: (s[1], s[0]))
  counts = {
    "label_rows": len(table.rows),
    "labelled_clips": len(table.labels),
    "clip_files": num_files,
    "clips": len(clips),
    "positive_clips": sum(c.label for c in clips),
    "source_videos": len({c.clip.source_video for c in clips}),
    **{f"skipped_{reason}": n for reason, n in collections.Counter(r for _, r in skipped).items()},
    **{f"noted_{note}": len(items) for note, items in notes.items() if items},
  }
  return Plan(
    clips=clips,
    skipped=skipped,
    notes={k: v for k, v in notes.items() if v},
    root=where(root),
    counts=counts,
  )


def _unit_hash(text: str) -> float:
  """A deterministic number in [0, 1) for `text`."""
  digest = hashlib.sha256(text.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


SPLIT_BY = ("stratified", "source_video", "clip")


def split_of(clip: ClipId, split_by: str, test_fraction: float, seed: int = 0) -> str:
  """`test` or `train` by a hash: of the source video (`source_video`) or the clip id
  (`clip`). The `stratified` split depends on the other videos: see `stratified_split`."""
  if split_by == "source_video":
    key = clip.source_video
  elif split_by == "clip":
    key = clip.name
  else:
    raise ValueError(f"split_by must be 'source_video' or 'clip' here, got {split_by!r}.")
  return "test" if _unit_hash(f"dcsass/{seed}/{key}") < test_fraction else "train"


def stratified_split(clips: Sequence[Clip], test_fraction: float, seed: int = 0) -> dict[str, str]:
  """Source video -> `train` / `test`, stratified per class; clips of a video stay together.

  Within each class (the class folder of a video's clips), in the order of the seeded
  hash of the video name (a fixed random order):
  * videos with positive clips go to `test` while that brings the class's positive clips
    in `test` closer to `test_fraction` of its positive clips (a video joins when
    ``test_positives + its_positives / 2 < test_fraction * class_positives``);
  * videos without a positive clip: the first ``round(test_fraction * n)`` go to `test`;
  * a class with at least two videos with positive clips gets at least one of them in
    `test` (the one with the fewest positives, first in hash order) and keeps at least one
    in `train`; any other class with two or more videos gets at least one all-normal
    video in `test`; a class with one source video keeps it in `train`.
  So every class with enough videos is in both splits with about `test_fraction` of its
  positive clips and of its all-normal videos in `test`.
  """
  if not 0.0 <= test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}.")
  per_video: dict[str, dict] = {}
  for clip in clips:
    video = per_video.setdefault(clip.clip.source_video, {"class": clip.class_name, "positives": 0})
    if video["class"] != clip.class_name:
      raise ValueError(
        f"Source video {clip.clip.source_video} has clips in two class folders: {video['class']} and {clip.class_name}."
      )
    video["positives"] += clip.label
  rank = lambda name: (_unit_hash(f"dcsass/{seed}/{name}"), name)
  assignment = {}
  for class_name in sorted({v["class"] for v in per_video.values()}):
    videos = sorted((n for n, v in per_video.items() if v["class"] == class_name), key=rank)
    positive = [n for n in videos if per_video[n]["positives"] > 0]
    normal = [n for n in videos if per_video[n]["positives"] == 0]
    target = test_fraction * sum(per_video[n]["positives"] for n in positive)
    in_test = 0
    for name in positive:
      count = per_video[name]["positives"]
      if in_test + count / 2 < target:
        assignment[name], in_test = "test", in_test + count
      else:
        assignment[name] = "train"
    if len(positive) >= 2 and test_fraction > 0:
      chosen = [n for n in positive if assignment[n] == "test"]
      if not chosen:
        fewest = min(per_video[n]["positives"] for n in positive)
        assignment[next(n for n in positive if per_video[n]["positives"] == fewest)] = "test"
      elif len(chosen) == len(positive):
        assignment[chosen[-1]] = "train"
    num_test = int(round(test_fraction * len(normal)))
    for i, name in enumerate(normal):
      assignment[name] = "test" if i < num_test else "train"
    if len(videos) >= 2 and test_fraction > 0 and all(assignment[n] == "train" for n in videos):
      # Still no test video (one video with positives, the others all-normal): the first
      # all-normal one, so that train keeps the class's positives.
      assignment[normal[0]] = "test"
  return assignment


def split_summary(clips: Sequence[Clip], split_of_clip: Mapping[str, str]) -> dict[str, dict]:
  """Per class and split: source videos, clips and positive clips."""
  summary: dict[str, dict] = {}
  for clip in clips:
    split = split_of_clip[clip.clip.name]
    entry = summary.setdefault(clip.class_name, {}).setdefault(
      split, {"source_videos": set(), "clips": 0, "positive_clips": 0}
    )
    entry["source_videos"].add(clip.clip.source_video)
    entry["clips"] += 1
    entry["positive_clips"] += clip.label
  for per_split in summary.values():
    for entry in per_split.values():
      entry["source_videos"] = len(entry["source_videos"])
  return summary


# ------------------------------------------------------------------------- builder


@dataclasses.dataclass(eq=False)
class DcsassConfig(common.VideoConfig):
  """Attributes (frame_size / frame_stride: see VideoConfig):

  split_by: "stratified" (default: by source video, stratified per class, see
    `stratified_split`), "source_video" (by source video, a hash of its name; the
    split of version 1.0.0) or "clip" (the authors' random clip-level split).
  test_fraction: share of source videos (or clips) in `test`.
  split_seed: salt of the hash.
  classes: keep only these classes; None keeps all 13.
  """

  split_by: str = "stratified"
  test_fraction: float = 0.2
  split_seed: int = 0
  classes: tuple[str, ...] | None = None

  def __post_init__(self):
    super().__post_init__()
    if self.split_by not in SPLIT_BY:
      raise ValueError(f"split_by must be one of {SPLIT_BY}, got {self.split_by!r}.")


DEFAULT = DcsassConfig(
  name="default", description="All classes, native frames; split by source video, stratified per class (~80/20)."
)
AS_PUBLISHED = DcsassConfig(
  name="as_published",
  split_by="clip",
  description=(
    "As published: random clip-level split (~80/20) over all classes; clips of one source video appear in both splits."
  ),
)
SHOPLIFTING = DcsassConfig(
  name="shoplifting",
  classes=("Shoplifting",),
  description="Shoplifting clips only, split by source video, stratified (~80/20).",
)
SHOPLIFTING_AS_PUBLISHED = DcsassConfig(
  name="shoplifting_as_published",
  classes=("Shoplifting",),
  split_by="clip",
  description=("As published: Shoplifting clips only (the authors' baselines), random clip-level split (~80/20)."),
)

_SPLIT_DESCRIPTIONS = {
  "stratified": "by source video, stratified per class (positive clips and all-normal videos)",
  "source_video": "by source video (hash of its name)",
  "clip": "as published: random clip-level split (clips of one source video in both splits)",
}


class Builder(common.FrameBuilder):
  """DCSASS clips, one record per frame, with clip labels."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "2.0.0": (
      "Source-video splits stratified per class (split_by='stratified'; the 1.0.0 split is "
      "split_by='source_video'); clip ids filling another video's numbering gap are read as that "
      "video's clips, other id/block/folder disagreements skipped; labels, layout and counts in the metadata."
    ),
  }
  BUILDER_CONFIGS = [DEFAULT, AS_PUBLISHED, SHOPLIFTING, SHOPLIFTING_AS_PUBLISHED]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  OPTIONAL_KEYS = ("class_name", "clip_id", "clip_index", "clip_label")
  HOMEPAGE = "https://www.kaggle.com/datasets/mateohervas/dcsass-dataset"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config: DcsassConfig = self.builder_config
    split_by = getattr(config, "split_by", "stratified")
    plan = plan_dataset(dl_manager.manual_dir, config.classes)
    if split_by == "stratified":
      by_video = stratified_split(plan.clips, config.test_fraction, config.split_seed)
      split_of_clip = {c.clip.name: by_video[c.clip.source_video] for c in plan.clips}
    else:
      by_video = {}
      split_of_clip = {
        c.clip.name: split_of(c.clip, split_by, config.test_fraction, config.split_seed) for c in plan.clips
      }
    splits: dict[str, list[Clip]] = {"train": [], "test": []}
    for clip in plan.clips:
      splits[split_of_clip[clip.clip.name]].append(clip)
    metadata = self.info.metadata
    common.empty_metadata(metadata, splits)
    for name, reason in plan.skipped:
      clip, _ = parse_clip_id(name)
      if clip.source_video in by_video:
        split = by_video[clip.source_video]
      else:
        split = split_of(
          clip, "clip" if split_by == "clip" else "source_video", config.test_fraction, config.split_seed
        )
      common.record_skip(metadata, split, name, reason)
    metadata["notes"] = plan.notes
    metadata["source_videos"] = {split: sorted({c.clip.source_video for c in clips}) for split, clips in splits.items()}
    metadata["split"] = {
      "by": split_by,
      "test_fraction": config.test_fraction,
      "seed": config.split_seed,
      "per_class": split_summary(plan.clips, split_of_clip),
    }
    metadata["counts"]["inputs"] = dict(plan.counts)
    self.record_source(
      layout=f"{plan.root}/ ({LABELS_DIR}/<Class>.csv, <Class>/<Video>_x264.mp4/<clip>.mp4)"
      + (f"; nested copies not read: {', '.join(plan.notes['nested_copy'])}" if plan.notes.get("nested_copy") else ""),
      labels=(
        f"clip labels of {LABELS_DIR}/<Class>.csv (frame label = clip label); split {_SPLIT_DESCRIPTIONS[split_by]}"
      ),
    )
    reasons = collections.Counter(reason for _, reason in plan.skipped)
    for reason, count in sorted(reasons.items()):
      logging.warning("dcsass: skipped %d clips (%s).", count, reason)
    for note, names in sorted(plan.notes.items()):
      logging.warning("dcsass: %s: %d (%s).", note, len(names), "; ".join(names[:5]))
    return {split: self._generate_examples(split, clips) for split, clips in splits.items()}

  def _generate_examples(self, split: str, clips: Sequence[Clip]):
    config: DcsassConfig = self.builder_config
    jobs = [common.VideoJob(c.clip.name, functools.partial(_frames, c, config), label=c.label) for c in clips]
    return self.split_records(split, jobs)


def _frames(clip: Clip, config: DcsassConfig) -> Iterable[dict]:
  for frame in video_lib.iter_frames(clip.path, stride=config.frame_stride, size=config.frame_size):
    yield {
      "frame": common.encode_frame(frame),
      "label": clip.label,
      "class_name": clip.class_name,
      "clip_id": clip.clip.name,
      "clip_index": clip.clip.index,
      "clip_label": clip.label,
    }
