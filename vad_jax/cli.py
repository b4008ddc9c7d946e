"""The one start-up of every command (``vad_jax/commands/``) and study tool
(``vad_jax/studies/``).

A command is a ``Command``: its help text, its flags, its positional arguments and a
``main`` that gets them. ``run`` defines the flags, parses the command line with absl
(``--help`` shows the command's own flags, ``--config`` and its overrides included),
turns library INFO logs off unless ``--verbosity`` is given, joins a multi-process run
when the command trains or evaluates, and ends with a one-line ``error: ...`` for the
errors a user can fix (a missing file, a bad value, a busy workdir, an unreadable
checkpoint or video) instead of a traceback.
"""

import dataclasses
import sys
from collections.abc import Callable, Sequence

from absl import app, flags

from vad_jax import checkpointing, metric_writers, sharding
from vad_jax import workdir as workdir_lib
from vad_jax.tfds_builders import video as video_lib

# Errors that end a command with one line naming the file or value.
USER_ERRORS = (
  ValueError,
  FileNotFoundError,
  workdir_lib.WorkdirBusyError,
  checkpointing.CheckpointError,
  video_lib.VideoDecodeError,
)


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
  sys.modules["__main__"].__doc__ = command.doc  # absl's --help prints the main module's docstring
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
  except USER_ERRORS as error:
    raise SystemExit(f"error: {error}") from None
