"""CUHK Avenue dataset builder."""
