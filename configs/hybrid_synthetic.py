"""HybridModel-1 on synthetic (`configs/classifier.py` documents sizes and ablations).

Variants are passed on: `configs/hybrid_synthetic.py:cpu`, `configs/hybrid_synthetic.py:cpu,bce`.
"""

from vad_jax.configs import classifier


def get_config(variant: str = ""):
  return classifier.get_config(",".join(["hybrid", "synthetic", *[o for o in variant.split(",") if o]]))
