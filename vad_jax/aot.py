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

import dataclasses
import functools
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from jax.experimental import topologies
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vad_jax import export, tasks
from vad_jax import sharding as sharding_lib
from vad_jax import state as state_lib

GIB = 1024**3
PROGRAMS = ("train_step", "eval_step", "scorer")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


@dataclasses.dataclass(frozen=True)
class Chip:
  """A chip's memory, the figure the compiled programs are checked against."""

  kind: str  # as JAX reports device_kind
  memory_bytes: int
  source: str  # where the figure comes from (CITATIONS.bib key)
  target_config: str = ""  # GPUs: XLA's GpuTargetConfigProto in text format


# HBM per chip from the vendors' public datasheets (docs/scaling.md, CITATIONS.bib).
TPU_CHIPS = {
  "v5e": Chip("TPU v5 lite", 16 * 10**9, "google_tpu_v5e"),
  "v6e": Chip("TPU v6 lite", 32 * 10**9, "google_tpu_v6e"),
  "v5p": Chip("TPU v5", 95 * 10**9, "google_tpu_v5p"),
}
# The H100 SXM as XLA:GPU's compiler sees a device (``GpuTargetConfigProto``): 132 SMs of
# compute capability 9.0, the limits CUDA reports for them, 80 GB of HBM3 (79.1 GiB usable),
# for the CUDA 12 / cuDNN 9 runtime of the jax-cuda12 plugin.
H100_TARGET_CONFIG = """
gpu_device_info {
  cuda_compute_capability { major: 9 minor: 0 }
  core_count: 132
  fpus_per_core: 128
  clock_rate_ghz: 1.98
  device_memory_size: 84929347584
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  threads_per_warp: 32
  threads_per_block_limit: 1024
  threads_per_core_limit: 2048
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  shared_memory_per_block: 49152
  shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
runtime_version { major: 12 minor: 8 }
dnn_version_info { major: 9 minor: 7 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""
GPU_CHIPS = {
  "h100": Chip("NVIDIA H100 80GB HBM3", 80 * 10**9, "nvidia_h100", H100_TARGET_CONFIG),
}
GPUS_PER_HOST = 8


class TargetUnavailable(RuntimeError):
  """The target cannot be compiled for on this machine; the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
  """A named compilation target: platform, topology, chip count and chip."""

  spec: str  # as given: "tpu:v5e:2x2", "gpu:h100:8", "cpu:8", "local"
  platform: str  # "tpu", "cuda", "cpu" or "local"
  topology: str  # "v5e:2x2" for TPUs, "" otherwise
  num_chips: int  # 0 for "local": the backend's device count
  chip: Optional[Chip]


def parse_target(spec: str) -> Target:
  """The target named by ``spec`` (see the module docstring for the forms)."""
  parts = spec.strip().lower().split(":")
  if parts == ["local"]:
    return Target(spec, "local", "", 0, None)
  if parts[0] == "tpu" and len(parts) == 3 and parts[1] in TPU_CHIPS:
    dims = parts[2].split("x")
    if all(d.isdigit() and int(d) > 0 for d in dims):
      return Target(spec, "tpu", f"{parts[1]}:{parts[2]}", math.prod(int(d) for d in dims), TPU_CHIPS[parts[1]])
  if parts[0] in ("gpu", "cuda") and len(parts) == 3 and parts[1] in GPU_CHIPS and parts[2].isdigit():
    return Target(spec, "cuda", "", int(parts[2]), GPU_CHIPS[parts[1]])
  if parts[0] == "cpu" and len(parts) == 2 and parts[1].isdigit() and int(parts[1]) > 0:
    return Target(spec, "cpu", "", int(parts[1]), None)
  raise ValueError(
    f"unknown target {spec!r}: expected tpu:{{{','.join(TPU_CHIPS)}}}:AxB[xC] (e.g. tpu:v5e:2x2), "
    f"gpu:{{{','.join(GPU_CHIPS)}}}:N (e.g. gpu:h100:8), cpu:N or local"
  )


def _tpu_environment() -> None:
  """Keeps libtpu from asking a metadata server for a TPU VM's settings on a host that is none,
  and lets several processes that only compile load it."""
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  # libtpu locks /tmp/libtpu_lockfile for the process that loads it; compiling needs no
  # TPU, so processes that only compile (a test worker, this command) may share it.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def target_devices(target: Target) -> list[jax.Device]:
  """The devices to compile for: compile-only TPU devices, CPU devices or the local ones.

  Raises:
    TargetUnavailable: with the reason, where this machine cannot compile for the target
      (a GPU target without the CUDA plugin: ``compile_target`` lowers it instead).
  """
  if target.platform == "local":
    return list(jax.devices())
  if target.platform == "cpu":
    devices = jax.devices("cpu")
    if len(devices) < target.num_chips:
      raise TargetUnavailable(
        f"{target.spec}: the CPU backend has {len(devices)} device(s); start the process with "
        f"XLA_FLAGS=--xla_force_host_platform_device_count={target.num_chips} (or "
        f"jax.config.update('jax_num_cpu_devices', {target.num_chips}) before JAX's first computation)"
      )
    return list(devices[: target.num_chips])
  if target.platform == "tpu":
    _tpu_environment()
    try:
      topology = topologies.get_topology_desc(target.topology, platform="tpu")
    except Exception as error:  # libtpu missing, or a topology it does not know
      raise TargetUnavailable(f"{target.spec}: {type(error).__name__}: {_first_line(error)}") from error
    devices = list(topology.devices)
    if len(devices) != target.num_chips:
      raise TargetUnavailable(f"{target.spec}: libtpu describes {len(devices)} devices, expected {target.num_chips}")
    return devices
  return _gpu_devices(target)


def _gpu_devices(target: Target) -> list[jax.Device]:
  """Compile-only devices of ``target.num_chips`` GPUs, eight to a host."""
  n = target.num_chips
  if n > GPUS_PER_HOST and n % GPUS_PER_HOST:
    raise TargetUnavailable(f"{target.spec}: more than {GPUS_PER_HOST} GPUs must fill hosts of {GPUS_PER_HOST}")
  hosts, per_host = (n // GPUS_PER_HOST, GPUS_PER_HOST) if n > GPUS_PER_HOST else (1, n)
  try:
    topology = topologies.get_topology_desc(
      platform="cuda", target_config=target.chip.target_config, topology=f"1x{hosts}x{per_host}"
    )
  except NotImplementedError as error:
    raise TargetUnavailable(
      f"{target.spec}: JAX compiles for a GPU it cannot see only through the CUDA PJRT plugin, which is not "
      f'installed (pip install "jax[cuda12-local]"): {_first_line(error)}'
    ) from error
  except Exception as error:
    raise TargetUnavailable(
      f"{target.spec}: the CUDA plugin refused a compile-only topology: {type(error).__name__}: {_first_line(error)}"
    ) from error
  return list(topology.devices)


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:500] if text else type(error).__name__


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
    fn, _, _ = export.scoring_function(config, state)
    return fn(*inputs)

  example = dict(one_batch)
  inputs = task.model_inputs(config, example)
  names = [next(k for k, v in example.items() if v is x) for x in inputs]
  programs["scorer"] = jax.jit(scorer).trace(one_state, *[example[k] for k in names])
  return programs


# --------------------------------------------------------------------------------------
# Reading compiled programs.
# --------------------------------------------------------------------------------------

_DTYPE_BYTES = {
  "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
  "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1, "s4": 0.5, "u4": 0.5,
}  # fmt: skip
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([0-9,]*)\]")
_COLLECTIVE = re.compile(
  r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.+?)\s+(?P<op>"
  + "|".join(COLLECTIVES)
  + r")(?P<suffix>-start)?\("
)


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape: ``f32[512,512]{1,0}`` or a tuple ``(f32[8], bf16[2,4])``."""
  total = 0.0
  for dtype, dims in _ARRAY.findall(shape):
    if dtype not in _DTYPE_BYTES:
      continue
    total += _DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
  return int(total)


def replica_groups(line: str, num_devices: int) -> list[list[int]]:
  """The device groups of a collective's HLO line, in any of XLA's three notations.

  ``replica_groups={{0,1},{2,3}}`` (explicit), ``replica_groups=[2,4]<=[8]`` or
  ``[2,4]<=[4,2]T(1,0)`` (an iota reshaped, transposed, grouped),
  ``replica_groups=mesh['x'=2,'y'=4] {'y'}`` (groups along named mesh axes); an empty or
  missing list means one group of all devices. A collective-permute gets its
  ``source_target_pairs`` as two-device groups.
  """
  pairs = re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", line)
  if pairs:
    return [[int(a), int(b)] for a, b in re.findall(r"\{(\d+),(\d+)\}", pairs.group(1))]
  mesh = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", line)
  if mesh:
    axes = re.findall(r"'([^']+)'=(\d+)", mesh.group(1))
    names, sizes = [a for a, _ in axes], [int(s) for _, s in axes]
    over = [names.index(a) for a in re.findall(r"'([^']+)'", mesh.group(2))]
    ids = np.arange(math.prod(sizes)).reshape(sizes)
    kept = [i for i in range(len(sizes)) if i not in over]
    ids = np.transpose(ids, kept + over).reshape(-1, math.prod(sizes[i] for i in over) if over else 1)
    return ids.tolist()
  iota = re.search(r"replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", line)
  if iota:
    groups_shape = [int(x) for x in iota.group(1).split(",")]
    ids = np.arange(math.prod(int(x) for x in iota.group(2).split(","))).reshape(
      [int(x) for x in iota.group(2).split(",")]
    )
    if iota.group(3):
      ids = np.transpose(ids, [int(x) for x in iota.group(3).split(",")])
    return ids.reshape(groups_shape[0], -1).tolist()
  explicit = re.search(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}", line)
  if explicit and explicit.group(1):
    return [[int(x) for x in g.split(",") if x] for g in re.findall(r"\{([\d,]*)\}", explicit.group(1))]
  return [list(range(num_devices))]


def collectives(hlo_text: str, num_devices: int) -> list[dict[str, Any]]:
  """Every collective of an optimised HLO module: op, result shape, bytes, groups.

  Asynchronous pairs count once (the ``-start``; its ``-done`` is skipped). A collective
  inside a loop body is listed once, whatever the trip count (the programs here have none).
  """
  found = []
  for line in hlo_text.splitlines():
    match = _COLLECTIVE.match(line)
    if not match:
      continue
    shape = match.group("shape")
    nbytes = shape_bytes(shape)
    if match.group("suffix") and shape.startswith("("):
      # An async start's tuple holds the operands and the results: the payload is half.
      nbytes //= 2
    groups = replica_groups(line, num_devices)
    op_name = re.search(r'op_name="([^"]*)"', line)
    found.append(
      {
        "op": match.group("op"),
        "name": match.group("name"),
        "shape": re.sub(r"\{[^}]*\}", "", shape).strip(),
        "bytes": nbytes,
        "groups": groups,
        "group_size": max((len(g) for g in groups), default=0),
        "source": op_name.group(1) if op_name else "",
      }
    )
  return found


def summarise_collectives(ops: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
  """``{op: {"count", "bytes"}}`` over a program's collectives."""
  summary: dict[str, dict[str, int]] = {}
  for op in ops:
    entry = summary.setdefault(op["op"], {"count": 0, "bytes": 0})
    entry["count"] += 1
    entry["bytes"] += op["bytes"]
  return summary


def _cost(analysis: Any) -> dict[str, float]:
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  analysis = analysis or {}
  return {k: float(analysis[k]) for k in ("flops", "bytes accessed", "transcendentals") if k in analysis}


def memory(compiled, chip_bytes: Optional[int]) -> dict[str, Any]:
  """A compiled program's memory per chip; ``peak_bytes`` = arguments + outputs - aliased
  + temporaries + generated code, the figure JAX's own out-of-memory check compares."""
  stats = compiled.memory_analysis()
  if stats is None:
    return {}
  result = {
    "argument_bytes": int(stats.argument_size_in_bytes),
    "output_bytes": int(stats.output_size_in_bytes),
    "alias_bytes": int(stats.alias_size_in_bytes),
    "temp_bytes": int(stats.temp_size_in_bytes),
    "code_bytes": int(stats.generated_code_size_in_bytes),
  }
  result["peak_bytes"] = (
    result["argument_bytes"] + result["output_bytes"] - result["alias_bytes"] + result["temp_bytes"]
  ) + result["code_bytes"]
  if chip_bytes:
    result["chip_bytes"] = int(chip_bytes)
    result["fraction_of_chip"] = result["peak_bytes"] / chip_bytes
    result["fits"] = result["peak_bytes"] <= chip_bytes
  return result


def analyse(compiled, num_devices: int, chip_bytes: Optional[int]) -> dict[str, Any]:
  """Memory, FLOPs and collectives of one compiled program (per chip, per call)."""
  text = compiled.as_text()
  ops = collectives(text, num_devices)
  cost = _cost(compiled.cost_analysis())
  return {
    "memory": memory(compiled, chip_bytes),
    "flops": cost.get("flops", float("nan")),
    "bytes_accessed": cost.get("bytes accessed", float("nan")),
    "collectives": ops,
    "collectives_by_op": summarise_collectives(ops),
    "collective_bytes": sum(op["bytes"] for op in ops),
    "hlo_bytes": len(text),
  }


def _device_memory(device) -> Optional[int]:
  try:
    stats = device.memory_stats() or {}
  except Exception:  # compile-only and some local devices report none
    return None
  return stats.get("bytes_limit")


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
    chip_bytes = target.chip.memory_bytes if target.chip else _device_memory(devices[0])
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
        entry.update(status="failed", error=f"{type(error).__name__}: {_first_line(error)}")
      else:
        entry["compile_seconds"] = time.perf_counter() - start
        entry["status"] = "compiled"
        entry.update(analyse(compiled, 1 if name == "scorer" else num, chip_bytes))
    report["programs"][name] = entry
  return report


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

  if not fits(first):
    return {"largest": 0, "peak_bytes": tried[first], "tried": tried}
  lo, hi = first, None
  if fits(second):
    lo = second
    slope = (tried[second] - tried[first]) / (scale(second) - scale(first))
    guess = second
    while slope > 0 and scale(guess + 1) - scale(first) <= (capacity - tried[first]) / slope:
      guess += 1
    queue = [guess, guess + 1, guess - 1]
  else:
    hi, queue = second, []
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
