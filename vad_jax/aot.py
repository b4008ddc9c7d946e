"""Ahead-of-time compilation of a config's programs for a named target, without its hardware.

The training step, the evaluation step and the exported scorer of a config are lowered
with the project's shardings (state replicated ``P()``, batches ``P("data")`` over a mesh
``("data",)`` spanning the target's chips) from shapes alone (``jax.eval_shape``: nothing
is initialised), then compiled for the target and read back:

* memory per chip: arguments, outputs, aliased (donated) bytes, temporaries and code, from
  ``compiled.memory_analysis()``, against the chip's memory;
* collectives per step: every all-reduce, all-gather, reduce-scatter, all-to-all and
  collective-permute of the optimised HLO (``compiled.as_text()``), with its replica
  groups and the bytes of its result;
* FLOPs per step and chip: XLA's cost analysis of the partitioned program
  (``compiled.cost_analysis()``, multiply-adds count 2).

Targets (``parse_target``):

* ``tpu:v5e:2x2``, ``tpu:v5e:4x4``, ``tpu:v6e:2x2``, ``tpu:v5p:2x2x1``: a TPU slice described
  by ``libtpu`` (``jax.experimental.topologies.get_topology_desc``): compile-only devices,
  so the TPU compiler runs on this host; needs the ``libtpu`` wheel (the ``tpu`` extra).
* ``gpu:h100:8``: eight H100s on one host (``gpu:h100:64``: eight hosts of eight). JAX
  compiles for a GPU it cannot see through the CUDA PJRT plugin (``jax[cuda12-local]``:
  the plugin without NVIDIA's libraries) given a description of the GPU
  (``H100_TARGET_CONFIG``); XLA:GPU's compile-only client reports memory but no cost
  analysis, so FLOPs are missing there. Without the plugin the programs are *lowered* for
  ``cuda`` over an abstract mesh (StableHLO with sharding annotations; partitioning, and
  so collectives and memory, happen in the compiler) and the reason is recorded.
* ``cpu:8``: eight devices of the CPU backend (``--xla_force_host_platform_device_count``);
  the test suite's target.
* ``local``: the devices of the current default backend (``make device-check`` on a GPU).

A target that cannot be compiled here raises ``TargetUnavailable`` with the reason.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vad_jax import export, precision, tasks
from vad_jax import sharding as sharding_lib
from vad_jax import state as state_lib
from vad_jax.aot_targets import Target, TargetUnavailable, first_line, parse_target, target_devices
from vad_jax.compiled_programs import analyse, device_memory

PROGRAMS = ("train_step", "eval_step", "scorer")

# --------------------------------------------------------------------------------------
# Programs.
# --------------------------------------------------------------------------------------


def make_mesh(devices: Sequence[Any]) -> Mesh:
  """The project's ``("data",)`` mesh over ``devices`` (compile-only devices too)."""
  return Mesh(np.asarray(devices), (sharding_lib.DATA_AXIS,), axis_types=(AxisType.Auto,))


def abstract_inputs(config: ml_collections.ConfigDict, mesh, global_batch: int) -> tuple[Any, Any, Any]:
  """``(model, state, batch)``: the model, and the state and a global training batch as
  ``jax.ShapeDtypeStruct`` s with the training loop's shardings (state ``P()``, batch
  ``P("data")``); ``mesh`` may be a ``Mesh`` or an ``AbstractMesh``."""
  task = tasks.for_config(config)
  model = task.build_model(config)
  tx = state_lib.make_optimizer(config, max(int(config.get("num_train_steps", 0) or 0), 1))
  state = state_lib.abstract_state(task, model, config, tx, mesh)
  sharded = NamedSharding(mesh, P(sharding_lib.DATA_AXIS))
  example, _ = task.example_batch(config, global_batch)
  batch = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype, sharding=sharded) for k, v in example.items()}
  return model, state, batch


def traced_programs(config: ml_collections.ConfigDict, mesh, global_batch: int, scorer_mesh) -> dict[str, Any]:
  """The three programs traced (``jax.jit(...).trace``) on abstract inputs.

  * ``train_step``: as ``train.py`` builds it: the task's step with the state's and
    batch's shardings in and out and the state donated.
  * ``eval_step``: the task's evaluation step on the same shardings, outputs per example
    along ``data``.
  * ``scorer``: ``export.scoring_function`` (what ``jax.export`` serialises) on one chip
    of ``scorer_mesh`` with this chip's share of the batch; the weights are an argument
    here where the exported file holds them as constants (the same bytes).
  """
  n = mesh.devices.size if isinstance(mesh, Mesh) else math.prod(mesh.axis_sizes)
  if global_batch % n:
    raise ValueError(f"global batch {global_batch} is not a multiple of the {n} chips of the mesh")
  task = tasks.for_config(config)
  model, state, batch = abstract_inputs(config, mesh, global_batch)
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  data, replicated = NamedSharding(mesh, P(sharding_lib.DATA_AXIS)), NamedSharding(mesh, P())
  train = jax.jit(
    functools.partial(task.train_step, model=model, config=config),
    in_shardings=(state_sharding, data),
    out_shardings=(state_sharding, replicated),
    donate_argnums=0,
  )
  evaluate = jax.jit(
    functools.partial(task.eval_step, model=model, config=config),
    in_shardings=(state_sharding, data),
    out_shardings=data,
  )
  programs = {"train_step": train.trace(state, batch), "eval_step": evaluate.trace(state, batch)}

  _, one_state, one_batch = abstract_inputs(config, scorer_mesh, global_batch // n)

  def scorer(state, *inputs):
    fn, *_ = export.scoring_function(config, state)
    return fn(*inputs)

  example = dict(one_batch)
  inputs = task.model_inputs(config, example)
  names = [next(k for k, v in example.items() if v is x) for x in inputs]
  programs["scorer"] = jax.jit(scorer).trace(one_state, *[example[k] for k in names])
  return programs


# --------------------------------------------------------------------------------------
# The report.
# --------------------------------------------------------------------------------------


def compile_target(
  config: ml_collections.ConfigDict,
  target: Target | str,
  global_batch: Optional[int] = None,
  programs: Sequence[str] = PROGRAMS,
  stablehlo: bool = False,
) -> dict[str, Any]:
  """Lowers and compiles ``programs`` of ``config`` for ``target``; the report as a dict.

  Args:
    config: a model config (``configs/default.py`` and the others).
    target: a ``Target`` or its spec (``parse_target``).
    global_batch: the training batch over all chips (default: ``config.batch_size``); a
      multiple of the chip count. The scorer is compiled for one chip's share of it.
    programs: a subset of ``PROGRAMS``.
    stablehlo: keep each program's StableHLO text under ``"stablehlo"``.

  Returns:
    ``{"target", "config", "batch", "jax", "status", "reason", "programs": {name:
    {"status", "lower_seconds", "compile_seconds", "memory", "flops", "collectives", ...}}}``;
    ``status`` is ``compiled``, ``lowered`` (a GPU target without the plugin: StableHLO only,
    ``reason`` says why) or ``failed`` (a program that would not compile: its ``error``).

  Raises:
    TargetUnavailable: where the target can be neither compiled nor lowered here (no
      libtpu, too few CPU devices).
  """
  target = parse_target(target) if isinstance(target, str) else target
  config = for_target_precision(config, target)
  unknown = [p for p in programs if p not in PROGRAMS]
  if unknown:
    raise ValueError(f"unknown programs {unknown}; choose from {list(PROGRAMS)}")
  reason, devices = "", []
  if target.platform == "cuda":
    try:
      devices = target_devices(target)
    except TargetUnavailable as error:
      reason = str(error)
  if target.platform == "cuda" and not devices:
    num = target.num_chips
    abstract_device = jax.sharding.AbstractDevice(device_kind=target.chip.kind, num_cores=None, platform="gpu")
    mesh = jax.sharding.AbstractMesh(
      (num,), (sharding_lib.DATA_AXIS,), axis_types=(AxisType.Auto,), abstract_device=abstract_device
    )
    scorer_mesh = jax.sharding.AbstractMesh(
      (1,), (sharding_lib.DATA_AXIS,), axis_types=(AxisType.Auto,), abstract_device=abstract_device
    )
    chip_bytes = target.chip.memory_bytes
  else:
    devices = devices or target_devices(target)
    num = len(devices)
    mesh, scorer_mesh = make_mesh(devices), make_mesh(devices[:1])
    chip_bytes = target.chip.memory_bytes if target.chip else device_memory(devices[0])
  global_batch = int(global_batch or config.batch_size)
  report: dict[str, Any] = {
    "target": {
      "spec": target.spec,
      "platform": target.platform if target.platform != "local" else jax.default_backend(),
      "topology": target.topology,
      "chips": num,
      "device_kind": devices[0].device_kind if devices else target.chip.kind,
      "chip_memory_bytes": chip_bytes,
      "chip_memory_source": target.chip.source if target.chip else ("memory_stats" if chip_bytes else ""),
    },
    "config": describe_config(config),
    "batch": {"global": global_batch, "per_chip": global_batch // num if num else global_batch},
    "jax": jax.__version__,
    "status": "compiled" if devices else "lowered",
    "reason": reason,
    "programs": {},
  }
  start = time.perf_counter()
  traced = traced_programs(config, mesh, global_batch, scorer_mesh)
  trace_seconds = time.perf_counter() - start
  for name in programs:
    entry: dict[str, Any] = {"trace_seconds": trace_seconds}
    start = time.perf_counter()
    lowered = traced[name].lower(lowering_platforms=None if devices else ("cuda",))
    entry["lower_seconds"] = time.perf_counter() - start
    text = lowered.as_text()
    entry["stablehlo_bytes"] = len(text)
    entry["sharding_annotations"] = text.count("mhlo.sharding") + text.count("sdy.sharding")
    if stablehlo:
      entry["stablehlo"] = text
    if not devices:
      entry["status"] = "lowered"
    else:
      start = time.perf_counter()
      try:
        compiled = lowered.compile()
      except Exception as error:  # an out-of-memory program is a result
        entry.update(status="failed", error=f"{type(error).__name__}: {first_line(error)}")
      else:
        entry["compile_seconds"] = time.perf_counter() - start
        entry["status"] = "compiled"
        entry.update(analyse(compiled, 1 if name == "scorer" else num, chip_bytes))
    report["programs"][name] = entry
  return report


def for_target_precision(config: ml_collections.ConfigDict, target: Target) -> ml_collections.ConfigDict:
  """``config`` with ``model.dtype = "auto"`` resolved for the target's platform rather
  than for this machine (a TPU or GPU computes bfloat16 natively)."""
  if str(config.model.get("dtype", "float32")) != "auto":
    return config
  platform = {"tpu": "tpu", "cuda": "gpu"}.get(target.platform)  # cpu and local: this machine's backend
  config = config.copy_and_resolve_references()
  config.model.dtype = precision.resolve("auto", platform).name
  return config


def describe_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The settings that size the programs."""
  model = config.model
  described = {
    "model": model.name,
    "image_size": [int(s) for s in config.data.image_size],
    "channels": int(config.data.channels),
    "dtype": str(model.get("dtype", "float32")),
  }
  for key in ("widths", "sequence_length", "backbone", "conv_impl"):
    if key in model:
      value = model[key]
      described[key] = list(value) if isinstance(value, (tuple, list)) else value
  return described


def _mb(value: Optional[float]) -> str:
  return "-" if value is None or not math.isfinite(value) else f"{value / 1e6:,.1f}"


def markdown(report: dict[str, Any]) -> str:
  """The report as Markdown: one table of programs, then each program's collectives."""
  target, config, batch = report["target"], report["config"], report["batch"]
  lines = [
    f"# AOT report: {config['model']} on {target['spec']}",
    "",
    f"{target['chips']} x {target['device_kind']} ({target['platform']}"
    + (f", topology {target['topology']}" if target["topology"] else "")
    + f"), chip memory {_mb(target['chip_memory_bytes'])} MB"
    + f"; JAX {report['jax']}; global batch {batch['global']} ({batch['per_chip']} per chip); "
    + ", ".join(f"{k} {v}" for k, v in config.items() if k != "model")
    + ".",
    "",
  ]
  if report["reason"]:
    lines += [f"Status: **{report['status']}**. {report['reason']}", ""]
  lines += [
    "| program | status | peak MB/chip | arguments | outputs | aliased | temporaries | % of chip "
    "| GFLOP/chip | collectives | collective MB | compile s |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name, entry in report["programs"].items():
    mem = entry.get("memory", {})
    by_op = entry.get("collectives_by_op", {})
    ops = ", ".join(f"{v['count']} {k}" for k, v in by_op.items()) or ("none" if "memory" in entry else "-")
    fraction = mem.get("fraction_of_chip")
    cells = [
      name,
      entry["status"] + (f": {entry['error']}" if "error" in entry else ""),
      _mb(mem.get("peak_bytes")),
      _mb(mem.get("argument_bytes")),
      _mb(mem.get("output_bytes")),
      _mb(mem.get("alias_bytes")),
      _mb(mem.get("temp_bytes")),
      "-" if fraction is None else f"{100 * fraction:.2f}",
      "-" if not math.isfinite(entry.get("flops", math.nan)) else f"{entry['flops'] / 1e9:,.2f}",
      ops,
      "-" if "collective_bytes" not in entry else f"{entry['collective_bytes'] / 1e6:,.3f}",
      "-" if "compile_seconds" not in entry else f"{entry['compile_seconds']:.1f}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Memory in MB (10^6 bytes) per chip; FLOPs and collectives per call and chip.", ""]
  for name, entry in report["programs"].items():
    if entry.get("collectives"):
      lines += [f"## {name}: collectives", "", "| op | result | bytes | groups | from |", "|---|---|---|---|---|"]
      for op in entry["collectives"]:
        groups = op["groups"]
        shown = str(groups) if len(groups) <= 2 else f"{len(groups)} groups of {op['group_size']}"
        lines.append(f"| {op['op']} | `{op['shape']}` | {op['bytes']:,} | {shown} | `{op['source'][-60:]}` |")
      lines.append("")
    elif entry["status"] == "lowered":
      lines += [
        f"## {name}: lowered only",
        "",
        f"StableHLO of {entry['stablehlo_bytes']:,} characters with {entry['sharding_annotations']} sharding "
        "annotations; partitioning (and so the collectives) happens in the compiler that could not run here.",
        "",
      ]
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# What fits one chip.
# --------------------------------------------------------------------------------------


def train_step_memory(config: ml_collections.ConfigDict, target: Target | str, per_chip_batch: int) -> Optional[int]:
  """Peak bytes per chip of the training step at ``per_chip_batch``, or ``None`` where the
  compiler refuses the program (out of memory)."""
  target = parse_target(target) if isinstance(target, str) else target
  chips = target.num_chips or jax.device_count()
  report = compile_target(config, target, per_chip_batch * chips, programs=("train_step",))
  entry = report["programs"]["train_step"]
  if entry["status"] != "compiled":
    return None
  memory = entry["memory"]
  return memory["peak_bytes"] if memory.get("fits", True) else None


def largest_fit(measure, first: int, second: int, capacity: int, scale=lambda x: x) -> dict[str, Any]:
  """The largest integer ``x`` with ``measure(x)`` (peak bytes, ``None`` if refused) within
  ``capacity``: a line through ``measure(first)`` and ``measure(second)`` over ``scale(x)``
  predicts it; compiling the prediction and the next value confirms it, else a bisection
  between the largest value that fits and the smallest that does not finds it.

  Returns ``{"largest", "peak_bytes", "tried": {x: peak bytes or None}}``.
  """
  tried: dict[int, Optional[int]] = {}

  def fits(x):
    if x not in tried:
      tried[x] = measure(x)
    return tried[x] is not None and tried[x] <= capacity

  if not fits(first):  # a start above the boundary: halve until a value fits, then bisect
    hi, lo = first, first // 2
    while lo >= 1 and not fits(lo):
      hi, lo = lo, lo // 2
    if lo < 1:
      return {"largest": 0, "peak_bytes": tried[first], "tried": tried}
    queue = []
  elif fits(second):
    lo, hi = second, None
    slope = (tried[second] - tried[first]) / (scale(second) - scale(first))
    guess = second
    while slope > 0 and scale(guess + 1) - scale(first) <= (capacity - tried[first]) / slope:
      guess += 1
    queue = [guess, guess + 1, guess - 1]
  else:
    lo, hi, queue = first, second, []
  for _ in range(24):
    if hi == lo + 1:
      return {"largest": lo, "peak_bytes": tried[lo], "tried": tried}
    x = queue.pop(0) if queue else (2 * lo if hi is None else (lo + hi) // 2)
    if x <= lo or (hi is not None and x >= hi):
      continue
    if fits(x):
      lo = x
    else:
      hi = x
  raise RuntimeError(f"no boundary found between {lo} and {hi}: {tried}")
