"""The commands' one start-up (``vad_jax.cli``) and the ``vad-jax`` console script: help
written for users with the command's own flags, the old ``python -m`` places, and a
user's mistake ending in one ``error:`` line instead of a traceback.

Each case runs in a process of its own (absl's flags are global to a process)."""

import pathlib
import subprocess
import sys

import pytest


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_the_console_script_lists_the_user_commands():
  result = run("-m", "vad_jax", "--help")
  assert result.returncode == 0
  for command in ("train", "evaluate", "calibrate", "detect", "export", "benchmark"):
    assert f"vad-jax {command}" in result.stdout
  unknown = run("-m", "vad_jax", "trian")
  assert unknown.returncode == 1 and unknown.stderr.strip().splitlines() == [
    "error: unknown command 'trian'; the commands are train, evaluate, calibrate, detect, export, benchmark "
    "(vad-jax --help)"
  ]


def test_help_shows_the_commands_own_flags_and_the_config():
  result = run("-m", "vad_jax", "train", "--help")
  assert result.stdout.startswith("Train a model, then evaluate it.")
  for flag in ("--config:", "--workdir:", "--stop_after_steps:", "--config.FIELD=VALUE"):
    assert flag in result.stdout, flag
  assert "--xla_" not in result.stdout  # the library's flags stay under --helpfull


@pytest.mark.parametrize("module, flag", [("vad_jax.detect", "--checkpoint:"), ("vad_jax.folds", "--folds:")])
def test_the_old_python_m_places_run_their_command(module, flag):
  result = run("-m", module, "--help")
  assert flag in result.stdout


def test_a_missing_checkpoint_ends_in_one_error_line_naming_it(tmp_path):
  result = run("-m", "vad_jax", "evaluate", "--workdir", str(tmp_path / "nowhere"))
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  (line,) = [line for line in result.stderr.splitlines() if line.strip()]
  assert line.startswith("error: ") and str(tmp_path / "nowhere") in line


def test_a_wrong_number_of_arguments_is_a_usage_error():
  result = run("-m", "vad_jax", "detect", "--checkpoint", "x")
  assert result.returncode == 1 and "detect: expected positional arguments VIDEO, got none" in result.stderr


def test_ci_fails_on_a_skip_that_is_not_allowed(tmp_path):
  """``tests/skip_policy.py``: with ``VAD_JAX_CI`` set, a skip outside ``ALLOWED_SKIPS``
  fails the run (and is named); without it the run passes with the skip reported."""
  import os

  repo = pathlib.Path(__file__).resolve().parents[1]
  (tmp_path / "test_skipping.py").write_text("import pytest\n\ndef test_skips():\n  pytest.skip('no data')\n")
  env = {**os.environ, "PYTHONPATH": str(repo)}
  command = ["-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider", str(tmp_path / "test_skipping.py")]
  ci = subprocess.run([sys.executable, *command], capture_output=True, text=True, env={**env, "VAD_JAX_CI": "1"})
  assert ci.returncode == 1 and "1 skip(s) not allowed in CI" in ci.stdout and "test_skips" in ci.stdout
  env.pop("VAD_JAX_CI", None)
  local = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env)
  assert local.returncode == 0 and "skips allowed in CI" in local.stdout
