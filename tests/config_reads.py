"""Records which config fields the package's code reads (for test_config_fields.py)."""

import contextlib
import pathlib
import sys

from ml_collections import ConfigDict

import vad_jax

PACKAGE = pathlib.Path(vad_jax.__file__).resolve().parent
ML_COLLECTIONS = pathlib.Path(sys.modules["ml_collections"].__file__).resolve().parent


def leaves(config: ConfigDict, prefix: str = "") -> list[str]:
  out = []
  for key, value in config.items():
    if isinstance(value, ConfigDict):
      out += leaves(value, f"{prefix}{key}.")
    else:
      out.append(prefix + key)
  return out


def _is_package_code(frame) -> bool:
  path = pathlib.Path(frame.f_code.co_filename).resolve()
  configs = pathlib.Path(sys.modules["vad_jax.configs"].__file__).resolve().parent
  return path.is_relative_to(PACKAGE) and not path.is_relative_to(configs)


def _caller_is_package_code() -> bool:
  """True when ``__getitem__`` was called by package code directly or through
  ``config.field`` / ``config.get(...)``; bulk reads (``to_dict``, copies, printing)
  made inside ml_collections do not count."""
  frame = sys._getframe(2)
  if pathlib.Path(frame.f_code.co_filename).resolve().is_relative_to(ML_COLLECTIONS):
    if frame.f_code.co_name not in ("__getattr__", "get"):
      return False
    frame = frame.f_back
  return frame is not None and _is_package_code(frame)


@contextlib.contextmanager
def recording(config: ConfigDict):
  """Yields a set that collects the dotted names of the fields of ``config`` read by
  code of the package (not by ml_collections itself, the config files or tests)."""
  prefixes = {}

  def index(c, prefix):
    prefixes[id(c)] = prefix
    for key, value in c.items():
      if isinstance(value, ConfigDict):
        index(value, f"{prefix}{key}.")

  index(config, "")
  reads = set()
  original = ConfigDict.__getitem__

  def getitem(self, key):
    if id(self) in prefixes and isinstance(key, str) and _caller_is_package_code():
      reads.add(prefixes[id(self)] + key)
    return original(self, key)

  ConfigDict.__getitem__ = getitem
  try:
    yield reads
  finally:
    ConfigDict.__getitem__ = original
