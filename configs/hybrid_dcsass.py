"""hybrid on DCSASS (video-level split; `configs/classifier.py` documents the variants).

`configs/hybrid_dcsass.py:cpu` is the CPU-sized model; `configs/hybrid_dcsass.py:as_published`
uses the authors' random clip-level split.
"""

from configs import classifier


def get_config(variant: str = ""):
  options = [o for o in variant.split(",") if o]
  dataset = "dcsass_as_published" if "as_published" in options else "dcsass"
  rest = [o for o in options if o != "as_published"]
  return classifier.get_config(",".join(["hybrid", dataset, *rest]))
