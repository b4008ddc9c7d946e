"""Paper-scale defaults for the dual-stream memory-augmented network.

The shared fields come from ``common.py``; this adds the network's own sections (model,
loss, score, calibration, the clip stride, the localisation figures' switch). Every field
carries a one-line comment. Dataset configs import ``get_config`` and override only what
differs. The paper-scale widths (32, 64, 128, 256) are the widest that run at the paper's
reported 34 fps on its GPU (docs/model.md, "Default size"). Variants:
``configs/default.py:mnad`` (the MNAD / Frame-Pred widths 64-512, 4x the work per frame),
``configs/default.py:cpu`` (a model that trains on a laptop CPU) and
``configs/default.py:test`` (tiny, for the test suite).
"""

import ml_collections

from vad_jax.configs import common


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  config = common.get_base()

  config.model = model = ml_collections.ConfigDict()
  model.name = "dual_stream"  # the network to build (dual_stream)
  model.widths = (32, 64, 128, 256)  # encoder channels per resolution level (stride 8); see docs/model.md
  model.num_items = 20  # M: memory items per memory module
  model.sequence_length = 5  # t: frames per clip (t-1 inputs, the last is predicted)
  model.spatial_inputs = 0  # frames the spatial stream sees (0 = all t-1)
  model.fusion = "average"  # how the two predictions make the final frame (see docs/model.md)
  model.update_memory_at_test = False  # keep updating memory items at test time
  model.use_rtsm = True  # residual temporal shift modules in the encoder (Eq. 1)
  model.use_rcam = True  # residual channel attention after each decoder up-sampling (Eqs. 2-4)
  model.use_memory = True  # memory modules on every skip connection and the bottleneck
  model.skip_query = True  # skips pass [query, memory read] (MNAD); False: the read alone
  model.fold_fraction = 1 / 8  # fraction of channels shifted in each time direction
  model.circular_shift = False  # wrap the shifted frame around instead of zero-filling
  model.attention_reduction = 16  # r: channel reduction of the attention block
  model.negative_slope = 0.2  # LeakyReLU slope
  model.dtype = "float32"  # compute dtype (bfloat16 for mixed precision; params stay float32)
  model.conv_impl = "auto"  # convolutions: native (XLA), matmul, or auto (per backend, see docs/model.md)

  config.loss = loss = ml_collections.ConfigDict()
  loss.alpha = 0.1  # alpha_s: spatial discretization weight (Eq. 11)
  loss.beta = 0.1  # beta_s: temporal discretization weight (Eq. 12)
  loss.gamma_i = 0.5  # spatial stream weight (Eq. 13)
  loss.gamma_x = 0.5  # temporal stream weight (Eq. 13), 1 - gamma_i
  loss.margin_a = 2.0  # a in Eq. (10)
  loss.margin_b = 1.0  # b in Eq. (10)
  loss.hinge = True  # clamp each bracket of Eq. (10) at zero

  config.score = score = ml_collections.ConfigDict()
  score.lam = 0.8  # lambda in Eq. (16): weight of the PSNR term
  score.memory_level = -1  # memory whose distance enters Eq. (15) (-1 = bottleneck)

  config.eval_pixel_metrics = True  # localisation figures (pixel AUROC, RBDC/TBDC) when the eval split has masks

  data = config.data
  data.frame_stride = 1  # distance in frames between consecutive frames of a clip

  config.calibration = cal = ml_collections.ConfigDict()
  cal.videos = ""  # training videos held out of training to fit the deployment score ("fold:i/k"; "" = none)
  cal.false_alarm_rate = 0.01  # target false-alarm rate on normal frames that sets the deployment threshold

  if variant == "mnad":
    model.widths = (64, 128, 256, 512)
  elif variant == "cpu":
    model.widths = (16, 32, 64, 128)
    data.image_size = (128, 128)
  elif variant == "test":
    model.widths = (4, 8, 16)
    model.num_items = 4
    model.attention_reduction = 4
    data.image_size = (16, 16)
    config.batch_size = 8
    config.num_train_steps = 6
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.eval_plots = False
  elif variant:
    raise ValueError(f"unknown variant {variant!r} of configs/default.py; expected '', 'mnad', 'cpu' or 'test'")
  return config


def video_dataset_config(
  name: str, num_epochs: int, checkpoint_every_steps: int, variant: str
) -> ml_collections.ConfigDict:
  """The paper's settings on TFDS dataset ``name``; variant ``mnad``: the MNAD widths;
  variant ``cpu``: the CPU-sized network at 128x128 with a higher learning rate and a
  fixed number of steps."""
  if variant not in ("", "mnad", "cpu"):
    raise ValueError(f"unknown variant {variant!r}; expected '', 'mnad' or 'cpu'")
  config = get_config(variant)
  config.data.name = name
  config.num_epochs = num_epochs
  config.checkpoint_every_steps = checkpoint_every_steps
  if variant == "cpu":
    config.optimizer.learning_rate = 1e-3
    config.num_train_steps = 3000
  return config
