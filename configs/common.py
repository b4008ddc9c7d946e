"""The fields every model's config has: the dataset and how it is read, the optimizer, and
the training loop's length, logging and checkpoints.

The two families extend this base with their own sections (``default.py``: the
dual-stream network; ``classifier.py``: HybridModel-1 and its baselines) and never
delete a field. Every field carries a one-line comment.
"""

import ml_collections


def get_base() -> ml_collections.ConfigDict:
  """The shared fields, with the paper's dual-stream settings as their values."""
  config = ml_collections.ConfigDict()

  config.data = data = ml_collections.ConfigDict()
  data.name = "synthetic_surveillance"  # TFDS builder (tfds_builders/) to train and evaluate on
  data.builder_config = ""  # builder config name ("" = the builder's default)
  data.data_dir = ""  # TFDS data directory ("" = TFDS's default, ~/tensorflow_datasets)
  data.manual_dir = ""  # where the downloaded archives/folders are (datasets that need them)
  data.prepare = True  # prepare the dataset first if it is not prepared yet
  data.train_split = "train"  # split used for training
  data.eval_split = "test"  # split evaluated at the end of training
  data.image_size = (256, 256)  # (height, width) the frames are resized to
  data.channels = 3  # colour channels fed to the network (1 or 3)
  data.jpeg_draft = True  # let PIL decode JPEGs at reduced scale when the target is smaller
  data.seed = 0  # shuffling seed of the training clips
  data.num_epochs = None  # passes over the training clips (None: endless; training stops by steps)
  data.num_workers = 0  # grain worker processes (0: read in the main process)
  data.num_threads = 2  # reader threads per process
  data.prefetch_batches = 2  # batches buffered per process
  data.eval_batch_size = 0  # global evaluation batch (0: batch_size)

  config.optimizer = opt = ml_collections.ConfigDict()
  opt.learning_rate = 2e-5  # initial Adam learning rate, cosine-annealed
  opt.b1 = 0.9  # Adam rho_1
  opt.b2 = 0.999  # Adam rho_2

  config.batch_size = 8  # global batch size (a multiple of the device count)
  config.seed = 0  # model initialisation seed
  config.num_epochs = 50  # training length in passes over the training clips (Avenue: 50)
  config.num_train_steps = 0  # training length in steps; overrides num_epochs when > 0
  config.log_every_steps = 50  # steps between metric fetches, logs and non-finite checks
  config.checkpoint_every_steps = 500  # steps between checkpoints (rounded to log_every_steps)
  config.max_checkpoints_to_keep = 3  # latest checkpoints kept (plus the best, if tracked)
  config.best_metric = ""  # eval metric that picks the best checkpoint ("" = none), e.g. fused_micro_auc
  config.best_metric_split = ""  # split evaluated at each checkpoint for best_metric ("held_out": calibration.videos)
  config.eval_at_end = True  # evaluate on data.eval_split when training finishes
  config.eval_plots = True  # write score curves, ROC curves and frame panels
  return config


def parse_variant(variant: str, positional: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
  """``"a,b,key=value,c"`` -> ``({name: value}, [unnamed options])``: the first unnamed
  parts fill ``positional`` in order (``classifier:hybrid,dcsass,cpu`` and
  ``classifier:model=hybrid,data=dcsass,size=cpu`` mean the same), the rest are options.
  A key given twice is an error naming it."""
  named, options = {}, []
  for part in (p.strip() for p in variant.split(",")):
    if not part:
      continue
    key, eq, value = part.partition("=")
    if eq:
      if key.strip() in named:
        raise ValueError(f"config variant {variant!r}: {key.strip()!r} is given twice")
      named[key.strip()] = value.strip()
    elif len([p for p in positional if p not in named]) and not options:
      named[next(p for p in positional if p not in named)] = part
    else:
      options.append(part)
  return named, options
