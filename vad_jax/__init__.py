"""vad_jax: video anomaly detection in JAX/Flax.

Subpackages and modules, one concern each:
  models/       building blocks and networks (temporal shift, attention, memory, ...)
  losses/       training objectives
  scoring.py    anomaly scores (PSNR, memory distance, fusion)
  metrics.py    host-side ROC/AUC/EER and classification metrics
  data/         input pipeline over the TFDS builders in ``tfds_builders/``
  sharding.py   the device mesh and global batches
"""

__version__ = "0.1.0"
