"""Compile a config's programs for TPU slices, GPUs or CPU devices this machine lacks, and
report memory per chip, collectives and FLOPs per step (``vad_jax.aot``).

  python -m vad_jax.studies.aot --config default --targets tpu:v5e:2x2,gpu:h100:8 \\
      --per_chip_batch 8 --out docs/aot
  python -m vad_jax.studies.aot --config default --config.model.dtype=bfloat16 --targets tpu:v6e:2x2
  python -m vad_jax.studies.aot --config default:test --targets cpu:8        # the suite's target
  python -m vad_jax.studies.aot --config default --targets tpu:v5e:1x1 --fit batch    # what fits one chip

TPU targets need ``libtpu`` (``pip install -e ".[tpu]"``); a GPU target is lowered only
unless the CUDA plugin can compile for it; ``cpu:N`` gives this process N CPU devices;
``local`` compiles for the devices of the default backend. A target that cannot be
compiled is reported with the reason, and the command exits non-zero after writing the
others. Outputs in ``--out``: ``aot_<target>.json`` and ``aot_<target>.md`` per target
(and ``aot_<target>_<program>.mlir``, the StableHLO, with ``--stablehlo``).

``--fit batch`` finds the largest batch per chip whose training step the compiler places
in one chip's memory (at the config's input size); ``--fit image_size`` the largest
square input (a multiple of the network's stride) at ``--per_chip_batch`` (default 1).
Both compile the training step a few times (``aot.largest_fit``; ``--fit_start`` seeds the
search near an estimate) and write ``fit_<what>_<target>.json``: for the paper-size
network on a v5e chip, 6 clips at 256x256 and 656 px at 1 clip (docs/scaling.md).
"""

import json
import os
import pathlib
import re
import sys

import jax
from absl import flags

from vad_jax import aot, cli, config_flags, metric_writers


def define_flags() -> None:
  config_flags.define_config("config", "default", "Model configuration (shipped name or file).", lock_config=False)
  flags.DEFINE_list("targets", ["tpu:v5e:2x2"], "Targets: tpu:v5e:2x2, tpu:v6e:2x2, gpu:h100:8, cpu:8, local, ...")
  flags.DEFINE_integer("batch", None, "Global batch (default: config.batch_size); a multiple of each target's chips.")
  flags.DEFINE_integer("per_chip_batch", None, "Instead of --batch: this many examples per chip (weak scaling).")
  flags.DEFINE_list("programs", list(aot.PROGRAMS), "Programs to compile: train_step, eval_step, scorer.")
  flags.DEFINE_string("out", None, "Directory for the JSON and Markdown reports (default: print only).")
  flags.DEFINE_bool("stablehlo", False, "Also write each program's StableHLO text to --out.")
  flags.DEFINE_enum("fit", None, ["batch", "image_size"], "Instead: the largest batch or input that fits one chip.")
  flags.DEFINE_integer(
    "fit_start", None, "First value --fit compiles (clips, or pixels of the side); the next one up is the second."
  )


def slug(spec: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", spec.lower()).strip("_")


def prepare_backends(targets: list[aot.Target]) -> None:
  """Before JAX's first computation: enough CPU devices for the ``cpu:N`` targets, and the
  CPU backend alone unless a ``local`` target asks for the real one (an installed libtpu
  would otherwise try to open a TPU this machine does not have)."""
  cpu = max((t.num_chips for t in targets if t.platform in ("cpu", "cuda")), default=0)
  if cpu and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    jax.config.update("jax_num_cpu_devices", cpu)
  if not any(t.platform == "local" for t in targets) and not os.environ.get("JAX_PLATFORMS"):
    jax.config.update("jax_platforms", "cpu")


def fit(config, target: aot.Target, what: str, per_chip_batch: int, start: int | None = None) -> dict:
  """The largest batch per chip, or square input side, whose training step fits a chip.

  ``start`` (clips, or pixels of the side) seeds the search near an estimate: each
  compile of a paper-size training step takes minutes.
  """
  capacity = target.chip.memory_bytes if target.chip else None
  if capacity is None:
    raise SystemExit(f"error: no chip memory known for {target.spec}; use a tpu: or gpu: target")
  if what == "batch":
    first = start or 1
    found = aot.largest_fit(lambda b: aot.train_step_memory(config, target, b), first, first + 1, capacity)
    found["image_size"] = list(config.data.image_size)
  else:
    stride = 2 ** (len(config.model.widths) - 1)

    def measure(units):
      sized = config.copy_and_resolve_references()
      sized.data.image_size = (units * stride, units * stride)
      return aot.train_step_memory(sized, target, per_chip_batch)

    first = max(1, (start or config.data.image_size[0] // 2) // stride)
    found = aot.largest_fit(measure, first, first + 1 if start else 2 * first, capacity, scale=lambda u: u * u)
    found = {
      "largest_side": found["largest"] * stride,
      "peak_bytes": found["peak_bytes"],
      "tried": {k * stride: v for k, v in found["tried"].items()},
      "per_chip_batch": per_chip_batch,
    }
  return {"target": target.spec, "chip_bytes": capacity, "config": aot.describe_config(config), "fit": what, **found}


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  targets = [aot.parse_target(spec) for spec in f.targets]
  prepare_backends(targets)
  out = pathlib.Path(f.out) if f.out else None
  if out:
    out.mkdir(parents=True, exist_ok=True)
  if f.fit:
    for target in targets:
      found = fit(f.config, target, f.fit, f.per_chip_batch or 1, f.fit_start)
      found["command"] = "python -m vad_jax.studies.aot " + " ".join(sys.argv[1:])
      print(json.dumps(found, indent=2), flush=True)
      if out:
        (out / f"fit_{f.fit}_{slug(target.spec)}.json").write_text(json.dumps(found, indent=2) + "\n")
    return
  unavailable = []
  for target in targets:
    chips = target.num_chips or jax.device_count()
    batch = f.per_chip_batch * chips if f.per_chip_batch else f.batch
    metric_writers.say(f"{target.spec}: lowering and compiling {', '.join(f.programs)}")
    try:
      report = aot.compile_target(f.config, target, batch, f.programs, stablehlo=f.stablehlo)
    except aot.TargetUnavailable as error:
      unavailable.append(str(error))
      print(f"cannot compile for {target.spec} here: {error}", flush=True)
      if out:
        (out / f"aot_{slug(target.spec)}.json").write_text(
          json.dumps({"target": {"spec": target.spec}, "status": "unavailable", "reason": str(error)}, indent=2) + "\n"
        )
      continue
    report["command"] = "python -m vad_jax.studies.aot " + " ".join(sys.argv[1:])
    texts = {name: entry.pop("stablehlo") for name, entry in report["programs"].items() if "stablehlo" in entry}
    text = aot.markdown(report)
    print(text, flush=True)
    if out:
      name = f"aot_{slug(target.spec)}"
      (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
      (out / f"{name}.md").write_text(f"Command: `{report['command']}`\n\n" + text)
      for program, hlo in texts.items():
        (out / f"{name}_{program}.mlir").write_text(hlo)
  if unavailable:
    raise SystemExit("error: " + "; ".join(unavailable))


COMMAND = cli.Command("aot", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
