"""XLA:CPU settings chosen by measurement, applied when ``vad_jax`` is imported.

jaxlib 0.10's XLA:CPU hands convolutions, matmuls and reductions to YNNPACK. Its
convolutions are the slow part for this project's networks (docs/RESULTS.md,
"Training-step efficiency"): their kernel gradients ran 1.2-3x slower than XLA's own
(Eigen) convolutions at every width of the dual-stream network on two machines, and their
forward pass fell to 58-91 GFLOP/s on 8 frames of 256x256x32 (Eigen: 135-217). Its
matmuls and reductions are the fast part: the CPU-size training step (1x1 and transposed
convolutions and memory reads as matmuls, ``model.conv_impl``; BatchNorm statistics and
losses as reductions) took 2.48-2.80 s with YNNPACK off and 2.15-2.29 s with only its
convolutions off (AMD EPYC, 2 cores). ``configure`` therefore takes the convolutions away
from YNNPACK and leaves it the rest
(``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: XLA's default list of
YNNPACK fusions less one; in that training step all 160 convolutions stay XLA's, and
YNNPACK runs 90 of the 106 matmuls and 262 of the 274 reductions), unless the user chose
otherwise. (The setting removes YNNPACK's fusions of single convolutions. A convolution
whose output goes straight into a matmul or a reduction can still be fused into that
YNNPACK fusion: none of the dual-stream network's training step, which
tests/test_xla_cpu.py checks, and 10 of the 64 in its CPU-size inference pass, which uses
XLA's convolutions throughout.)

* ``XLA_FLAGS`` already names ``xla_cpu_experimental_ynn_fusion_type``: left as it is;
* ``VAD_JAX_YNNPACK=1`` in the environment: XLA's default is kept.

XLA reads its flags when JAX creates the CPU client, so the setting must be made before
the first computation: ``vad_jax/__init__.py`` calls ``configure`` on import. The flag
changes nothing on GPUs and TPUs (it is read by the CPU compiler only).
"""

import os
from collections.abc import Mapping, MutableMapping

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
OPT_OUT = "VAD_JAX_YNNPACK"
SETTING = "-individual_convolution"  # remove one type from XLA's default list


def convolutions_are_xla_own(value: str) -> bool:
  """Whether a value of ``--xla_cpu_experimental_ynn_fusion_type`` (a comma-separated list
  of fusion types; or of ``+``/``-`` edits of XLA's default list, which holds
  ``individual_convolution``) leaves convolutions to XLA's own kernels, apart from any
  that YNNPACK fuses into a matmul or reduction they feed."""
  items = [item for item in value.split(",") if item]
  if items and all(item[0] in "+-" for item in items):
    return "-individual_convolution" in items
  return "individual_convolution" not in items


def ynn_fusion_types(environ: Mapping[str, str] = os.environ) -> str:
  """The value of ``--xla_cpu_experimental_ynn_fusion_type`` in ``XLA_FLAGS`` (the last
  one given), or ``"default"`` where the flag is not set (XLA's own list)."""
  values = [
    flag.split("=", 1)[1] if "=" in flag else ""
    for flag in environ.get("XLA_FLAGS", "").split()
    if flag.startswith(YNN_FLAG)
  ]
  return values[-1] if values else "default"


def configure(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` to
  ``environ["XLA_FLAGS"]`` unless the user set that flag or ``VAD_JAX_YNNPACK=1``.
  Returns whether XLA's CPU compiler will use its own convolutions, because of this
  call, an earlier one or the user's own value of the flag. It has no effect on a CPU
  client that already exists."""
  value = ynn_fusion_types(environ)
  if value != "default":
    return convolutions_are_xla_own(value)
  if environ.get(OPT_OUT, "0") not in ("", "0"):
    return False
  environ["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} {YNN_FLAG}={SETTING}".strip()
  return True
