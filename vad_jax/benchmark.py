"""Model benchmark: inference frames/s, training-step time, FLOPs per frame, achieved
GFLOP/s and the machine's measured matmul peak, printed as one table.

  python -m vad_jax.benchmark --config configs/default.py --batch 8
  python -m vad_jax.benchmark --config configs/default.py:cpu --batch 8 --dtype bfloat16

  python -m vad_jax.benchmark --config configs/hybrid_dcsass.py --batch 2   # classifiers too

FLOPs come from XLA's cost analysis of the compiled programs (multiply-adds count 2).
"Frames" are predicted frames for the prediction network (one per clip of
``sequence_length`` input frames) and classified frames for the classifiers (``batch x
clip_frames`` per call; the ConvLSTM scores a clip, so its frames/s is clip frames read).
Classifier inputs are random frames (and random boxes for HybridModel-1), so the box
source's host time is not included.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from vad_jax import classification
from vad_jax.models.build import build_model, is_classifier
from vad_jax.train import TrainState, make_optimizer, steps_for

def define_flags() -> None:
  config_flags.DEFINE_config_file("config", "configs/default.py", "Model configuration.")
  flags.DEFINE_integer("batch", None, "Batch size (default: config.batch_size).")
  flags.DEFINE_integer("steps", 5, "Timed repetitions of each program.")
  flags.DEFINE_string("dtype", None, "Override config.model.dtype (float32 or bfloat16).")
  flags.DEFINE_bool("skip_train", False, "Time only the forward pass.")


def time_call(fn, *args, steps: int) -> float:
  """Median seconds per call after one warm-up call (compilation excluded)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def flops_of(jitted, *args) -> float:
  analysis = jitted.lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan"))) if analysis else float("nan")


def matmul_peak(dtype=jnp.float32, n: int = 2048, steps: int = 5) -> float:
  """Measured GFLOP/s of a square matmul on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  seconds = time_call(jax.jit(jnp.dot), a, b, steps=steps)
  return 2 * n ** 3 / seconds / 1e9


def example_batch(config, batch: int) -> tuple[dict[str, jax.Array], int]:
  """Random inputs of the configured shapes and the number of frames they score."""
  h, w = config.data.image_size
  key = jax.random.key(0)
  if not is_classifier(config):
    frames = jax.random.uniform(key, (batch, config.model.sequence_length, h, w, config.data.channels),
                                minval=-1, maxval=1)
    return {"frames": frames}, batch
  n, k = config.data.clip_frames, config.boxes.max_boxes
  inputs = {"frames": jax.random.uniform(key, (batch, n, h, w, config.data.channels)),
            "label": jnp.arange(batch) % 2, "frame_labels": jnp.broadcast_to(jnp.arange(batch)[:, None] % 2, (batch, n)),
            "valid": jnp.ones((batch,), bool)}
  if classification.needs_boxes(config):
    corner = jax.random.uniform(jax.random.key(1), (batch, n, k, 2), maxval=min(h, w) / 2)
    inputs.update(boxes=jnp.concatenate([corner, corner + min(h, w) / 4], axis=-1),
                  box_scores=jnp.ones((batch, n, k)), box_valid=jnp.ones((batch, n, k), bool))
  return inputs, batch * n


def run(config, batch: int, steps: int, skip_train: bool = False) -> dict[str, float]:
  model = build_model(config)
  inputs, frames_per_call = example_batch(config, batch)
  tx = make_optimizer(config, 1000)

  def init(rng):
    if is_classifier(config):
      variables = classification.init_variables(model, config, rng, inputs)
    else:
      variables = model.init(rng, inputs["frames"], train=False)
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                             batch_stats=variables.get("batch_stats", {}), memory=variables.get("memory", {}))

  state = jax.jit(init)(jax.random.key(1))
  train_step, eval_step = steps_for(model, config)
  if is_classifier(config):
    forward = jax.jit(lambda s, x: model.apply({"params": s.params, "batch_stats": s.batch_stats},
                                               *classification.model_inputs(config, x), train=False)[0])
    frames = inputs
  else:
    forward = jax.jit(lambda s, x: model.apply(s.variables, x, train=False)[0])
    frames = inputs["frames"]
  result = {
      "params (M)": sum(x.size for x in jax.tree.leaves(state.params)) / 1e6,
      "forward GFLOP/frame": flops_of(forward, state, frames) / frames_per_call / 1e9,
  }
  seconds = time_call(forward, state, frames, steps=steps)
  result["forward frames/s"] = frames_per_call / seconds
  result["forward GFLOP/s"] = result["forward GFLOP/frame"] * frames_per_call / seconds
  eval_fn = jax.jit(eval_step)
  result["eval step frames/s"] = frames_per_call / time_call(eval_fn, state, inputs, steps=steps)
  if not skip_train:
    step = jax.jit(train_step, donate_argnums=0)
    result["train GFLOP/step"] = flops_of(step, state, inputs) / 1e9
    state_copy = jax.tree.map(jnp.copy, state)
    step_fn = lambda s: step(s, inputs)
    # Donated state: thread it through the timed calls.
    state_copy, _ = step_fn(state_copy)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      state_copy, metrics = step_fn(state_copy)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    result["train step (s)"] = float(np.median(times))
    result["train GFLOP/s"] = result["train GFLOP/step"] / result["train step (s)"]
  peak = matmul_peak(steps=steps)
  result["matmul peak fp32 GFLOP/s"] = peak
  result["forward % of peak"] = 100 * result["forward GFLOP/s"] / peak
  return result


def main(argv):
  del argv
  f = flags.FLAGS
  config = f.config
  if f.dtype:
    config.model.dtype = f.dtype
  batch = f.batch or config.batch_size
  result = run(config, batch, f.steps, f.skip_train)
  h, w = config.data.image_size
  shape = (f"{h}x{w}, N={config.data.clip_frames}" if is_classifier(config) else
           f"widths {tuple(config.model.widths)}, {h}x{w}, T={config.model.sequence_length}")
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}); "
        f"{config.model.name}, {shape}, batch {batch}, dtype {config.model.dtype}")
  width = max(len(k) for k in result)
  print("-" * (width + 14))
  for key, value in result.items():
    print(f"{key:<{width}}  {value:12.3f}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
