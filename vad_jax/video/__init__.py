"""Video in, results out: reading sources, model windows, per-frame results and alarms,
annotated output, and what ``vad-jax detect`` prints and writes."""
