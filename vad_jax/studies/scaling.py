"""Step time of data-parallel training at 1 to 256 chips (weak scaling), from an AOT report's
FLOPs and gradient all-reduce bytes and the chips' datasheet figures (docs/scaling.md).

  python -m vad_jax.studies.scaling --report docs/aot/default_bf16/aot_tpu_v5e_2x2.json --mfu 0.25

The model, per step and chip, with the global batch growing with the chips:

* compute = FLOPs per chip / (peak FLOP/s x MFU), the same at every chip count;
* all-reduce = 2 (n - 1) / n x bytes / bandwidth (a ring over n chips; bytes = the
  training step's all-reduced bytes, which data parallelism does not change with n);
* step = compute + all-reduce (nothing overlapped) and max(compute, all-reduce) (all of it
  overlapped): the two ends of what the hardware can do.

Bandwidths: a TPU pod's all-reduce bandwidth per chip (the datasheet's "all-reduce
bandwidth per pod" over its 256 chips); for H100s the NVLink bandwidth in one direction
(450 GB/s) up to 8 GPUs and one 400 Gbit/s InfiniBand port per GPU (50 GB/s) beyond, where
the ring crosses hosts.
"""

import dataclasses
import json
import pathlib

from absl import flags

from vad_jax import cli

CHIP_COUNTS = (1, 8, 64, 256)


@dataclasses.dataclass(frozen=True)
class ChipFigures:
  name: str
  peak_bf16: float  # FLOP/s, dense
  memory: float  # bytes
  near_bandwidth: float  # bytes/s per chip for all-reduce among up to near_chips
  near_chips: int
  far_bandwidth: float  # bytes/s per chip beyond near_chips
  source: str  # CITATIONS.bib keys


CHIPS = {
  # 197 TFLOP/s bf16, 16 GB; all-reduce bandwidth per pod 51.2 TB/s over 256 chips.
  "tpu_v5e": ChipFigures("TPU v5e", 197e12, 16e9, 51.2e12 / 256, 256, 51.2e12 / 256, "google_tpu_v5e"),
  # 918 TFLOP/s bf16, 32 GB; all-reduce bandwidth per pod 102.4 TB/s over 256 chips.
  "tpu_v6e": ChipFigures("TPU v6e", 918e12, 32e9, 102.4e12 / 256, 256, 102.4e12 / 256, "google_tpu_v6e"),
  # 989 TFLOP/s bf16 dense (1,979 with sparsity), 80 GB; NVLink 900 GB/s (450 each way)
  # within a host of 8, one 400 Gbit/s InfiniBand port per GPU between hosts.
  "h100": ChipFigures("H100 SXM", 989e12, 80e9, 450e9, 8, 50e9, "nvidia_h100, nvidia_dgx_h100"),
}


def all_reduce_seconds(nbytes: float, chips: int, figures: ChipFigures) -> float:
  """Ring all-reduce of ``nbytes`` over ``chips`` chips: 2 (n - 1) / n x bytes / bandwidth."""
  if chips <= 1:
    return 0.0
  bandwidth = figures.near_bandwidth if chips <= figures.near_chips else figures.far_bandwidth
  return 2 * (chips - 1) / chips * nbytes / bandwidth


def step_times(flops: float, nbytes: float, figures: ChipFigures, mfu: float, counts=CHIP_COUNTS) -> list[dict]:
  """One row per chip count: compute, all-reduce and the two step-time bounds (seconds)."""
  compute = flops / (figures.peak_bf16 * mfu)
  rows = []
  for n in counts:
    reduce = all_reduce_seconds(nbytes, n, figures)
    rows.append(
      {
        "chips": n,
        "compute_s": compute,
        "all_reduce_s": reduce,
        "step_s_serial": compute + reduce,
        "step_s_overlapped": max(compute, reduce),
        "efficiency_serial": compute / (compute + reduce),
      }
    )
  return rows


def markdown(report: dict, mfu: float) -> str:
  train = report["programs"]["train_step"]
  flops, nbytes = train["flops"], train["collective_bytes"]
  batch = report["batch"]["per_chip"]
  lines = [
    f"Per chip and step at {batch} clips per chip: {flops / 1e9:,.1f} GFLOP, {nbytes / 1e6:,.2f} MB all-reduced "
    f"({report['target']['spec']}, {report['config']['dtype']}); MFU {mfu:.0%}.",
    "",
    "| chip | chips | global batch | compute ms | all-reduce ms | step ms (serial) | step ms (overlapped) "
    "| scaling efficiency (serial) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for figures in CHIPS.values():
    for row in step_times(flops, nbytes, figures, mfu):
      lines.append(
        f"| {figures.name} | {row['chips']} | {row['chips'] * batch} | {1e3 * row['compute_s']:.2f} "
        f"| {1e3 * row['all_reduce_s']:.3f} | {1e3 * row['step_s_serial']:.2f} | {1e3 * row['step_s_overlapped']:.2f} "
        f"| {100 * row['efficiency_serial']:.1f} % |"
      )
  return "\n".join(lines) + "\n"


def define_flags() -> None:
  flags.DEFINE_string("report", None, "An AOT report (aot_<target>.json) with a compiled train_step.", required=True)
  flags.DEFINE_float("mfu", 0.25, "Assumed model FLOP utilisation (share of the bf16 peak).")


def main(argv) -> None:
  del argv
  path = pathlib.Path(flags.FLAGS.report)
  report = json.loads(path.read_text())
  if report.get("programs", {}).get("train_step", {}).get("status") != "compiled":
    raise ValueError(f"{path} has no compiled train_step")
  print(markdown(report, flags.FLAGS.mfu), end="")


COMMAND = cli.Command("scaling", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
