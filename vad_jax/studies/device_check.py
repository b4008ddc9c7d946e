"""A GPU run, ready to go: benchmark the paper-scale network, train and evaluate UCSD Ped2
for a fixed time, and write one results file.

  make device-check PED2=/path/to/ucsd_ped2     # installs the CUDA extra first (~10 min in all)
  python -m vad_jax.studies.device_check --workdir runs/device_check \\
      --train_config.data.manual_dir=/path/to/ucsd_ped2
  python -m vad_jax.studies.device_check --tiny --workdir /tmp/device_check   # seconds, on a CPU

Steps, each timed; a step that fails (out of memory at batch 32, say) is recorded in the
results and the next one runs:

1. the environment: JAX version, backend, devices;
2. ``throughput.run`` on ``--bench_config`` (the paper-scale network, 256x256) for every
   ``--dtypes`` x ``--batches``: inference (forward) and training-step frames/s, GFLOP/s
   and share of the matmul peak measured in the same dtype; then one extra row with the
   convolution implementation ``auto`` does not train with on this backend (``mixed``
   on accelerators, ``native`` on CPUs; ``model.conv_impl``) at the last dtype and
   batch, to check that choice;
3. the AOT report (``vad_jax.aot``) of ``--bench_config`` in ``--train_dtype`` at the first
   batch, compiled for the local devices: memory per chip, collectives and FLOPs per step
   as the compiler plans them, beside the measured rows (``docs/scaling.md`` models step
   times from the same figures);
4. training ``--train_config`` (``ucsd_ped2``) for about ``--train_seconds``: the number
   of steps is the budget divided by the measured step time (the larger of the
   benchmark's step and the input pipeline's batch time), so the learning-rate schedule
   runs to its end; then the task's evaluation of the test split.

Everything must fit ``--deadline_seconds`` counted from ``--started_at`` (the Makefile
passes the time before the installation): benchmark rows that would start too late are
skipped and the training budget shrinks (recorded as such).

Outputs in ``--workdir``: ``device_check.json`` (everything), ``device_check.md`` (the
tables), ``train/`` (the training run: checkpoints, metrics, evaluation).
"""

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

import jax
import jaxlib
import ml_collections
from absl import flags

from vad_jax import aot, cli, config_flags, loop, metric_writers, tasks, throughput
from vad_jax import sharding as sharding_lib

# Kept free for the training run's compilation, checkpoint and evaluation when the
# deadline shrinks the budget (seconds on a GPU; the tiny mode ignores it).
TRAIN_RESERVE_SECONDS = 120


@dataclasses.dataclass
class Options:
  workdir: pathlib.Path
  bench_config: ml_collections.ConfigDict
  train_config: ml_collections.ConfigDict
  batches: Sequence[int] = (8, 32)
  dtypes: Sequence[str] = ("float32", "bfloat16")
  steps: int = 5  # timed repetitions of each benchmarked program
  train_seconds: float = 150.0
  train_dtype: str = "bfloat16"
  min_train_steps: int = 1
  max_train_steps: Optional[int] = None
  deadline_seconds: float = 540.0
  started_at: float = dataclasses.field(default_factory=time.time)
  compare_conv_impl: str = ""  # an extra row with this model.conv_impl ("": none)
  reserve_seconds: float = TRAIN_RESERVE_SECONDS
  aot_programs: Sequence[str] = aot.PROGRAMS  # compiled for the local devices ((): no AOT report)
  aot_seconds: float = 90.0  # skipped unless this much time is left besides training
  mode: str = "full"


def tiny_options(workdir: pathlib.Path, data_dir: str = "") -> Options:
  """The CPU mode of the test suite: the test-size network at 16x16 with two levels, a few
  training steps of the tiny synthetic set (prepared under ``data_dir`` or the workdir)."""
  train_config = config_flags.load("synthetic:test")
  train_config.data.data_dir = data_dir
  bench_config = config_flags.load("default:test")
  for config in (bench_config, train_config):
    # Native convolutions: on a CPU the FLOP count then needs no second compilation.
    config.model.conv_impl = "native"
    # Two levels: compiling the network dominates the tiny mode's time.
    config.model.widths = (4, 8)
  return Options(
    workdir=workdir,
    bench_config=bench_config,
    train_config=train_config,
    batches=(train_config.batch_size,),  # the training run reuses the benchmark's step time
    steps=1,
    train_seconds=2.0,
    train_dtype="float32",
    min_train_steps=2,
    max_train_steps=4,
    deadline_seconds=1e9,
    reserve_seconds=0.0,
    compare_conv_impl="mixed",
    aot_programs=("eval_step",),
    aot_seconds=0.0,
    mode="tiny",
  )


def environment() -> dict[str, Any]:
  devices = jax.devices()
  memory = {}
  try:
    stats = devices[0].memory_stats() or {}
    memory = {"bytes_limit": stats.get("bytes_limit")}
  except Exception:  # not every backend reports memory
    pass
  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "backend": jax.default_backend(),
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "host_cpus": os.cpu_count(),
    "hostname": platform.node(),
    **memory,
  }


def _error(error: BaseException) -> str:
  return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"


class Clock:
  """Seconds since ``started_at`` and what is left before the deadline."""

  def __init__(self, options: Options):
    self.options = options

  def elapsed(self) -> float:
    return time.time() - self.options.started_at

  def left(self) -> float:
    return self.options.deadline_seconds - self.elapsed()


def benchmark_rows(options: Options, clock: Clock) -> list[dict[str, Any]]:
  """One row per dtype x batch (and the other convolution implementation at the end)."""
  cases = [(dtype, batch, None) for dtype in options.dtypes for batch in options.batches]
  base = options.bench_config
  if options.compare_conv_impl and cases:
    cases.append((cases[-1][0], cases[-1][1], options.compare_conv_impl))
  rows = []
  for dtype, batch, conv_impl in cases:
    config = base.copy_and_resolve_references()
    config.model.dtype = dtype
    if conv_impl:
      config.model.conv_impl = conv_impl
    row = {"dtype": dtype, "batch": batch, "conv_impl": config.model.get("conv_impl", "")}
    spent = sum(r.get("seconds", 0.0) for r in rows)
    typical = spent / len(rows) if rows else 0.0
    if clock.left() - options.reserve_seconds - options.train_seconds < typical:
      row["skipped"] = f"time budget ({clock.elapsed():.0f} s of {options.deadline_seconds:.0f} s spent)"
      rows.append(row)
      continue
    start = time.time()
    metric_writers.say(f"benchmark: {dtype}, batch {batch}" + (f", conv_impl={conv_impl}" if conv_impl else ""))
    try:
      row.update(throughput.run(config, batch, options.steps, time_eval=False))
    except Exception as error:  # an out-of-memory batch is a result, not the end
      row["error"] = _error(error)
    row["seconds"] = time.time() - start
    rows.append(row)
  return rows


def aot_report(options: Options, clock: Clock) -> dict[str, Any]:
  """The AOT report of the benchmarked network for the local devices (or why it is missing)."""
  if not options.aot_programs:
    return {"skipped": "no programs"}
  if clock.left() - options.reserve_seconds - options.train_seconds < options.aot_seconds:
    return {"skipped": f"time budget ({clock.elapsed():.0f} s of {options.deadline_seconds:.0f} s spent)"}
  config = options.bench_config.copy_and_resolve_references()
  config.model.dtype = options.train_dtype
  batch = options.batches[0] * jax.device_count()
  metric_writers.say(f"AOT report: {', '.join(options.aot_programs)} at batch {batch}, {options.train_dtype}")
  start = time.time()
  try:
    report = aot.compile_target(config, "local", batch, options.aot_programs)
  except Exception as error:  # recorded: the check goes on to training
    return {"error": _error(error), "seconds": time.time() - start}
  for entry in report["programs"].values():
    entry.pop("collectives", None)  # the summary by op stays; the op list is long
  report["seconds"] = time.time() - start
  return report


def input_seconds_per_batch(config: ml_collections.ConfigDict) -> float:
  """Seconds per global training batch of the input pipeline alone, over enough batches
  to drain the workers' prefetch buffers (after the first batch)."""
  data = config.data
  batches = 2 * max(1, data.num_workers) * max(1, data.prefetch_batches) + 8
  task = tasks.for_config(config)
  iterator, _ = task.train_iterator(config, sharding_lib.make_mesh())
  jax.block_until_ready(next(iterator))
  start = time.perf_counter()
  for _ in range(batches):
    jax.block_until_ready(next(iterator))
  seconds = (time.perf_counter() - start) / batches
  if hasattr(iterator, "close"):
    iterator.close()
  return seconds


def train_run(options: Options, clock: Clock, rows: list[dict[str, Any]]) -> dict[str, Any]:
  """Trains ``train_config`` for about the budget's steps and evaluates it."""
  config = options.train_config.copy_and_resolve_references()
  config.model.dtype = options.train_dtype
  config.data.data_dir = config.data.data_dir or str(options.workdir / "tfds")
  config.eval_plots = False
  workdir = options.workdir / "train"
  shutil.rmtree(workdir, ignore_errors=True)  # the check always trains from scratch
  record: dict[str, Any] = {"dtype": options.train_dtype, "batch": config.batch_size}
  start = time.time()
  task = tasks.for_config(config)
  task.prepare(config)
  record["prepare_seconds"] = time.time() - start

  # The step time: the benchmark's, at this dtype and batch, if it ran; else measured here.
  matching = [
    r
    for r in rows
    if r.get("dtype") == options.train_dtype and r.get("batch") == config.batch_size and "train step (s)" in r
  ]
  if matching and matching[0]["conv_impl"] == config.model.get("conv_impl", ""):
    step_seconds = matching[0]["train step (s)"]
    record["step_seconds_from"] = "benchmark"
  else:
    step_seconds = throughput.run(config, config.batch_size, 2, time_eval=False)["train step (s)"]
    record["step_seconds_from"] = "measured on the training config"
  record["input_seconds_per_batch"] = input_seconds_per_batch(config)
  record["estimated_step_seconds"] = max(step_seconds, record["input_seconds_per_batch"])
  budget = min(options.train_seconds, clock.left() - options.reserve_seconds)
  record["budget_seconds"] = budget
  steps = int(budget / record["estimated_step_seconds"]) if budget > 0 else 0
  steps = max(options.min_train_steps, steps)
  if options.max_train_steps:
    steps = min(options.max_train_steps, steps)
  config.num_train_steps = steps
  config.log_every_steps = max(1, min(config.log_every_steps, steps))
  config.checkpoint_every_steps = steps
  record["steps"] = steps
  metric_writers.say(f"training {steps} steps (~{budget:.0f} s) in {workdir}")
  start = time.time()
  results = loop.train_and_evaluate(config, str(workdir))
  record["train_and_eval_seconds"] = time.time() - start
  record["metrics"] = task.scalar_metrics(results)
  record["summary"] = task.summary(results)
  record["workdir"] = str(workdir)
  record["config"] = json.loads(config.to_json_best_effort())
  return record


def run_check(options: Options) -> dict[str, Any]:
  """Runs the check and writes ``device_check.json`` and ``device_check.md``."""
  options.workdir.mkdir(parents=True, exist_ok=True)
  clock = Clock(options)
  results: dict[str, Any] = {
    "mode": options.mode,
    "started": datetime.datetime.fromtimestamp(options.started_at).isoformat(timespec="seconds"),
    "command": " ".join(sys.argv),
    "environment": environment(),
    "bench_config": {
      "widths": list(options.bench_config.model.widths),
      "image_size": list(options.bench_config.data.image_size),
      "channels": options.bench_config.data.channels,
      "sequence_length": options.bench_config.model.sequence_length,
    },
  }
  start = time.time()
  results["benchmarks"] = benchmark_rows(options, clock)
  results["benchmark_seconds"] = time.time() - start
  results["aot"] = aot_report(options, clock)
  write(options.workdir, results)  # something to read even if training fails badly
  try:
    results["training"] = train_run(options, clock, results["benchmarks"])
  except Exception as error:  # recorded: the results file is the check's output
    results["training"] = {"error": _error(error)}
  results["total_seconds"] = clock.elapsed()
  write(options.workdir, results)
  return results


def _number(value: Any, digits: int = 1) -> str:
  if isinstance(value, (int, float)) and math.isfinite(value):
    return f"{value:,.{digits}f}"
  return "-"


def markdown(results: dict[str, Any]) -> str:
  env = results["environment"]
  shape = results["bench_config"]
  lines = [
    f"# Device check ({results['mode']}), {results['started']}",
    "",
    f"{env['device_count']} x {env['device_kind']} ({env['backend']}), JAX {env['jax']}, "
    f"{env['host_cpus']} host CPUs. Network widths {tuple(shape['widths'])}, "
    f"{shape['image_size'][0]}x{shape['image_size'][1]}x{shape['channels']}, "
    f"T = {shape['sequence_length']}; one frame = one predicted frame.",
    "",
    "| dtype | batch | conv_impl | forward frames/s | forward GFLOP/s | % of peak | train step (s) "
    "| train frames/s | train GFLOP/s | % of peak | matmul peak GFLOP/s |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in results["benchmarks"]:
    head = f"| {row['dtype']} | {row['batch']} | {row['conv_impl']} |"
    if "skipped" in row or "error" in row:
      lines.append(head + f" {row.get('skipped') or row.get('error')} |" + " |" * 7)
      continue
    peak = next((v for k, v in row.items() if k.startswith("matmul peak")), None)
    cells = [
      row.get("forward frames/s"),
      row.get("forward GFLOP/s"),
      row.get("forward % of peak"),
      row.get("train step (s)"),
      row.get("train frames/s"),
      row.get("train GFLOP/s"),
      row.get("train % of peak"),
      peak,
    ]
    digits = [1, 1, 1, 3, 1, 1, 1, 0]
    lines.append(head + "".join(f" {_number(c, d)} |" for c, d in zip(cells, digits)))
  report = results.get("aot", {})
  lines += ["", "## AOT report (compiled for these devices)", ""]
  if "programs" in report:
    lines += aot.markdown(report).splitlines()[2:]
  else:
    lines.append(f"Not made: {report.get('skipped') or report.get('error') or 'not run'}")
  training = results.get("training", {})
  lines += ["", "## Training and evaluation", ""]
  if "error" in training:
    lines.append(f"Failed: {training['error']}")
  elif training:
    lines += [
      f"{training['steps']} steps at batch {training['batch']} ({training['dtype']}), estimated "
      f"{training['estimated_step_seconds']:.3f} s per step (input pipeline "
      f"{training['input_seconds_per_batch']:.3f} s per batch); training and evaluation took "
      f"{training['train_and_eval_seconds']:.0f} s, dataset preparation {training['prepare_seconds']:.0f} s.",
      "",
      "```",
      training["summary"],
      "```",
    ]
  lines += [
    "",
    f"Total: {results.get('total_seconds', float('nan')):.0f} s since the start (installation included "
    "when the Makefile started the clock).",
  ]
  return "\n".join(lines) + "\n"


def write(workdir: pathlib.Path, results: dict[str, Any]) -> None:
  (workdir / "device_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
  (workdir / "device_check.md").write_text(markdown(results))


def define_flags() -> None:
  config_flags.define_config("bench_config", "default", "Network to benchmark (paper scale).", lock_config=False)
  config_flags.define_config("train_config", "ucsd_ped2", "Config to train and evaluate.", lock_config=False)
  flags.DEFINE_string("workdir", None, "Output directory.", required=True)
  flags.DEFINE_bool("tiny", False, "Tiny CPU mode (the test suite): test-size network and data, seconds.")
  flags.DEFINE_list("batches", ["8", "32"], "Benchmark batch sizes.")
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Benchmark compute dtypes.")
  flags.DEFINE_integer("steps", 5, "Timed repetitions of each benchmarked program.")
  flags.DEFINE_float("train_seconds", 150.0, "Training budget in seconds (steps = budget / measured step time).")
  flags.DEFINE_string("train_dtype", "bfloat16", "Compute dtype of the training run (parameters stay float32).")
  flags.DEFINE_float("deadline_seconds", 540.0, "Everything must end this many seconds after --started_at.")
  flags.DEFINE_float("started_at", None, "Unix time the check started (default: now; the Makefile: before install).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  workdir = pathlib.Path(f.workdir).absolute()
  # Identical programs (the FLOP count's and the timed ones) compile once.
  jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
  if f.tiny:
    options = tiny_options(workdir)
  else:
    train_config = f.train_config
    if train_config.data.num_workers == 0:  # a GPU step outruns one decoding process
      train_config.data.num_workers = max(1, min(8, (os.cpu_count() or 2) // 2))
    options = Options(
      workdir=workdir,
      bench_config=f.bench_config,
      train_config=train_config,
      batches=tuple(int(b) for b in f.batches),
      dtypes=tuple(f.dtypes),
      steps=f.steps,
      train_seconds=f.train_seconds,
      train_dtype=f.train_dtype,
      deadline_seconds=f.deadline_seconds,
      # ``auto`` trains with XLA's native convolutions on accelerators and "mixed" on
      # CPUs (vad_jax/dual_stream/conv.py: resolve): time the other one too.
      compare_conv_impl="native" if jax.default_backend() == "cpu" else "mixed",
    )
  if f.started_at:
    options.started_at = f.started_at
  results = run_check(options)
  print(markdown(results), flush=True)


COMMAND = cli.Command("device_check", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
