"""Export a trained model's scoring program, to run with JAX alone.

  vad-jax export --checkpoint RUN[/checkpoints/300] --output model.jaxexport

Writes the serialised program (jax.export, any batch size, the weights inside) and a
JSON file beside it (model.json) describing its inputs, outputs and the preprocessing
the inputs need, with the program's size and sha256 (vad_jax/export.py). When the
checkpoint has a calibration (vad-jax calibrate), the program also returns the
calibrated scores and the alarm of every window; otherwise the JSON says
"calibrated": false. Another process loads it without this package, after checking the
size and sha256 (the check in a few lines: vad_jax/export.py's docstring):

  import jax
  scoring = jax.export.deserialize(open("model.jaxexport", "rb").read())
  outputs = scoring.call(windows)  # outputs["score"], outputs["alarm"] with a calibration
"""

import json

from absl import flags

from vad_jax import cli, export, precision
from vad_jax.detector import Detector


def define_flags() -> None:
  cli.define_precision_flag()
  flags.DEFINE_string(
    "checkpoint", None, "A checkpoint step directory, or a training workdir (latest step).", required=True
  )
  flags.DEFINE_string("output", None, "The program's file (the description goes beside it, .json).", required=True)


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  detector = Detector.load(f.checkpoint, precision=f.precision)
  print(precision.of_config(detector.config).describe(), flush=True)
  path = detector.export(f.output)
  description = json.loads(export.description_path(path).read_text())
  print(f"wrote {path} and {export.description_path(path)}", flush=True)
  if description.get("calibrated"):
    calibration = description["calibration"]
    print(
      f"calibrated: scores and alarms (score > {calibration['threshold']:g}, target false-alarm rate "
      f"{calibration['false_alarm_rate']:g})",
      flush=True,
    )
  elif "calibrated" in description:
    print(f"not calibrated: {description['calibration']}", flush=True)


COMMAND = cli.Command("export", __doc__, define_flags, main)

if __name__ == "__main__":
  cli.run(COMMAND)
