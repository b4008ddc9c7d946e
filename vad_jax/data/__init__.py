"""Input pipeline over the TFDS frame datasets of ``vad_jax.tfds_builders``.

Modules, one concern each (import the one you need; this package imports nothing):

  input_pipeline.py  entry points: iterators of global ``jax.Array`` batches read from the
                     config (``create_train_iterator`` and friends)
  host_pipelines.py  grain pipelines of host batches, host sharding, worker processes
  sources.py         open a prepared TFDS split as a random-access source + video index
  preprocessing.py   decode, resize, convert channels, scale pixels
  indexing.py        which records form each clip, evaluation example, labelled clip
  loaders.py         picklable batch loaders that grain runs (in workers if configured)
  augment.py         clip-level training batches mirrored and moved (``data.augment``)
  prepare.py         register and prepare the configured dataset's builder

The pipeline's throughput is measured by ``python -m vad_jax.studies.data_throughput``.
"""
