"""Export a trained model's scoring program, to run with JAX alone.

  vad-jax export --checkpoint RUN[/checkpoints/300] --output model.jaxexport

Writes the serialised program (jax.export, any batch size, the weights inside) and a
JSON file beside it describing its inputs, outputs and the preprocessing the inputs
need (vad_jax/export.py). Another process loads it without this package:

  import jax
  scoring = jax.export.deserialize(open("model.jaxexport", "rb").read())
  outputs = scoring.call(windows)
"""

from absl import flags

from vad_jax import cli
from vad_jax.detector import Detector


def define_flags() -> None:
  flags.DEFINE_string(
    "checkpoint", None, "A checkpoint step directory, or a training workdir (latest step).", required=True
  )
  flags.DEFINE_string("output", None, "The program's file (the description goes beside it, .json).", required=True)


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  path = Detector.load(f.checkpoint).export(f.output)
  print(f"wrote {path} and {path.with_suffix('.json')}", flush=True)


COMMAND = cli.Command("export", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
