"""Dumps, for one trained model, every per-frame quantity a deployment score could use, on
videos the model never trained on.

  PYTHONPATH=$CODE XLA_FLAGS=--xla_force_host_platform_device_count=1 \
    python dump.py --workdir runs/ped2_part0of4 --out dumps/ped2_part0of4
  ... dump.py --workdir runs/walkway --out dumps/walkway --scene scenes/walkway

Normal videos: Ped2, the training videos the run held out (``calibration.videos``); a
generated scene, ``<scene>/heldout/normal_*.npz``. For each normal video:

* ``plain__<video>.npz``: every frame with 4 predecessors, label 0;
* ``speed__<video>__r<k>.npz``: the sped-up pseudo-anomaly of ``dual_stream/validation.py``
  (inputs 3 frames apart inside a quarter-frame rectangle, one of the video's 3 busiest),
  every clip; label 1 where the sped-up inputs differ visibly from the normal ones inside
  the rectangle (at least 3 pixels by more than 10 grey levels), -1 otherwise; mask: those
  pixels, dilated by one;
* ``obj__<video>__<kind>.npz``: a foreign object pasted into the video and crossing it
  (``s32lib.OBJECT_KINDS``); clips whose frames show the object; label 1 where the target
  frame shows at least 3 pixels of it (mask: coverage > 0.3), -1 otherwise.

``--train_only``: ``train__<video>.npz`` (as ``plain``) for every video the model trained
on, to estimate per-place statistics from plentiful normal frames.

A generated scene also has ``anom__<video>.npz``: its labelled anomalous videos (labels
and masks from the renderer).

Each file: ``target_index`` [n], ``label`` [n], ``mask`` uint8 [n, h, w], the statistics of
``evaluation.STAT_KEYS``, ``err_f/err_s/err_t`` [n, h, w] (squared error per pixel, fused,
spatial, temporal), ``mem_<s|t><level>`` [n, h/2^l, w/2^l] (per-cell distance to the
nearest memory item), ``frames`` uint8 [n, T, h, w] (the clip, for motion features).
"""

import argparse
import pathlib
import time

import numpy as np
from scipy import ndimage

import s32lib
from vad_jax.dual_stream import task, validation

BATCH = 16


def batches(make_clips, count):
  for start in range(0, count, BATCH):
    yield make_clips(np.arange(start, min(count, start + BATCH)))


def signed(u8):
  return (u8.astype(np.float32) - 127.5) / 127.5


def save(path, out, **extra):
  out = s32lib.compact(out)
  out.update(extra)
  np.savez(path, **out)


def dump_video(fn, out_dir, name, frames, labels=None, masks=None, prefix="plain"):
  t = 5
  n = len(frames)
  targets = np.arange(t - 1, n)
  index = targets[:, None] + np.arange(-(t - 1), 1)
  out = s32lib.run_clips(fn, batches(lambda rows: signed(frames[index[rows]]), len(targets)), BATCH)
  lab = np.zeros(len(targets), np.int32) if labels is None else labels[targets].astype(np.int32)
  msk = np.zeros((len(targets), *frames.shape[1:3]), np.uint8) if masks is None else masks[targets].astype(np.uint8)
  save(out_dir / f"{prefix}__{name}.npz", out, target_index=targets, label=lab, mask=msk, frames=frames[index][..., 0])


def dump_speed(fn, out_dir, name, frames, rng):
  pseudo = [v for v in validation.pseudo_anomaly_videos({name: frames}, 5, 3, 3) if v.name.endswith("/whole")]
  for v in pseudo:
    r = v.name.split("/")[1]
    rows = np.arange(len(v.labels))
    top, left, hh, ww = v.region
    normal_in = frames[v.normal_index][:, :-1, ..., 0].astype(np.int16)
    fast_in = frames[v.fast_index][:, :-1, ..., 0].astype(np.int16)
    changed = (np.abs(fast_in - normal_in) > 10).any(axis=1)  # [n, h, w]
    inside = np.zeros(frames.shape[1:3], bool)
    inside[top : top + hh, left : left + ww] = True
    changed &= inside
    mask = np.stack([ndimage.binary_dilation(c) & inside for c in changed]).astype(np.uint8)
    label = np.where(changed.reshape(len(rows), -1).sum(1) >= 3, 1, -1).astype(np.int32)
    out = s32lib.run_clips(fn, batches(lambda rr: v.clips(rr, np.ones(len(rr), bool)), len(rows)), BATCH)
    clips_u8 = frames[v.normal_index][..., 0].copy()
    clips_u8[:, :-1, top : top + hh, left : left + ww] = frames[v.fast_index][:, :-1, top : top + hh, left : left + ww, 0]
    targets = v.normal_index[:, -1]
    save(
      out_dir / f"speed__{name}__r{r}.npz",
      out,
      target_index=targets,
      label=label,
      mask=mask,
      frames=clips_u8,
      region=np.array(v.region),
    )


def dump_objects(fn, out_dir, name, frames, rng):
  rows = s32lib.busy_rows(frames)
  n = len(frames)
  for kind in s32lib.OBJECT_KINDS:
    t_first = int(rng.integers(5, max(6, n // 3)))
    video, cover = s32lib.pseudo_object_video(frames, kind, rng, t_first, rows)
    present = cover.reshape(n, -1).sum(1) > 0.05
    targets = np.array([t for t in range(4, n) if present[t - 4 : t + 1].any()])
    if not len(targets):
      continue
    index = targets[:, None] + np.arange(-4, 1)
    out = s32lib.run_clips(fn, batches(lambda rr: signed(video[index[rr]]), len(targets)), BATCH)
    label = np.where(cover[targets].reshape(len(targets), -1).sum(1) >= 3, 1, -1).astype(np.int32)
    mask = (cover[targets] > 0.3).astype(np.uint8)
    save(out_dir / f"obj__{name}__{kind}.npz", out, target_index=targets, label=label, mask=mask, frames=video[index][..., 0])


def training_frames(config, scene):
  """name -> uint8 [n, h, w, c] of the videos the model trained on."""
  if scene:
    from PIL import Image

    out = {}
    for d in sorted(pathlib.Path(scene, "footage", "train").iterdir()):
      files = sorted(d.glob("*.png"), key=lambda p: int(p.stem))
      out[d.name] = np.stack([np.asarray(Image.open(f))[..., None] for f in files])
    return out
  from vad_jax.data import input_pipeline, loaders, sources

  split = sources.select_videos(input_pipeline.open_split(config.data, config.data.train_split), config.calibration.videos, exclude=True)
  settings = input_pipeline.frame_settings(config.data, "signed_unit")
  return {
    str(v["name"]): loaders.read_frames(split.source, np.arange(v["start"], v["start"] + v["length"]), settings)[0]
    for v in split.videos
  }


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--scene", default="")
  p.add_argument("--train_only", action="store_true", help="only the videos the model trained on (train__*.npz)")
  args = p.parse_args()
  out_dir = pathlib.Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  config, state, _ = s32lib.load(args.workdir)
  fn = s32lib.outputs_fn(config, state)
  rng = np.random.default_rng(32)
  start = time.time()
  if args.train_only:
    for name, frames in training_frames(config, args.scene).items():
      dump_video(fn, out_dir, name, frames, prefix="train")
      print("train", name, frames.shape, f"{time.time() - start:.0f}s", flush=True)
    return
  if args.scene:
    held = sorted(pathlib.Path(args.scene, "heldout").glob("*.npz"))
    normals = {p.stem: np.load(p)["frames"] for p in held if p.stem.startswith("normal_")}
    for p in held:
      if p.stem.startswith("anom_"):
        d = np.load(p)
        dump_video(fn, out_dir, p.stem, d["frames"], d["labels"], d["masks"], prefix="anom")
        print(p.stem, str(d["kind"]), f"{time.time() - start:.0f}s", flush=True)
  else:
    normals = task.held_out_frames(config)
  for name, frames in normals.items():
    dump_video(fn, out_dir, name, frames)
    dump_speed(fn, out_dir, name, frames, rng)
    dump_objects(fn, out_dir, name, frames, rng)
    print(name, frames.shape, f"{time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
  main()
