"""XLA:CPU settings chosen by measurement, applied when ``vad_jax`` is imported.

jaxlib 0.10's XLA:CPU hands convolutions and matmuls to YNNPACK. On the development
machine (docs/RESULTS.md, "Training-step efficiency") YNNPACK's convolutions slow down
two- to three-fold once a tensor passes about 32 MB: a 3x3 convolution of 8 frames of
256x256x32 ran at 91 GFLOP/s forward and 33 GFLOP/s for its kernel gradient, against 202
and 92 GFLOP/s with XLA's own (Eigen) convolutions, and the paper-size training step of
the dual-stream network took 1.29x as long. Smaller programs (the CPU-size network, the
classifiers) ran equally fast either way. ``configure`` therefore turns YNNPACK's fusions
off unless the user chose otherwise:

* ``XLA_FLAGS`` already names ``xla_cpu_experimental_ynn_fusion_type``: left as it is;
* ``VAD_JAX_YNNPACK=1`` in the environment: XLA's default is kept.

XLA reads its flags when JAX creates the CPU client, so the setting must be made before
the first computation: ``vad_jax/__init__.py`` calls ``configure`` on import. The flag
changes nothing on GPUs and TPUs (it is read by the CPU compiler only).
"""

import os
from collections.abc import MutableMapping

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
OPT_OUT = "VAD_JAX_YNNPACK"


def configure(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds ``--xla_cpu_experimental_ynn_fusion_type=`` (no YNNPACK fusions) to
  ``environ["XLA_FLAGS"]`` unless the user set that flag or ``VAD_JAX_YNNPACK=1``.
  Returns whether XLA's CPU compiler will use its own convolutions because of this call
  or an earlier one. It has no effect on a CPU client that already exists."""
  flags = environ.get("XLA_FLAGS", "")
  if YNN_FLAG in flags:
    return f"{YNN_FLAG}= " in f"{flags} "
  if environ.get(OPT_OUT, "0") not in ("", "0"):
    return False
  environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=".strip()
  return True
