"""TFDS builders for the video anomaly detection datasets (manual download, no TF).

One folder per dataset in the ``tfds new`` layout (``<name>/<name>_dataset_builder.py``
with class ``Builder``, its test, README, CITATIONS.bib, ``dummy_data/``), plus:

  common.py    the frame record schema of docs/conventions.md, configs, encoding,
               manual-dir checks and the ``videos`` / ``skipped`` metadata
  video.py     PyAV decoding with frame-count checks, and fixture video writing
  testing.py   a TF-free stand-in for ``tfds.testing.DatasetBuilderTestCase``

Importing a builder module registers it with TFDS, e.g.
``from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder`` makes
``tfds.builder("ucsd_ped/ped2")`` work. See docs/datasets.md.
"""
