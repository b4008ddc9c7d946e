"""The one start-up of every command (``vad_jax/commands/``) and study tool
(``vad_jax/studies/``).

A command is a ``Command``: its help text, its flags, its positional arguments and a
``main`` that gets them. ``run`` defines the flags, parses the command line with absl
(``--help`` shows the command's own flags, ``--config`` and its overrides included),
turns library INFO logs off unless ``--verbosity`` is given, joins a multi-process run
when the command trains or evaluates, and ends with a one-line ``error: ...`` for the
errors a user can fix (a missing file, a bad value, a busy workdir, an unreadable
checkpoint, video or image, a non-finite loss) instead of a traceback, exit status 1.
Such an error raised inside a library that wrapped it (TFDS preparing a dataset) is
found in the chain of causes. With ``--verbosity`` given (``-v 1``) the traceback shows.
"""

import dataclasses
import sys
from collections.abc import Callable, Sequence

from absl import app, flags

from vad_jax import checkpointing, metric_writers, precision, sharding
from vad_jax import workdir as workdir_lib
from vad_jax.tfds_builders import common as builder_common

# Errors that end a command with one line naming the file or value.
USER_ERRORS = (
  ValueError,
  FileNotFoundError,
  workdir_lib.WorkdirBusyError,
  checkpointing.CheckpointError,
  builder_common.DecodeError,  # a video or image that does not decode (VideoDecodeError, FrameDecodeError)
  FloatingPointError,  # a non-finite loss (loop.NonFiniteLossError)
)
HELP_FOOTER = """
A mistake in the input (a missing or damaged file, a bad value) ends the command with one
line, "error: ..." naming the file or value, and exit status 1. With --verbosity given
(-v 0: the libraries' INFO logs too; -v 1: their debug logs) its traceback shows as well."""


def define_precision_flag() -> None:
  """``--precision`` of the commands that restore a trained model (evaluate, detect, export)."""
  flags.DEFINE_enum(
    "precision", None, list(precision.CHOICES), "Compute precision (default: the one the model was trained with)."
  )


def user_error(error: BaseException) -> BaseException | None:
  """``error``, or the first of its causes (``raise ... from``), that is one of
  ``USER_ERRORS``: what a library raised when it wrapped a user's mistake. ``None`` for
  anything else (a bug: its traceback is shown)."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, USER_ERRORS):
      return error
    seen.add(id(error))
    error = error.__cause__
  return None


@dataclasses.dataclass(frozen=True)
class Command:
  """A command line: ``main(positional arguments)`` after ``define_flags()``."""

  name: str  # e.g. "train" (``vad-jax train``) or "folds" (a study tool)
  doc: str  # help text for users (the module docstring)
  define_flags: Callable[[], None]
  main: Callable[[Sequence[str]], None]
  positional: tuple[str, ...] = ()  # names of the positional arguments, e.g. ("VIDEO",)
  distributed: bool = False  # join a multi-process run (jax.distributed) before main


def run(command: Command, argv: Sequence[str] | None = None) -> None:
  """Runs ``command`` on ``argv`` (default ``sys.argv``; ``argv[0]`` names the program)."""
  argv = list(sys.argv if argv is None else argv)
  sys.argv = argv  # absl keys the main program's flags by argv[0]
  before = set(flags.FLAGS)
  command.define_flags()
  for name in sorted(set(flags.FLAGS) - before):  # --help lists them, wherever they were defined
    flags.FLAGS.register_key_flag_for_module(argv[0], flags.FLAGS[name])
  sys.modules["__main__"].__doc__ = command.doc + HELP_FOOTER  # absl's --help prints the main module's docstring
  app.run(lambda parsed: _main(command, parsed), argv=argv)


def _main(command: Command, argv: Sequence[str]) -> None:
  arguments = list(argv[1:])
  if len(arguments) != len(command.positional):
    expected = " ".join(command.positional) or "none"
    raise app.UsageError(f"{command.name}: expected positional arguments {expected}, got {arguments or 'none'}")
  metric_writers.quiet_library_logs()
  if command.distributed:
    sharding.maybe_initialize_distributed()
  try:
    command.main(arguments)
  except Exception as error:
    found = user_error(error)
    if found is None or flags.FLAGS["verbosity"].present:
      raise
    raise SystemExit(f"error: {found}") from None
