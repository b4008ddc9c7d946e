"""Study tools: commands that measure or plan rather than train (``python -m vad_jax.studies.NAME``)."""
