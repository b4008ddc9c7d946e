"""Host-level pipelines: decoding, clips, evaluation coverage, host sharding, resuming,
clip-level batches.

The tests use in-memory sources: lists of frame records following
``docs/conventions.md``. Each frame is a constant grey image whose value is its record
index + 1, so decoded pixels tell exactly which records an example was built from.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from vad_jax.data import host_pipelines, indexing, input_pipeline, preprocessing, sources

SIZE = (4, 4)
FRAMES = input_pipeline.FrameSettings(image_size=SIZE, channels=1)


def _png(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def fake_split(lengths, labels=None, extra=None) -> sources.VideoSplit:
  """Videos of the given lengths; frame ``r`` (record index) has pixel value r + 1."""
  records, videos, r = [], [], 0
  for v, length in enumerate(lengths):
    videos.append({"name": f"{v:02d}", "start": r, "length": length, "label": 0})
    for f in range(length):
      record = {
        "video": f"{v:02d}".encode(),
        "video_index": v,
        "frame_index": f,
        "frame": _png(np.full(SIZE, r + 1, dtype=np.uint8)),
        "label": int(labels(v, f)) if labels else 0,
      }
      record.update(extra(v, f) if extra else {})
      records.append(record)
      r += 1
  assert r < 255
  return sources.VideoSplit(source=records, videos=tuple(videos))


def record_ids(frames: np.ndarray, scaling: str = "signed_unit") -> np.ndarray:
  """Inverse of the fake pixel code: ``[..., H, W, C]`` frames -> record indices."""
  value = frames[..., 0, 0, 0]
  pixels = (value + 1) * 127.5 if scaling == "signed_unit" else value * 255
  return np.rint(pixels).astype(int) - 1


LENGTHS = (7, 3, 9, 12, 5)  # 36 records; with T=4: 4 + 0 + 6 + 9 + 2 = 21 clips
T = 4


def _video_of(split):
  return np.concatenate([[v] * video["length"] for v, video in enumerate(split.videos)])


# ---------------------------------------------------------------------------- decoding


def test_decode_resizes_bilinear_and_keeps_height_width_order():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=(6, 10), dtype=np.uint8)
  out = preprocessing.decode_frame(_png(image), (3, 5), channels=1)
  assert out.shape == (3, 5, 1) and out.dtype == np.uint8
  expected = np.asarray(Image.fromarray(image).resize((5, 3), Image.Resampling.BILINEAR))
  np.testing.assert_array_equal(out[..., 0], expected)
  # A constant image stays constant at any size.
  flat = preprocessing.decode_frame(_png(np.full((6, 10), 77, np.uint8)), (9, 4), 1)
  assert flat.shape == (9, 4, 1) and np.all(flat == 77)


def test_channel_conversion():
  gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
  rgb = preprocessing.decode_frame(_png(gray), (4, 4), channels=3)
  assert rgb.shape == (4, 4, 3)
  np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))
  colour = np.zeros((4, 4, 3), np.uint8)
  colour[..., 0] = 200  # pure red: luma = 0.299 * 200
  luma = preprocessing.decode_frame(_png(colour), (4, 4), channels=1)
  assert luma.shape == (4, 4, 1) and np.all(luma == round(0.299 * 200))


def test_jpeg_draft_decoding_is_close_to_full_decoding():
  rng = np.random.default_rng(1)
  coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
  image = np.asarray(coarse.resize((128, 96), Image.Resampling.BICUBIC))  # smooth, like video
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=95)
  for channels in (1, 3):
    fast = preprocessing.decode_frame(buf.getvalue(), (24, 32), channels, jpeg_draft=True)
    full = preprocessing.decode_frame(buf.getvalue(), (24, 32), channels, jpeg_draft=False)
    assert fast.shape == full.shape == (24, 32, channels)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2


def test_pixel_scaling():
  x = np.array([0, 51, 255], dtype=np.uint8)
  np.testing.assert_allclose(preprocessing.to_signed_unit(x), [-1.0, 51 / 127.5 - 1, 1.0], atol=1e-7)
  np.testing.assert_allclose(preprocessing.to_unit(x), [0.0, 0.2, 1.0], atol=1e-7)
  assert preprocessing.to_signed_unit(x).dtype == np.float32


# ---------------------------------------------------------------------------- indexing


def test_clip_counts_per_video():
  split = fake_split(LENGTHS)
  assert len(indexing.ClipIndex.from_videos(split.videos, T)) == 21
  # stride 2: a clip spans 7 frames -> 1 + 0 + 3 + 6 + 0
  assert len(indexing.ClipIndex.from_videos(split.videos, T, frame_stride=2)) == 10


def test_video_index_from_records_matches_metadata():
  split = fake_split(LENGTHS, labels=lambda v, f: v == 2 and f > 4)
  videos = sources.videos_from_records(split.source)
  assert [(v["start"], v["length"]) for v in videos] == [(v["start"], v["length"]) for v in split.videos]
  assert [v["label"] for v in videos] == [0, 0, 1, 0, 0]
  assert videos[3]["name"] == "03"


# ---------------------------------------------------------------------------- training


def _take(ds, n):
  it = iter(ds)
  return [next(it) for _ in range(n)]


@pytest.mark.parametrize("stride", [1, 2])
def test_training_clips_stay_inside_one_video(stride):
  split = fake_split(LENGTHS)
  index = indexing.ClipIndex.from_videos(split.videos, T, stride)
  ds = host_pipelines.train_dataset(
    split,
    sequence_length=T,
    global_batch_size=4,
    frames=FRAMES,
    frame_stride=stride,
    seed=3,
    process_index=0,
    process_count=1,
  )
  batches = _take(ds, 2 * len(index) // 4 + 1)  # a bit more than two epochs
  clips = record_ids(np.concatenate([b["frames"] for b in batches]))
  assert batches[0]["frames"].shape == (4, T, *SIZE, 1)
  video_of = _video_of(split)
  np.testing.assert_array_equal(np.diff(clips, axis=1), stride)  # consecutive, in order
  assert np.all(video_of[clips] == video_of[clips[:, :1]])  # one video per clip
  # Each epoch visits every valid clip once, in a new order.
  all_clips = index.records(np.arange(len(index)))[:, 0]
  epoch0, epoch1 = clips[: len(index), 0], clips[len(index) : 2 * len(index), 0]
  np.testing.assert_array_equal(np.sort(epoch0), np.sort(all_clips))
  np.testing.assert_array_equal(np.sort(epoch1), np.sort(all_clips))
  assert not np.array_equal(epoch0, epoch1)


def test_training_order_depends_on_seed_only():
  split = fake_split(LENGTHS)
  run = lambda seed: record_ids(
    np.concatenate(
      [
        b["frames"]
        for b in _take(
          host_pipelines.train_dataset(
            split, sequence_length=T, global_batch_size=4, frames=FRAMES, seed=seed, process_index=0, process_count=1
          ),
          3,
        )
      ]
    )
  )
  np.testing.assert_array_equal(run(1), run(1))
  assert not np.array_equal(run(1), run(2))


def test_hosts_read_disjoint_parts_of_each_global_batch():
  split = fake_split(LENGTHS)
  make = lambda p, n: host_pipelines.train_dataset(
    split, sequence_length=T, global_batch_size=8, frames=FRAMES, seed=0, process_index=p, process_count=n
  )
  single = _take(make(0, 1), 4)
  hosts = [_take(make(p, 2), 4) for p in range(2)]
  for k in range(4):
    assert hosts[0][k]["frames"].shape[0] == 4
    joined = np.concatenate([hosts[0][k]["frames"], hosts[1][k]["frames"]])
    np.testing.assert_array_equal(joined, single[k]["frames"])


def test_finite_epochs_end_on_a_whole_global_batch():
  split = fake_split(LENGTHS)
  counts = [
    len(
      list(
        host_pipelines.train_dataset(
          split, sequence_length=T, global_batch_size=4, frames=FRAMES, num_epochs=1, process_index=p, process_count=2
        )
      )
    )
    for p in range(2)
  ]
  assert counts == [5, 5]  # 21 clips -> 5 global batches of 4, one clip dropped


@pytest.mark.parametrize("num_workers", [0, 1])
def test_restored_iterator_yields_the_next_batch(num_workers):
  split = fake_split(LENGTHS)
  make = lambda: iter(
    host_pipelines.train_dataset(
      split,
      sequence_length=T,
      global_batch_size=4,
      frames=FRAMES,
      seed=5,
      process_index=0,
      process_count=1,
      reader=host_pipelines.ReaderSettings(num_workers=num_workers),
    )
  )
  it = make()
  for _ in range(7):  # past the end of the first epoch (21 clips)
    next(it)
  state = json.loads(json.dumps(it.get_state()))  # JSON-serialisable
  expected = [next(it)["frames"] for _ in range(2)]
  restored = make()
  restored.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(restored)["frames"], want)
  if num_workers:
    it.close()
    restored.close()


# ---------------------------------------------------------------------------- evaluation


def _scorable(split):
  return [(v, f) for v, video in enumerate(split.videos) for f in range(T - 1, video["length"])]


@pytest.mark.parametrize("num_devices,num_hosts", [(1, 1), (8, 1), (8, 2)])
def test_eval_visits_every_scorable_frame_once_in_order(num_devices, num_hosts):
  split = fake_split(LENGTHS, labels=lambda v, f: (v + f) % 3 == 0)
  labels = np.array([r["label"] for r in split.source])
  per_host = [
    list(
      host_pipelines.eval_dataset(
        split,
        sequence_length=T,
        global_batch_size=5,
        num_devices=num_devices,
        frames=FRAMES,
        process_index=p,
        process_count=num_hosts,
      )
    )
    for p in range(num_hosts)
  ]
  assert len({len(h) for h in per_host}) == 1  # same number of batches on every host
  global_batch = 5 if num_devices == 1 else 8
  assert len(per_host[0]) == -(-21 // global_batch)
  # Global batch k = host 0's rows, then host 1's rows.
  batches = [
    {key: np.concatenate([h[k][key] for h in per_host]) for key in per_host[0][k]} for k in range(len(per_host[0]))
  ]
  for b in batches:
    assert b["frames"].shape == (global_batch, T, *SIZE, 1)
    assert b["frames"].shape[0] % num_devices == 0
  batch = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
  valid = batch["valid"]
  seen = list(zip(batch["video_index"][valid].tolist(), batch["frame_index"][valid].tolist()))
  assert seen == _scorable(split)  # each once, video by video, frame by frame
  # Frames are the target and its T-1 predecessors; labels are the target's.
  clips = record_ids(batch["frames"][valid])
  starts = np.array([split.videos[v]["start"] for v, _ in seen])
  targets = starts + np.array([f for _, f in seen])
  np.testing.assert_array_equal(clips, targets[:, None] + np.arange(-T + 1, 1)[None, :])
  np.testing.assert_array_equal(batch["label"][valid], labels[targets])
  # Padding examples are masked and blank.
  assert (~valid).sum() == len(batches) * global_batch - 21
  assert np.all(batch["frames"][~valid] == -1.0)  # black
  assert np.all(batch["label"][~valid] == -1) and np.all(batch["video_index"][~valid] == -1)


def test_eval_num_batches_matches_the_pipeline():
  split = fake_split(LENGTHS)
  n = input_pipeline.eval_num_batches(split, sequence_length=T, global_batch_size=3, num_devices=8, process_count=2)
  got = list(
    host_pipelines.eval_dataset(
      split, sequence_length=T, global_batch_size=3, num_devices=8, frames=FRAMES, process_index=1, process_count=2
    )
  )
  assert n == len(got) == 3 and got[0]["frames"].shape[0] == 4


# ---------------------------------------------------------------------------- clip level

CLIP_LENGTHS = (12, 5, 3, 9)  # one source video per clip list entry below


def _dcsass_split():
  """Two source videos; video 0 holds clips of 12 and 5 frames, video 1 of 3 and 9."""
  bounds = {0: [(0, 12, 1), (12, 17, 0)], 1: [(0, 3, 0), (3, 12, 1)]}

  def clip_of(v, f):
    for k, (a, b, label) in enumerate(bounds[v]):
      if a <= f < b:
        return k, label
    raise AssertionError

  extra = lambda v, f: {
    "clip_index": clip_of(v, f)[0],
    "clip_id": f"V{v}_{clip_of(v, f)[0]}",
    "clip_label": clip_of(v, f)[1],
  }
  return fake_split((17, 12), labels=lambda v, f: clip_of(v, f)[1], extra=extra)


@pytest.mark.parametrize("policy", ["drop", "pad"])
def test_clip_level_uniform_sampling(policy):
  split = _dcsass_split()
  table = host_pipelines.clip_table(split, clip_source="clip_id", num_frames=4, short_policy=policy)
  assert len(table) == (3 if policy == "drop" else 4)
  assert (table.num_dropped, table.num_padded) == ((1, 0) if policy == "drop" else (0, 1))
  batches = list(
    host_pipelines.clip_dataset(
      split,
      table,
      train=False,
      num_frames=4,
      sampling="uniform",
      global_batch_size=4,
      frames=input_pipeline.FrameSettings(SIZE, 1, scaling="unit"),
      num_devices=4,
      process_index=0,
      process_count=1,
    )
  )
  assert len(batches) == 1
  b = batches[0]
  assert b["frames"].shape == (4, 4, *SIZE, 1) and b["frames"].max() <= 1.0
  ids = record_ids(b["frames"], scaling="unit")
  # clip of 12 frames at record 0: stride 3; 5 frames at 12: stride 1; 9 frames at 20: stride 2.
  expected = {0: [0, 3, 6, 9], 12: [12, 13, 14, 15], 20: [20, 22, 24, 26], 17: [17, 18, 19, 19]}
  for row in range(len(table)):
    assert b["valid"][row]
    np.testing.assert_array_equal(ids[row], expected[ids[row][0]])
  first = {int(ids[r][0]): r for r in range(len(table))}
  np.testing.assert_array_equal(b["label"][[first[0], first[12], first[20]]], [1, 0, 1])
  np.testing.assert_array_equal(b["frame_labels"][first[0]], [1, 1, 1, 1])
  np.testing.assert_array_equal(b["frame_index"][first[20]], [3, 5, 7, 9])  # within video 1
  if policy == "pad":
    np.testing.assert_array_equal(b["frame_labels"][first[17]], [0, 0, 0, -1])
  else:
    assert not b["valid"][3] and b["label"][3] == -1


def test_clip_level_windows_take_labels_from_frames():
  split = fake_split((10, 6), labels=lambda v, f: v == 0 and 5 <= f <= 6)
  table = host_pipelines.clip_table(split, clip_source="window", window=4, num_frames=4, short_policy="drop")
  # windows: v0 [0,4) [4,8) [8,10)x, v1 [0,4) [4,6)x
  np.testing.assert_array_equal(table.start, [0, 4, 10])
  b = next(
    iter(
      host_pipelines.clip_dataset(
        split,
        table,
        train=False,
        num_frames=4,
        sampling="contiguous",
        global_batch_size=4,
        frames=input_pipeline.FrameSettings(SIZE, 1, scaling="unit"),
        process_index=0,
        process_count=1,
      )
    )
  )
  np.testing.assert_array_equal(b["label"], [0, 1, 0, -1])
  np.testing.assert_array_equal(b["frame_labels"][1], [0, 1, 1, 0])
  np.testing.assert_array_equal(b["valid"], [True, True, True, False])


def test_clip_level_training_batches_are_shuffled_clips():
  split = _dcsass_split()
  table = host_pipelines.clip_table(split, clip_source="clip_id", num_frames=4, short_policy="drop")
  batches = _take(
    host_pipelines.clip_dataset(
      split,
      table,
      train=True,
      num_frames=4,
      sampling="uniform",
      global_batch_size=3,
      frames=input_pipeline.FrameSettings(SIZE, 1, scaling="unit"),
      seed=0,
      process_index=0,
      process_count=1,
    ),
    2,
  )
  firsts = [sorted(record_ids(b["frames"], "unit")[:, 0].tolist()) for b in batches]
  assert firsts == [[0, 12, 20], [0, 12, 20]]  # 3 clips per epoch, each once
  assert all(b["valid"].all() for b in batches)


# ---------------------------------------------------------------------------- TFDS + jax


def test_frame_differences_of_a_training_batch_match_numpy():
  """The temporal stream's input: differences of consecutive frames of each clip."""
  import jax.numpy as jnp

  from vad_jax.dual_stream.network import frame_differences

  split = fake_split([9, 7])
  frames = input_pipeline.FrameSettings(image_size=(8, 8), channels=1, jpeg_draft=False)
  ds = host_pipelines.train_dataset(
    split, sequence_length=5, global_batch_size=4, frames=frames, process_index=0, process_count=1
  )
  batch = next(iter(ds))["frames"]
  expected = np.diff(batch.astype(np.float64), axis=1)
  np.testing.assert_allclose(np.asarray(frame_differences(jnp.asarray(batch))), expected, atol=1e-6)
  assert expected.shape == (4, 4, 8, 8, 1) and np.abs(expected).max() > 0
