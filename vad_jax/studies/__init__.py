"""Study tools: how a recipe was chosen and what a result rests on (ablations, folds over
videos, learning curves, ensembles, the device check, data throughput, ahead-of-time
compilation). Each runs as ``python -m vad_jax.studies.NAME`` through the commands'
start-up (``vad_jax.cli``); its functions are the study's library."""
