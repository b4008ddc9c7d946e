"""Train a model, then evaluate it.

  vad-jax train --config NAME[:variant] --workdir DIR [--config.FIELD=VALUE ...]
  vad-jax train --config ucsd_ped2:cpu --workdir runs/ped2 --config.data.manual_dir=/data/ucsd_ped2

--config takes a shipped config by name (default, synthetic, ucsd_ped2:cpu, avenue,
classifier:model=hybrid,data=dcsass,size=cpu, ...) or the path of a config file
(my_configs/camera.py:variant); any field can be overridden with --config.FIELD=VALUE.
Checkpoints, metrics.jsonl, TensorBoard events and eval/ go to --workdir; running the
same command again resumes from its latest checkpoint. A finished run (trained to its
last step and evaluated) is not trained or evaluated again: the command says so and
prints the saved evaluation; --reevaluate evaluates it again.
"""

import jax
from absl import flags

from vad_jax import cli, config_flags, loop, tasks


def define_flags() -> None:
  config_flags.define_config(
    "config",
    "default",
    "Training configuration: a shipped config's name (default, ucsd_ped2:cpu, ...) or a config file path, "
    "with an optional :variant; override fields with --config.FIELD=VALUE.",
  )
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and evaluation output.", required=True)
  flags.DEFINE_integer("stop_after_steps", None, "Leave after this many steps (with a checkpoint); rerun to resume.")
  flags.DEFINE_bool("reevaluate", False, "Evaluate a finished run again (by default its saved evaluation is printed).")


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  results = loop.train_and_evaluate(f.config, f.workdir, f.stop_after_steps, reevaluate=f.reevaluate)
  if results and jax.process_index() == 0:
    print(tasks.for_config(f.config).summary(results), flush=True)


COMMAND = cli.Command("train", __doc__, define_flags, main, distributed=True)

if __name__ == "__main__":
  cli.run(COMMAND)
