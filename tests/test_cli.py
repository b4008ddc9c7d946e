"""The commands' one start-up (``vad_jax.cli``) and the ``vad-jax`` console script: help
written for users with the command's own flags, the old ``python -m`` places, and a
user's mistake ending in one ``error:`` line instead of a traceback (a damaged file met
while preparing footage, an empty video, a non-finite loss, an error a library wrapped),
the traceback only when asked for with ``--verbosity``.

Each case runs in a process of its own (absl's flags are global to a process)."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


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


def error_line(result: subprocess.CompletedProcess) -> str:
  """The one line a user's mistake ends with: exit status 1, no traceback."""
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines and lines[-1].startswith("error: ") and not any(line.startswith("  File ") for line in lines), lines
  return lines[-1]


def footage_with(tmp_path, problem: str):
  """A footage folder whose train/ holds one bad input, and the file to be named."""
  train = tmp_path / "footage" / "train"
  train.mkdir(parents=True)
  if problem == "truncated JPEG":
    (train / "cam").mkdir()
    for i in range(6):
      Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(train / "cam" / f"f{i}.jpg", quality=95)
    data = (train / "cam" / "f3.jpg").read_bytes()
    (train / "cam" / "f3.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path / "footage", train / "cam" / "f3.jpg"
  (train / "notes.mp4").write_text("not a video, a note saved with the wrong name\n")
  return tmp_path / "footage", train / "notes.mp4"


@pytest.mark.parametrize("problem", ["truncated JPEG", "text file named .mp4"])
def test_a_bad_file_met_while_preparing_footage_ends_in_one_line_naming_it(tmp_path, problem):
  footage, bad = footage_with(tmp_path, problem)
  result = run(
    "-m",
    "vad_jax",
    "train",
    "--config",
    "own_videos:test",
    "--workdir",
    str(tmp_path / "run"),
    f"--config.data.manual_dir={footage}",
    f"--config.data.data_dir={tmp_path / 'tfds'}",
  )
  line = error_line(result)
  assert str(bad) in line, line
  if problem == "truncated JPEG":
    assert line.startswith(f"error: Cannot decode image {bad} (video train/cam, frame 3): "), line


def test_an_empty_video_given_to_calibrate_ends_in_one_line_naming_it(tmp_path):
  empty = tmp_path / "normal_day.mp4"
  empty.write_bytes(b"")
  result = run("-m", "vad_jax", "calibrate", "--workdir", str(tmp_path / "run"), "--videos", str(empty))
  assert error_line(result) == (
    f"error: Cannot decode video {empty}: cannot open ([Errno 1094995529] Invalid data found when processing input: "
    f"'{empty}')"
  )


FAILING_COMMAND = """
import sys
from vad_jax import cli, loop
from vad_jax.tfds_builders import common

def main(arguments):
  if arguments == ["non-finite"]:
    raise loop.NonFiniteLossError("non-finite loss at step 3: {'loss': nan}; no checkpoint had been written yet")
  try:
    raise common.FrameDecodeError("/footage/train/cam/f3.jpg", "image file is truncated", video="train/cam", index=3)
  except common.DecodeError as error:  # as TFDS wraps an error while it writes a split (py_utils.reraise)
    raise RuntimeError(f"Failed to encode example: {error}") from error

cli.run(cli.Command("fail", "A command that fails.", lambda: None, main, positional=("KIND",)), sys.argv)
"""


@pytest.mark.parametrize(
  "kind, expected",
  [
    (
      "non-finite",
      "error: non-finite loss at step 3: {'loss': nan}; no checkpoint had been written yet",
    ),
    (
      "wrapped",
      "error: Cannot decode image /footage/train/cam/f3.jpg (video train/cam, frame 3): image file is truncated",
    ),
  ],
  ids=["non-finite loss", "wrapped by TFDS"],
)
def test_a_non_finite_loss_and_a_wrapped_decoding_error_end_in_one_line(kind, expected):
  assert error_line(run("-c", FAILING_COMMAND, kind)) == expected


def test_the_traceback_shows_when_asked_for_with_verbosity():
  verbose = run("-c", FAILING_COMMAND, "wrapped", "-v", "1")
  assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr, verbose.stderr[-2000:]
  assert "FrameDecodeError: Cannot decode image /footage/train/cam/f3.jpg" in verbose.stderr


def test_help_says_how_to_see_an_errors_traceback():
  assert "With --verbosity given\n(-v 0" in run("-m", "vad_jax", "calibrate", "--help").stdout
