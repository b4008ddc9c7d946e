"""CUHK Avenue, one record per frame, in two label versions (``docs/DATASETS.md``).

* ``official`` (default): the official videos ``Avenue Dataset/{training,testing}_videos
  /NN.avi`` decoded with PyAV, and the official pixel masks
  ``ground_truth_demo/testing_label_mask/N_label.mat`` (``01.avi`` pairs with
  ``1_label.mat``). A test frame is anomalous when its mask has any nonzero pixel; the
  masks are stored too. The number of masks must equal the number of decoded frames.
* ``frames_avenue_mat``: the pre-extracted frame release of the frame-prediction
  literature (``avenue/{training,testing}/frames/NN/XXXX.jpg``, 0-based) with the
  labels of an ``avenue.mat``, which circulates in two versions:
  - ``gt``: per video a ``2 x K`` array of 1-based inclusive ``[start; end]`` intervals.
    These intervals are NOT the official labels (they disagree in most videos); results
    on them must say so.
  - one per-frame 0/1 label vector per test video, in variables ``'01'`` ... ``'21'``:
    these equal the labels of the official masks.
  A file with both is read through its label vectors.

``metadata["labels"]`` names the label version read (also appended to the dataset
description), ``metadata["layout"]`` what was read, each part as a folder or a zip.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from .. import common
from .. import video as video_lib

_DATASET_ZIP = "Avenue_Dataset.zip"
_DATASET_DIR = "Avenue Dataset"
_GT_ZIP = "ground_truth_demo.zip"
_GT_DIR = "ground_truth_demo"
_MASK_DIR = "testing_label_mask"

_INSTRUCTIONS = f"""\
Download {_DATASET_ZIP} and {_GT_ZIP} from
http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html and put them
in the manual dir. Accepted layouts for the config official, each part as the archive
or extracted (either way for each):

  <manual_dir>/{_DATASET_ZIP}     or  <manual_dir>/{_DATASET_DIR}/training_videos/01.avi ...
                                      <manual_dir>/{_DATASET_DIR}/testing_videos/01.avi ...
  <manual_dir>/{_GT_ZIP}  or  <manual_dir>/{_GT_DIR}/{_MASK_DIR}/1_label.mat ...
                          or  <manual_dir>/{_MASK_DIR}/1_label.mat ...   (without {_GT_DIR}/)

For the config frames_avenue_mat (pre-extracted frame release with avenue.mat labels):

  <manual_dir>/avenue/training/frames/01/0000.jpg ...
  <manual_dir>/avenue/testing/frames/01/0000.jpg ...
  <manual_dir>/avenue/avenue.mat
  (or the same three entries directly in <manual_dir>)

  avenue.mat may hold interval labels (variable gt, a different label version from the
  official masks) or one per-frame label vector per test video (variables '01' ... '21',
  equal to the official masks); the one read is recorded in metadata["labels"].
"""

OFFICIAL_LABELS = "official pixel masks (ground_truth_demo): frame anomalous if any mask pixel is set"
AVENUE_MAT_LABELS = "avenue.mat interval labels of the pre-extracted frame release (differ from the official masks)"
AVENUE_MAT_VECTOR_LABELS = (
  "avenue.mat per-frame label vectors ('01'...) of the pre-extracted frame release (equal to the official masks)"
)


@dataclasses.dataclass(eq=False)
class AvenueConfig(common.VideoConfig):
  """``source``: ``"official"`` (videos + masks) or ``"avenue_mat"`` (frames + intervals)."""

  source: str = "official"


@dataclasses.dataclass(frozen=True)
class _Video:
  name: str
  path: epath.Path  # .avi file, or folder of frames
  labels_path: epath.Path | None = None  # N_label.mat (official test videos)
  labels: np.ndarray | None = None  # from avenue.mat (release test videos)


class Builder(common.FrameBuilder):
  """CUHK Avenue: 16 training and 21 test videos, 640x360, one record per frame."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  BUILDER_CONFIGS = [
    AvenueConfig(
      name="official",
      source="official",
      description="Official videos; labels from the official pixel masks (masks included).",
    ),
    AvenueConfig(
      name="frames_avenue_mat",
      source="avenue_mat",
      description=(
        "Pre-extracted frames with avenue.mat interval labels: a different label version from the official masks."
      ),
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "official"

  OPTIONAL_KEYS = ("mask", "has_mask")
  HOMEPAGE = "http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config: AvenueConfig = self.builder_config
    if config.source == "official":
      videos, layout = _official_videos(dl_manager)
      labels = OFFICIAL_LABELS
    elif config.source == "avenue_mat":
      videos, layout, labels = _release_videos(dl_manager.manual_dir)
    else:
      raise ValueError(f"Unknown Avenue source {config.source!r}.")
    common.empty_metadata(self.info.metadata, videos)
    self.record_source(layout=layout, labels=labels)
    return {split: self._generate_examples(split, v) for split, v in videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[_Video]):
    config: AvenueConfig = self.builder_config
    records = _video_file_records if config.source == "official" else _frame_folder_records
    return self.split_records(split, [common.VideoJob(v.name, functools.partial(records, v, config)) for v in videos])


# ------------------------------------------------------------------ official videos


def _locate(
  dl_manager: tfds.download.DownloadManager,
  folder: str,
  archive: str,
  needed: Sequence[str],
  *,
  bare: Sequence[str] = (),
) -> tuple[epath.Path | None, str]:
  """``folder`` in the manual dir, extracting ``archive`` if only that is there.

  ``bare``: paths that, found directly in the manual dir, stand for ``folder`` without
  its top folder (``testing_label_mask/`` outside ``ground_truth_demo/``).

  Returns ``(path, how it was found)`` or ``(None, error text listing what was looked for)``.
  """
  manual_dir = dl_manager.manual_dir
  layouts = {f"{folder}/ (folder)": [f"{folder}/{n}" for n in needed], f"{archive} (zip)": [archive]}
  if bare:
    layouts[f"{', '.join(bare)} (folder, without {folder}/)"] = list(bare)
  try:
    layout = common.find_layout(manual_dir, layouts, instructions="")
  except common.ManualDataError as error:
    return None, str(error)
  if layout.endswith("(folder)"):
    return manual_dir / folder, layout
  if "without" in layout:
    return manual_dir, layout
  extracted = common.extract_archive(
    manual_dir / archive, dl_manager.download_dir / "extracted" / archive.rsplit(".", 1)[0]
  )
  return common.require_path(extracted / folder, f"{folder}/ inside {archive}", _INSTRUCTIONS), layout


def _official_videos(dl_manager) -> tuple[dict[str, list[_Video]], str]:
  dataset_dir, dataset_how = _locate(dl_manager, _DATASET_DIR, _DATASET_ZIP, ["training_videos", "testing_videos"])
  gt_dir, gt_how = _locate(dl_manager, _GT_DIR, _GT_ZIP, [_MASK_DIR], bare=[_MASK_DIR])
  if dataset_dir is None or gt_dir is None:
    errors = [how for path, how in ((dataset_dir, dataset_how), (gt_dir, gt_how)) if path is None]
    raise common.ManualDataError("\n".join(errors) + "\n\n" + _INSTRUCTIONS)
  mask_dir = gt_dir / _MASK_DIR
  videos = {}
  for split, folder in (("train", "training_videos"), ("test", "testing_videos")):
    files = common.list_visible(dataset_dir / folder, suffixes=(".avi",), dirs=False)
    if not files:
      raise common.ManualDataError(f"No .avi videos in {dataset_dir / folder}.")
    split_videos = []
    for path in files:
      name = path.name[: -len(".avi")]
      if not name.isdigit():
        raise ValueError(f"{path}: Avenue videos are named by number (01.avi, ...).")
      labels_path = None
      if split == "test":
        labels_path = common.require_path(
          mask_dir / f"{int(name)}_label.mat",
          f"the label masks of test video {path.name}",
        )
      split_videos.append(_Video(name, path, labels_path=labels_path))
    videos[split] = split_videos
  expected = {v.labels_path.name for v in videos["test"]}
  extra = sorted(
    p.name for p in common.list_visible(mask_dir, suffixes=(".mat",), dirs=False) if p.name not in expected
  )
  if extra:
    raise ValueError(f"{mask_dir} has label files without a test video: {extra}.")
  return videos, f"official: videos from {dataset_how}, masks from {gt_how}"


def read_label_masks(path: epath.PathLike) -> list[np.ndarray]:
  """The per-frame masks of an official ``N_label.mat`` (variable ``volLabel``).

  ``scipy.io.loadmat`` gives a ``(1, T)`` object array of 2-D uint8 masks; anything
  else is an error naming the file and what was found.
  """
  path = os.fspath(path)
  data = scipy.io.loadmat(path)
  if "volLabel" not in data:
    found = sorted(k for k in data if not k.startswith("__"))
    raise ValueError(f"{path}: no variable 'volLabel' (variables: {found}).")
  cells = np.asarray(data["volLabel"])
  if cells.dtype != object or cells.ndim != 2 or cells.shape[0] != 1:
    raise ValueError(f"{path}: volLabel should be a (1, T) cell array, got {cells.dtype} {cells.shape}.")
  masks = [np.asarray(cell) for cell in cells[0]]
  for t, mask in enumerate(masks):
    if mask.ndim != 2:
      raise ValueError(f"{path}: mask {t} has shape {mask.shape}, expected 2-D.")
  return masks


def _video_file_records(video: _Video, config: AvenueConfig) -> Iterator[dict]:
  """Decodes one official video; test frames get labels and masks from its ``.mat``."""
  masks = read_label_masks(video.labels_path) if video.labels_path else None
  frames = video_lib.iter_frames(video.path, stride=config.frame_stride, size=config.frame_size)
  kept = 0
  while True:
    try:
      frame = next(frames)
    except StopIteration as stop:
      decoded = stop.value
      break
    index, kept = kept * config.frame_stride, kept + 1
    record = {"frame": common.encode_frame(frame), "label": 0, "mask": b"", "has_mask": False}
    if masks is not None and index < len(masks):
      mask = masks[index]
      if config.frame_size is None and mask.shape != frame.shape[:2]:
        raise ValueError(
          f"{video.labels_path}: mask {index} is {mask.shape} but the frames of "
          f"{video.path.name} are {frame.shape[:2]}."
        )
      record.update(
        label=int(np.any(mask)),
        mask=common.encode_mask(common.resize_mask(mask, config.frame_size)),
        has_mask=True,
      )
    yield record
  if masks is not None and decoded != len(masks):
    raise common.LabelCountError(video.name, decoded, len(masks), os.fspath(video.labels_path))


# ------------------------------------------------------------ pre-extracted frames


def read_intervals(path: epath.PathLike) -> list[np.ndarray]:
  """Per test video, the ``(2, K)`` int array of 1-based inclusive intervals in ``gt``."""
  return common.read_interval_mat(path)


def read_label_vectors(path: epath.PathLike) -> dict[int, np.ndarray] | None:
  """Per test video number, the 0/1 frame labels of an ``avenue.mat`` that holds one
  vector per video (variables ``'01'`` ... ``'21'``); None if it holds no such variable.
  """
  path = os.fspath(path)
  data = scipy.io.loadmat(path)
  vectors = {}
  for key, value in data.items():
    if key.startswith("__") or not key.isdigit():
      continue
    labels = np.asarray(value)
    if labels.ndim != 2 or 1 not in labels.shape or not np.isin(labels, (0, 1)).all():
      raise ValueError(f"{path}: variable {key!r} should be a 0/1 vector, got {labels.dtype} {labels.shape}.")
    vectors[int(key)] = labels.reshape(-1).astype(np.int32)
  return vectors or None


def _release_videos(manual_dir: epath.Path) -> tuple[dict[str, list[_Video]], str, str]:
  layout = common.find_layout(
    manual_dir,
    {
      "frame release": ["avenue/training/frames", "avenue/testing/frames", "avenue/avenue.mat"],
      "frame release (in the manual dir itself)": [
        "training/frames",
        "testing/frames",
        "avenue.mat",
      ],
    },
    _INSTRUCTIONS,
  )
  root = manual_dir / "avenue" if layout == "frame release" else manual_dir
  gt_path = root / "avenue.mat"
  vectors = read_label_vectors(gt_path)
  intervals = None if vectors is not None else read_intervals(gt_path)
  labels_text = AVENUE_MAT_VECTOR_LABELS if vectors is not None else AVENUE_MAT_LABELS
  videos = {}
  for split, folder in (("train", "training"), ("test", "testing")):
    video_dirs = common.list_visible(root / folder / "frames", dirs=True)
    if not video_dirs:
      raise common.ManualDataError(f"No video folders in {root / folder / 'frames'}.")
    if split == "test":
      count = len(vectors) if vectors is not None else len(intervals)
      if count != len(video_dirs):
        raise ValueError(
          f"{gt_path} has labels for {count} videos but {root / folder / 'frames'} holds {len(video_dirs)} test videos."
        )
    split_videos = []
    for v, video_dir in enumerate(video_dirs):
      num_frames = len(common.numbered_files(video_dir, (".jpg",), first=0))
      labels = np.zeros(num_frames, np.int32)
      if split == "test" and vectors is not None:
        if not video_dir.name.isdigit() or int(video_dir.name) not in vectors:
          raise ValueError(f"{gt_path} has no label vector for test video {video_dir.name}.")
        labels = vectors[int(video_dir.name)]
        if len(labels) != num_frames:
          raise common.LabelCountError(video_dir.name, num_frames, len(labels), os.fspath(gt_path))
      elif split == "test":
        labels = common.labels_from_ranges(
          intervals[v].T,
          num_frames,
          first_frame=1,
          video=video_dir.name,
          source=os.fspath(gt_path),
        )
      split_videos.append(_Video(video_dir.name, video_dir, labels=labels))
    videos[split] = split_videos
  how = "label vectors '01'..." if vectors is not None else "gt intervals"
  return videos, f"{layout}; avenue.mat with {how}", labels_text


def _frame_folder_records(video: _Video, config: AvenueConfig) -> Iterator[dict]:
  frames = common.numbered_files(video.path, (".jpg",), first=0)
  for i in range(0, len(frames), config.frame_stride):
    frame, _ = common.image_file_frame(frames[i], config.frame_size, video=video.name, index=i)
    yield {"frame": frame, "label": int(video.labels[i]), "mask": b"", "has_mask": False}
