"""``vad-jax COMMAND [flags]`` (also ``python -m vad_jax COMMAND``): the user commands.

  vad-jax train      --config NAME[:variant] --workdir DIR    train a model, then evaluate it
  vad-jax evaluate   --workdir DIR                            evaluate a checkpoint
  vad-jax calibrate  --workdir DIR [--videos ...]             fit the deployment score on normal video
  vad-jax detect     VIDEO --checkpoint DIR                   score a video, folder or stream; report alarms
  vad-jax export     --checkpoint DIR --output FILE           the scoring program for JAX alone
  vad-jax benchmark  --config NAME                            frames/s, step time, GFLOP/s

``vad-jax COMMAND --help`` lists a command's flags. A mistake in the input ends a command
with one line, ``error: ...`` naming the file or value; ``-v 1`` adds its traceback. The
study tools (ablations, folds, learning curves, ensembles, device check, data
throughput, ahead-of-time compilation) run as ``python -m vad_jax.studies.NAME``.
"""

import sys

from vad_jax import cli
from vad_jax.commands import benchmark, calibrate, detect, evaluate, export, train

COMMANDS = {c.name: c for c in (m.COMMAND for m in (train, evaluate, calibrate, detect, export, benchmark))}


def main(argv: list[str] | None = None) -> None:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(__doc__.strip())
    return
  name = argv[1]
  if name not in COMMANDS:
    raise SystemExit(f"error: unknown command {name!r}; the commands are {', '.join(COMMANDS)} (vad-jax --help)")
  cli.run(COMMANDS[name], [f"vad-jax {name}", *argv[2:]])


if __name__ == "__main__":
  main()
