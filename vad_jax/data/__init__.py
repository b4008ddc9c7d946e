"""Input pipeline over the TFDS frame datasets of ``vad_jax.tfds_builders``.

Modules, one concern each (import the one you need; this package imports nothing):

  input_pipeline.py  entry points: grain pipelines, host sharding, iterators of global
                     ``jax.Array`` batches (``create_train_iterator`` and friends)
  sources.py         open a prepared TFDS split as a random-access source + video index
  preprocessing.py   decode, resize, convert channels, scale pixels
  indexing.py        which records form each clip, evaluation example, labelled clip
  loaders.py         picklable batch loaders that grain runs (in workers if configured)
  benchmark.py       ``python -m vad_jax.data.benchmark``: frames/s of the pipeline
  prepare.py         register and prepare the configured dataset's builder
"""
