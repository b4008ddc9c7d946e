"""The user's own camera footage (train/ normal videos, test/ videos with optional labels)."""
