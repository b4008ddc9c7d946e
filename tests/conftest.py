"""Fixtures shared by the test modules (the XLA/device set-up is in the root conftest)."""

import pytest

from vad_jax.configs import classifier, synthetic
from vad_jax.data import prepare


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A TFDS data directory holding the tiny synthetic set of ``configs/synthetic.py:test``.

  Modules that need another dataset define their own ``data_dir``.
  """
  path = tmp_path_factory.mktemp("tfds")
  config = synthetic.get_config("test")
  config.data.data_dir = str(path)
  prepare.ensure_prepared(config.data)
  return path


@pytest.fixture(scope="session")
def supervised_data_dir(tmp_path_factory):
  """A TFDS data directory holding ``synthetic_surveillance/supervised`` (the classifiers'
  set), prepared once per test process; modules use it as their ``data_dir``."""
  path = tmp_path_factory.mktemp("tfds_supervised")
  config = classifier.get_config("hybrid,synthetic,test")
  config.data.data_dir = str(path)
  prepare.ensure_prepared(config.data)
  return path
