"""DCSASS: UCF-Crime videos cut into short clips, each with a 0/1 clip label.

Manual download (Kaggle). The archive extracts to `DCSASS Dataset/` with
`<Class>/<Video>_x264.mp4/<Video>_x264_<k>.mp4` (the per-video FOLDER name ends in
`.mp4`), `Labels/<Class>.csv` without a header (`clip_id,class,label`), and a
byte-identical nested copy `DCSASS Dataset/DCSASS Dataset/...` that is read once.

Each clip is one "video" of the record schema (`video` = clip id, `frame_index`
restarts at 0 per clip); records also carry `clip_id`, `clip_index` (k), `clip_label`,
`class_name`, and the frame `label` equals the clip label.

Splits are by SOURCE video by default (clips of one UCF-Crime video never straddle
train and test); the authors' random clip-level split is offered as the separately
named `as_published` configs.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence

import tensorflow_datasets as tfds
from etils import epath

from .. import common
from .. import video as video_lib

ROOT_NAME = "DCSASS Dataset"
LABELS_DIR = "Labels"

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the DCSASS dataset from Kaggle (https://www.kaggle.com/datasets/mateohervas/dcsass-dataset)
and extract it into the manual dir (`<manual_dir>/dcsass/` by default), so that it holds
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


@dataclasses.dataclass
class LabelTable:
  """Clip labels read from the CSV files, with every repair and drop recorded."""

  labels: dict[str, int]  # clip name -> 0/1
  classes: dict[str, str]  # clip name -> class field of its row
  blank_label: list[str]  # clip names whose only rows had a blank label
  duplicate_row: list[str]
  normalised_id: list[str]  # the original (defective) ids
  class_field_mismatch: list[str]


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
  """clip name -> (id, mp4 path, class folder) for `<Class>/<Video>.mp4/<clip>.mp4`."""
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
    raise common.ManualDataError(f"No label file for classes {list(classes or [])} in {root / LABELS_DIR}.")
  files = find_clip_files(root, nested)
  if classes is not None:
    files = {k: v for k, v in files.items() if v[2] in classes}

  skipped = [(name, "blank_label") for name in table.blank_label]
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
  }
  if not clips:
    raise common.ManualDataError(f"No labelled clip found under {root}.")
  return Plan(
    clips=clips, skipped=sorted(skipped, key=lambda s: (s[1], s[0])), notes={k: v for k, v in notes.items() if v}
  )


def _unit_hash(text: str) -> float:
  """A deterministic number in [0, 1) for `text`."""
  digest = hashlib.sha256(text.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(clip: ClipId, split_by: str, test_fraction: float, seed: int = 0) -> str:
  """`test` or `train`: hashed on the source video (default) or the clip id."""
  if split_by == "source_video":
    key = clip.source_video
  elif split_by == "clip":
    key = clip.name
  else:
    raise ValueError(f"split_by must be 'source_video' or 'clip', got {split_by!r}.")
  return "test" if _unit_hash(f"dcsass/{seed}/{key}") < test_fraction else "train"


# ------------------------------------------------------------------------- builder


@dataclasses.dataclass(eq=False)
class DcsassConfig(common.VideoConfig):
  """Attributes (frame_size / frame_stride: see VideoConfig):

  split_by: "source_video" (default) or "clip" (the authors' random split).
  test_fraction: share of source videos (or clips) hashed into `test`.
  split_seed: salt of the hash.
  classes: keep only these classes; None keeps all 13.
  """

  split_by: str = "source_video"
  test_fraction: float = 0.2
  split_seed: int = 0
  classes: tuple[str, ...] | None = None


DEFAULT = DcsassConfig(name="default", description="All classes, native frames; split by source video (~80/20).")
AS_PUBLISHED = DcsassConfig(
  name="as_published",
  split_by="clip",
  description=(
    "As published: random clip-level split (~80/20) over all classes; clips of one source video appear in both splits."
  ),
)
SHOPLIFTING = DcsassConfig(
  name="shoplifting", classes=("Shoplifting",), description="Shoplifting clips only, split by source video (~80/20)."
)
SHOPLIFTING_AS_PUBLISHED = DcsassConfig(
  name="shoplifting_as_published",
  classes=("Shoplifting",),
  split_by="clip",
  description=("As published: Shoplifting clips only (the authors' baselines), random clip-level split (~80/20)."),
)


class Builder(common.FrameBuilder):
  """DCSASS clips, one record per frame, with clip labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [DEFAULT, AS_PUBLISHED, SHOPLIFTING, SHOPLIFTING_AS_PUBLISHED]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  OPTIONAL_KEYS = ("class_name", "clip_id", "clip_index", "clip_label")
  HOMEPAGE = "https://www.kaggle.com/datasets/mateohervas/dcsass-dataset"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config: DcsassConfig = self.builder_config
    plan = plan_dataset(dl_manager.manual_dir, config.classes)
    splits: dict[str, list[Clip]] = {"train": [], "test": []}
    for clip in plan.clips:
      splits[split_of(clip.clip, config.split_by, config.test_fraction, config.split_seed)].append(clip)
    metadata = self.info.metadata
    common.empty_metadata(metadata, splits)
    for name, reason in plan.skipped:
      clip, _ = parse_clip_id(name)
      split = split_of(clip, config.split_by, config.test_fraction, config.split_seed)
      common.record_skip(metadata, split, name, reason)
    metadata["notes"] = plan.notes
    metadata["source_videos"] = {split: sorted({c.clip.source_video for c in clips}) for split, clips in splits.items()}
    reasons = collections.Counter(reason for _, reason in plan.skipped)
    for reason, count in sorted(reasons.items()):
      logging.warning("dcsass: skipped %d clips (%s).", count, reason)
    for note, names in sorted(plan.notes.items()):
      logging.warning("dcsass: %s: %d (%s).", note, len(names), ", ".join(names[:5]))
    return {split: self._generate_examples(split, clips) for split, clips in splits.items()}

  def _generate_examples(self, split: str, clips: Sequence[Clip]):
    config: DcsassConfig = self.builder_config
    records = common.SplitRecords(self.info.metadata, split, num_videos=len(clips))
    for clip in clips:
      yield from records.add_video(
        clip.clip.name, lambda c=clip: _frames(c, config), label=clip.label, skip_undecodable=self._skip_undecodable
      )


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
