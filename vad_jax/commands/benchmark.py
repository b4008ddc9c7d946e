"""Benchmark a model: inference frames/s, training-step time, FLOPs per frame, achieved
GFLOP/s against the machine's measured matmul peak; or the detector end to end.

  vad-jax benchmark --config default --batch 8
  vad-jax benchmark --config default:cpu --batch 8 --dtype bfloat16
  vad-jax benchmark --config hybrid_dcsass --batch 2          # classifiers too
  vad-jax benchmark --config ucsd_ped2:cpu --detector_frames 1000

FLOPs come from XLA's cost analysis of the compiled programs (multiply-adds count 2);
inputs are random frames of the task's example batch (vad_jax/throughput.py says what is
counted and timed).
"""

import jax
from absl import flags

from vad_jax import cli, config_flags, throughput, xla_cpu


def define_flags() -> None:
  config_flags.define_config(
    "config",
    "default",
    "Model configuration (shipped name or file; --config.FIELD=VALUE overrides).",
    lock_config=False,
  )
  flags.DEFINE_integer("batch", None, "Batch size (default: config.batch_size).")
  flags.DEFINE_integer("steps", 5, "Timed repetitions of each program.")
  flags.DEFINE_string("dtype", None, "Override config.model.dtype (float32 or bfloat16).")
  flags.DEFINE_bool("skip_train", False, "Time only the forward pass.")
  flags.DEFINE_integer(
    "detector_frames",
    0,
    "Instead: time the detector end to end (decode, preprocess, score) on a video of this "
    "many frames written for the purpose, at --detector_size, with the config's model (random weights).",
  )
  flags.DEFINE_list("detector_size", ["240", "360"], "Height,width of that video (default: UCSD Ped2's).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  config = f.config
  if f.detector_frames:
    size = tuple(int(s) for s in f.detector_size)
    result = throughput.detector_throughput(config, f.detector_frames, size, f.batch or 8)
    print(
      f"detector on {jax.devices()[0].device_kind} ({jax.default_backend()}), {config.model.name}, "
      f"{size[0]}x{size[1]} video -> model input {tuple(config.data.image_size)}, batch {f.batch or 8}"
    )
    for key, value in result.items():
      print(f"{key:<32}  {value:12.3f}")
    return
  if f.dtype:
    config.model.dtype = f.dtype
  batch = f.batch or config.batch_size
  result = throughput.run(config, batch, f.steps, f.skip_train)
  h, w = config.data.image_size
  keys = ("widths", "sequence_length", "backbone", "conv_impl")
  shape = ", ".join(f"{k}={config.model[k]}" for k in keys if k in config.model)
  shape += f", {h}x{w}" + (f", N={config.data.clip_frames}" if "clip_frames" in config.data else "")
  print(
    f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}); "
    f"{config.model.name}, {shape}, batch {batch}, dtype {config.model.dtype}"
    + (f"; YNNPACK fusion types {xla_cpu.ynn_fusion_types()!r}" if jax.default_backend() == "cpu" else "")
  )
  width = max(len(k) for k in result)
  print("-" * (width + 14))
  for key, value in result.items():
    print(f"{key:<{width}}  {value:12.3f}")


COMMAND = cli.Command("benchmark", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
