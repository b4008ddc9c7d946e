"""``--config`` for the command-line tools: shipped configs by name, or config files.

``--config ucsd_ped2:cpu`` loads the shipped ``vad_jax/configs/ucsd_ped2.py`` (the
repository's ``configs/`` folder) with variant ``cpu`` from any working directory;
``--config path/to/mine.py:variant`` loads a user's own file, exactly as
``ml_collections.config_flags.DEFINE_config_file`` does. A repository-style path
``configs/NAME.py`` that does not exist from the current directory falls back to the
shipped config ``NAME``, so the commands of the README work anywhere. Overrides
(``--config.batch_size=16``) behave as with ``DEFINE_config_file``.
"""

import importlib.resources
import pathlib

import ml_collections
from absl import flags
from ml_collections.config_flags import config_flags as mlc_config_flags  # the parser classes (pinned 1.1.0)

SHIPPED_PACKAGE = "vad_jax.configs"


def shipped_dir() -> pathlib.Path:
  """The folder of the shipped config files."""
  return pathlib.Path(str(importlib.resources.files(SHIPPED_PACKAGE)))


def shipped_configs() -> list[str]:
  """Names of the shipped configs (``default``, ``ucsd_ped2``, ...): the files with a
  ``get_config`` (``common.py`` holds the shared base, not a config)."""
  return sorted(
    p.stem for p in shipped_dir().glob("*.py") if not p.name.startswith("_") and "def get_config(" in p.read_text()
  )


def resolve(spec: str) -> str:
  """``FILE[:variant]`` for a config given by name or path (see the module docstring).

  Raises ``ValueError`` naming the shipped configs when ``spec`` is neither an existing
  file nor a shipped name.
  """
  target, colon, variant = spec.partition(":")
  if pathlib.Path(target).is_file():
    return spec
  path = pathlib.PurePath(target)
  name = path.stem if path.suffix == ".py" and path.parent.name in ("", "configs") else target
  if name in shipped_configs():
    return str(shipped_dir() / f"{name}.py") + colon + variant
  raise ValueError(
    f"no config file {target!r} (from {pathlib.Path.cwd()}) and no shipped config of that name; "
    f"shipped configs: {', '.join(shipped_configs())}"
  )


class _NameOrFileParser(mlc_config_flags.ConfigFileFlagParser):
  """``ConfigFileFlagParser`` that first resolves shipped config names."""

  def parse(self, path):
    return super().parse(resolve(path))


def load(spec: str, lock: bool = False) -> ml_collections.ConfigDict:
  """The config of ``spec`` (name or file, optional ``:variant``), as ``--config`` loads it."""
  return _NameOrFileParser(name="config", lock_config=lock).parse(spec)


def define_config(name: str, default: str, help_string: str, lock_config: bool = True) -> flags.FlagHolder:
  """A ``--NAME`` config flag that accepts shipped names and files, plus overrides."""
  flag = mlc_config_flags._ConfigFlag(  # pylint: disable=protected-access  (the parser is the only change)
    parser=_NameOrFileParser(name=name, lock_config=lock_config),
    serializer=flags.ArgumentSerializer(),
    name=name,
    default=default,
    help_string=help_string,
    flag_values=flags.FLAGS,
  )
  return flags.DEFINE_flag(flag, flags.FLAGS)
