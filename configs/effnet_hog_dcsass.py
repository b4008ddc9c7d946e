"""effnet_hog on DCSASS (video-level split; `configs/classifier.py` documents the variants).

`configs/effnet_hog_dcsass.py:cpu` is the CPU-sized model; `configs/effnet_hog_dcsass.py:as_published`
uses the authors' random clip-level split.
"""

from vad_jax.configs import classifier


def get_config(variant: str = ""):
  return classifier.dcsass_config("effnet_hog", variant)
