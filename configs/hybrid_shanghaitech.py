"""HybridModel-1 on shanghaitech (`configs/classifier.py` documents sizes and ablations).

Variants are passed on: `configs/hybrid_shanghaitech.py:cpu`, `configs/hybrid_shanghaitech.py:cpu,bce`.
"""

from vad_jax.configs import classifier


def get_config(variant: str = ""):
  return classifier.get_config(",".join(["hybrid", "shanghaitech", *[o for o in variant.split(",") if o]]))
