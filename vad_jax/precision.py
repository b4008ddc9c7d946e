"""The compute precision of a model (``config.model.dtype``), ``auto`` resolved per machine.

Mixed precision as the networks run it: parameters, optimizer state and batch statistics
stay float32 (checkpoints do not depend on the precision); activations, matmuls and
convolutions run in the compute dtype; each stream's output, the losses and the anomaly
statistics (PSNR, memory distances, calibration) are float32.

``auto`` is bfloat16 where the hardware computes bfloat16 dot products natively (GPUs,
TPUs, and CPUs with AVX512-BF16, AMX-BF16 or Arm's BF16 extension, read from
``/proc/cpuinfo``) and float32 elsewhere. ``VAD_JAX_CPU_BF16=0`` (or ``1``) in the
environment overrides what the CPU reports. On XLA:CPU bfloat16 does not pay yet even
where the CPU supports it (docs/RESULTS.md, "bfloat16 on XLA:CPU").
"""

import dataclasses
import functools
import os
import pathlib

import jax
import jax.numpy as jnp

CHOICES = ("auto", "float32", "bfloat16", "float16")
OVERRIDE = "VAD_JAX_CPU_BF16"
# /proc/cpuinfo flags of x86 CPUs whose dot products take bfloat16 (AVX512-BF16's
# VDPBF16PS, AMX-BF16's tile products) and the ``Features`` entry of Arm's BF16 extension.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclasses.dataclass(frozen=True)
class Precision:
  """The compute dtype a config asked for (``requested``), what it resolved to, and why."""

  requested: str
  dtype: jnp.dtype
  reason: str

  @property
  def name(self) -> str:
    return self.dtype.name

  def describe(self) -> str:
    """One line for the terminal: ``precision: bfloat16 compute, float32 parameters (...)``."""
    if self.dtype == jnp.float32:
      return f"precision: float32 ({self.reason})"
    return f"precision: {self.name} compute, float32 parameters ({self.reason})"


@functools.lru_cache(maxsize=1)
def _cpuinfo_flags() -> frozenset[str]:
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return frozenset()
  return cpu_flags(text)


def cpu_flags(cpuinfo: str) -> frozenset[str]:
  """The ``flags`` (x86) or ``Features`` (Arm) words of a ``/proc/cpuinfo`` text."""
  words = set()
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(":")
    if key.strip().lower() in ("flags", "features"):
      words.update(value.split())
  return frozenset(words)


def cpu_bf16_support(flags: frozenset[str] | None = None, environ=os.environ) -> tuple[bool, str]:
  """Whether this CPU's dot products take bfloat16, and the evidence, from ``flags``
  (default: ``/proc/cpuinfo``; none where there is no such file) unless
  ``VAD_JAX_CPU_BF16`` says otherwise."""
  override = environ.get(OVERRIDE, "").strip()
  if override in ("0", "1"):
    return override == "1", f"{OVERRIDE}={override}"
  if flags is None:
    flags = _cpuinfo_flags()
  found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
  if found:
    return True, "this CPU's dot products take bfloat16: " + ", ".join(found)
  return False, "this CPU has no bfloat16 dot products (no avx512_bf16, amx_bf16 or bf16 flag)"


def resolve(requested: str, backend: str | None = None, flags: frozenset[str] | None = None) -> Precision:
  """The compute precision of ``requested`` (one of ``CHOICES``) on ``backend`` (default:
  JAX's default backend); ``flags`` stands in for the CPU's (tests)."""
  if requested not in CHOICES:
    raise ValueError(f"model.dtype={requested!r} is not a precision; expected one of {', '.join(CHOICES)}")
  if requested != "auto":
    return Precision(requested, jnp.dtype(requested), "model.dtype")
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return Precision(requested, jnp.dtype(jnp.bfloat16), f"auto: {backend} computes bfloat16 natively")
  supported, why = cpu_bf16_support(flags)
  return Precision(requested, jnp.dtype(jnp.bfloat16 if supported else jnp.float32), f"auto: {why}")


def of_config(config, backend: str | None = None) -> Precision:
  """``resolve`` of ``config.model.dtype`` (float32 where a config has none)."""
  return resolve(str(config.model.get("dtype", "float32")), backend)


def compute_dtype(config, backend: str | None = None) -> jnp.dtype:
  """The dtype activations and products of ``config``'s model run in."""
  return of_config(config, backend).dtype
