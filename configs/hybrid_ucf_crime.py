"""HybridModel-1 on ucf_crime (`configs/classifier.py` documents sizes and ablations).

Variants are passed on: `configs/hybrid_ucf_crime.py:cpu`, `configs/hybrid_ucf_crime.py:cpu,bce`.
"""

from vad_jax.configs import classifier


def get_config(variant: str = ""):
  return classifier.get_config(",".join(["hybrid", "ucf_crime", *[o for o in variant.split(",") if o]]))
