"""Fixtures shared by the test modules (the XLA/device set-up is in the root conftest).

The datasets and the tiny trained run are made once per test session and shared by the
``pytest -n`` workers (``shared``: a folder all workers see, guarded by a file lock), so
no two modules prepare the same data or train the same model. Tests treat them as
read-only and copy what they change.
"""

import contextlib
import fcntl
import json
import pathlib

import pytest

from vad_jax import loop
from vad_jax.configs import classifier, synthetic
from vad_jax.data import prepare


@pytest.fixture(scope="session")
def shared_root(request, tmp_path_factory) -> pathlib.Path:
  """A folder of this test session that every xdist worker sees (also without xdist,
  ``-p no:xdist``: then there is one process)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if hasattr(request.config, "workerinput") else base


@contextlib.contextmanager
def _once(root: pathlib.Path, name: str):
  """Yields ``(folder, done)`` under an exclusive lock: ``done`` when another worker has
  already made ``folder``; the caller makes it otherwise (marked done on success)."""
  folder = root / name
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    marker = root / f"{name}.done"
    yield folder, marker.exists()
    marker.touch()


def _prepared(root: pathlib.Path, name: str, config) -> pathlib.Path:
  with _once(root, name) as (path, done):
    if not done:
      config.data.data_dir = str(path)
      prepare.ensure_prepared(config.data)
  return path


@pytest.fixture(scope="session")
def data_dir(shared_root):
  """A TFDS data directory holding the tiny synthetic set of ``configs/synthetic.py:test``.

  Modules that need another dataset define their own ``data_dir``.
  """
  return _prepared(shared_root, "tfds", synthetic.get_config("test"))


@pytest.fixture(scope="session")
def supervised_data_dir(shared_root):
  """A TFDS data directory holding ``synthetic_surveillance/supervised`` (the classifiers'
  set); modules use it as their ``data_dir``."""
  return _prepared(shared_root, "tfds_supervised", classifier.get_config("hybrid,synthetic,test"))


@pytest.fixture(scope="session")
def tiny_run(shared_root, data_dir):
  """``(workdir, evaluation results)`` of ``synthetic:test`` trained to the end (6 steps,
  checkpoints 2, 4, 6) and evaluated: read-only, copy it to change it."""
  with _once(shared_root, "tiny_run") as (workdir, done):
    if not done:
      config = synthetic.get_config("test")
      config.data.data_dir = str(data_dir)
      results = loop.train_and_evaluate(config, str(workdir))
      (shared_root / "tiny_run.json").write_text(json.dumps(results))
  return workdir, json.loads((shared_root / "tiny_run.json").read_text())
