"""The targets ahead-of-time compilation knows (``vad_jax.aot``): TPU slices described by
``libtpu``, H100s through the CUDA plugin's compile-only client, the CPU backend's
devices and the local devices, each with its chip's memory from the vendors' datasheets.

``parse_target("tpu:v5e:2x2")`` names one; ``target_devices`` gives its devices (compile-only
where the hardware is absent), or raises ``TargetUnavailable`` saying exactly why it
cannot be compiled for on this machine.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import jax
from jax.experimental import topologies

GIB = 1024**3


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
      raise TargetUnavailable(f"{target.spec}: {type(error).__name__}: {first_line(error)}") from error
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
      f'installed (pip install "jax[cuda12-local]"): {first_line(error)}'
    ) from error
  except Exception as error:
    raise TargetUnavailable(
      f"{target.spec}: the CUDA plugin refused a compile-only topology: {type(error).__name__}: {first_line(error)}"
    ) from error
  return list(topology.devices)


def first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:500] if text else type(error).__name__
