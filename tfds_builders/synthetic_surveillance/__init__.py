"""Procedural surveillance videos (the project's built-in dataset) builder."""
