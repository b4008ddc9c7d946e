"""Shared helpers of the issue-32 study (outside the repository; imports the frozen clone
at $CODE (a checkout of b3a9277) through PYTHONPATH).

* ``load(workdir)``: config, state and model of a trained run's newest checkpoint.
* ``outputs_fn(config, state)``: a jitted function of clips ``[B, T, h, w, c]`` in [-1, 1]
  returning, per clip, everything a score could use: the standard per-frame statistics
  (``evaluation.STAT_KEYS``), the per-pixel squared error of the fused, spatial and
  temporal predictions (frames in [0, 1]), and per memory level and stream the per-cell
  distance of the query to its nearest memory item (Eq. 15 before its mean over cells).
* ``pseudo_objects``: appearance pseudo-anomalies (a foreign object pasted into every
  frame of a normal video, moving on a straight line), with labels and pixel masks.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from vad_jax import sharding
from vad_jax import state as state_lib
from vad_jax.dual_stream import scoring, task
from vad_jax.dual_stream.memory import Memory


def load(workdir):
  mesh = sharding.make_mesh([jax.devices()[0]])
  config, state = state_lib.restore(pathlib.Path(workdir) / "checkpoints", None, mesh)
  return config, state, task.build_model(config)


def outputs_fn(config, state):
  model = task.build_model(config)
  memory_vars = state.variables.get("memory", {})

  def fn(variables, clips):
    (fused, aux), inter = model.apply(
      variables,
      clips,
      train=False,
      capture_intermediates=lambda mdl, _: isinstance(mdl, Memory),
      mutable=["intermediates"],
    )
    out = dict(scoring.frame_statistics(aux, fused, config.score.memory_level))
    target = aux["target"]
    sq = lambda p: jnp.mean(jnp.square((p - target) / 2.0), axis=-1)
    out["err_f"] = sq(fused)
    out["err_s"] = sq(aux["spatial"]["frame"])
    out["err_t"] = sq(aux["temporal"]["frame"])
    for stream in ("spatial", "temporal"):
      mods = inter["intermediates"].get(stream, {})
      for name in sorted(k for k in mods if k.startswith("memory")):
        level = int(name[len("memory") :])
        mem_out = mods[name]["__call__"][0][0]  # [b, h, w, 2c]: normalised query, read
        items = variables["memory"][stream][name]["items"]
        c = items.shape[-1]
        q = mem_out[..., :c]
        nearest = jnp.max(jnp.einsum("bhwc,mc->bhwm", q, items), axis=-1)
        out[f"mem_{stream[0]}{level}"] = jnp.sqrt(jnp.maximum(2.0 - 2.0 * nearest, 0.0))
    return out

  jitted = jax.jit(fn)
  variables = state.variables
  del memory_vars
  return lambda clips: jitted(variables, clips)


def run_clips(fn, clips_iter, batch_size=16):
  """``fn`` over batches of clips (float32 [n, T, h, w, c]); host dict of arrays."""
  parts = []
  for clips in clips_iter:
    n = len(clips)
    if n < batch_size:
      clips = np.concatenate([clips, np.repeat(clips[-1:], batch_size - n, axis=0)])
    parts.append((fn(clips), n))
  host = jax.device_get([p for p, _ in parts])
  return {k: np.concatenate([h[k][:n] for h, (_, n) in zip(host, parts)]) for k in host[0]}


FLOAT16 = ("err_", "mem_")


def compact(out):
  return {k: (v.astype(np.float16) if k.startswith(FLOAT16) else v.astype(np.float32)) for k, v in out.items()}


# ----------------------------------------------------------------------- pseudo-objects
def _render_object(h, w, cx, cy, ow, oh, ss=4):
  """Coverage [h, w] in [0, 1] of an axis-aligned box centred at (cx, cy)."""
  yy, xx = np.mgrid[0 : h * ss, 0 : w * ss] / ss + 0.5 / ss
  inside = (np.abs(xx - cx) <= ow / 2) & (np.abs(yy - cy) <= oh / 2)
  return inside.reshape(h, ss, w, ss).mean(axis=(1, 3))


OBJECT_KINDS = {
  # name: (width, height, speed px/frame, texture)  at 64x64; Ped2 walkers are about 2x6 px
  # and walk 0.2-0.4 px/frame at this size
  "cart": (7.0, 5.0, 0.35, "frame"),  # appearance at walking speed (a cart, a wheelchair)
  "cyclist": (3.0, 7.0, 1.0, "plain"),  # a larger figure at about 3x walking speed
  "skater": (2.0, 6.0, 0.8, "plain"),  # a walker-sized figure at 2-3x walking speed
}


def busy_rows(frames, top=0.25):
  """Rows where normal motion is densest (candidates for object paths)."""
  f = frames[..., 0].astype(np.float32)
  motion = np.abs(f[1:] - f[:-1]).mean(axis=(0, 2))
  rows = np.argsort(motion)[::-1][: max(1, int(len(motion) * top))]
  return np.sort(rows)


def pseudo_object_video(frames, kind, rng, t_first, rows):
  """``frames`` (uint8 [n, h, w, c]) with an object of ``kind`` crossing horizontally
  from frame ``t_first`` along a row drawn from ``rows``. Returns (frames, coverage [n, h,
  w] float32)."""
  n, h, w, c = frames.shape
  ow, oh, speed, texture = OBJECT_KINDS[kind]
  cy = float(rng.choice(rows)) - oh / 2 + 1
  cy = float(np.clip(cy, oh / 2, h - oh / 2))
  direction = rng.choice([-1.0, 1.0])
  x0 = -ow if direction > 0 else w + ow
  level = rng.uniform(0.1, 0.3) if rng.uniform() < 0.7 else rng.uniform(0.75, 0.9)
  yy, xx = np.mgrid[0:h, 0:w]
  out = frames.astype(np.float32) / 255.0
  cover = np.zeros((n, h, w), np.float32)
  noise = rng.standard_normal((h, w)).astype(np.float32) * 0.02
  for t in range(t_first, n):
    cx = x0 + direction * speed * (t - t_first)
    if cx < -ow or cx > w + ow:
      break
    cov = _render_object(h, w, cx, cy, ow, oh)
    if texture == "frame":  # a darker rim around a lighter body
      rim = (np.abs(xx + 0.5 - cx) > ow / 2 - 1) | (np.abs(yy + 0.5 - cy) > oh / 2 - 1)
      tex = np.where(rim, level * 0.6, level + 0.1)
    else:
      tex = np.full((h, w), level)
    obj = np.clip(tex + noise, 0, 1)
    out[t] = out[t] * (1 - cov[..., None]) + obj[..., None] * cov[..., None]
    cover[t] = cov
  return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8), cover
