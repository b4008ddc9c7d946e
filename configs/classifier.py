"""Supervised anomaly classifiers: HybridModel-1 and its two baselines (docs/hybrid.md).

``classifier:MODEL,DATASET[,SIZE][,ABLATION][,CHANGE]``, e.g. ``classifier:hybrid,dcsass``
or ``classifier:hybrid,synthetic,cpu,bce``; the same with named keys:
``classifier:model=hybrid,data=synthetic,size=cpu,ablation=bce`` (``ablation=`` and
``change=`` take several joined by ``+``, e.g. ``change=norm+max``). The named files
(``configs/hybrid_dcsass.py``, ...) are this with fixed choices. The config extends the
common base (``common.py``) with the classifiers' own sections (model, loss, boxes,
alarm, the clip settings of ``data``).

* MODEL: ``hybrid`` (HybridModel-1), ``convlstm`` (baseline 1), ``effnet_hog`` (baseline 2).
* DATASET: ``dcsass`` (video-level split; ``dcsass_as_published`` for the authors' random
  clip-level split), ``ucf_crime``, ``shanghaitech``, ``synthetic`` (the built-in
  ``synthetic_surveillance/supervised``), ``ucsd_ped2`` (the supervised fold protocol
  on UCSD Ped2: ``data.fold = "i/k"`` holds out part ``i`` of ``k`` of the 12 labelled
  test videos for evaluation and trains on the 16 normal training videos plus the other
  test videos; ``python -m vad_jax.studies.folds`` runs every fold).
* SIZE: ``cpu`` (tiny backbone, small inputs: minutes on a laptop) or ``test`` (the
  test suite); none = the published sizes.
* ABLATION (HybridModel-1 only): ``no_affm`` (concatenation), ``bce`` (weighted BCE
  instead of TCR), ``spatial_only``, ``temporal_only``, ``no_objects``.
* CHANGE (not published, labelled): ``differences`` (HybridModel-1, ConvLSTM: the
  ConvLSTM reads each frame beside its difference to the previous frame), ``balanced``
  (ConvLSTM: class-weighted softmax loss), ``norm`` (HybridModel-1, ConvLSTM: a
  BatchNorm standardises the ConvLSTM's input channels), ``max`` (HybridModel-1: spatial
  maximum instead of mean, the ConvLSTM map projected per location; ConvLSTM: each
  feature's maximum over time and space instead of flattening), ``short`` (ConvLSTM:
  clips of 8 frames instead of 30, batch 8), ``augment`` (every model: training clips
  mirrored left-right at random and moved by up to 1/8 of the frame, ``data.augment``),
  ``revised`` (the changes that made each
  ConvLSTM model learn, chosen on a validation split, with 1,000 steps at the ``cpu``
  size: HybridModel-1 ``differences``, ``norm`` and ``max``; ConvLSTM ``differences``,
  ``norm``, ``balanced`` and ``short``; docs/hybrid.md).
"""

import ml_collections

from vad_jax.configs import common

MODELS = ("hybrid", "convlstm", "effnet_hog")
DATASETS = ("dcsass", "dcsass_as_published", "ucf_crime", "shanghaitech", "synthetic", "ucsd_ped2")
SIZES = ("cpu", "test")
ABLATIONS = ("no_affm", "bce", "spatial_only", "temporal_only", "no_objects")
# Labelled changes that are not published (docs/hybrid.md, Diagnosis): ``differences``
# (HybridModel-1 and ConvLSTM: the ConvLSTM reads each frame beside its change since the
# previous frame), ``balanced`` (ConvLSTM: class-weighted softmax loss), ``norm``
# (HybridModel-1 and ConvLSTM: BatchNorm of the ConvLSTM's input), ``max`` (HybridModel-1 and
# ConvLSTM: max pooling instead of mean or flattening), ``short`` (ConvLSTM: 8-frame clips),
# ``augment`` (every model: mirrored and moved training clips), ``revised`` (per model, below).
CHANGES = ("differences", "balanced", "norm", "max", "short", "augment", "revised")
REVISED = {"hybrid": ("differences", "norm", "max"), "convlstm": ("differences", "norm", "balanced", "short")}
# The models each change applies to.
CHANGE_MODELS = {
  **dict.fromkeys(("differences", "norm", "max", "revised"), ("hybrid", "convlstm")),
  **dict.fromkeys(("balanced", "short"), ("convlstm",)),
  "augment": MODELS,
}
# ``augment``: a clip is moved by up to this fraction of its height and width each way.
AUGMENT_MAX_SHIFT = 0.125
SHORT_CLIP_FRAMES = 8


VARIANT_KEYS = ("model", "data", "size", "ablation", "change")


def get_config(variant: str = "hybrid,synthetic,cpu") -> ml_collections.ConfigDict:
  named, options = common.parse_variant(variant, positional=("model", "data"))
  unknown_keys = sorted(set(named) - set(VARIANT_KEYS))
  if unknown_keys:
    raise ValueError(f"unknown key(s) {unknown_keys} in {variant!r}; the keys are {VARIANT_KEYS}")
  if "model" not in named or "data" not in named:
    raise ValueError(
      f"configs/classifier.py needs 'MODEL,DATASET[,SIZE][,ABLATION]' or 'model=MODEL,data=DATASET,...', "
      f"got {variant!r}"
    )
  model_name, dataset = named["model"], named["data"]
  options += [named["size"]] if "size" in named else []
  options += [o for key in ("ablation", "change") for o in named.get(key, "").split("+") if o]
  size = next((o for o in options if o in SIZES), "")
  ablations = [o for o in options if o in ABLATIONS]
  changes = [o for o in options if o in CHANGES]
  unknown = [o for o in options if o not in SIZES + ABLATIONS + CHANGES]
  if model_name not in MODELS:
    raise ValueError(f"unknown model {model_name!r}; expected one of {MODELS}")
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
  if unknown:
    raise ValueError(f"unknown option(s) {unknown}; sizes {SIZES}, ablations {ABLATIONS}, changes {CHANGES}")
  if ablations and model_name != "hybrid":
    raise ValueError(f"ablations {ablations} apply to the hybrid model only")
  for change in changes:
    if model_name not in CHANGE_MODELS[change]:
      where = "the convlstm baseline" if CHANGE_MODELS[change] == ("convlstm",) else "a ConvLSTM: hybrid or convlstm"
      raise ValueError(f"{change!r} changes {where} only")
  if "revised" in changes:
    changes = [*changes, *REVISED[model_name]]

  config = common.get_base()
  config.model = _model(model_name)
  config.loss = _loss(model_name)
  if model_name == "hybrid":
    config.boxes = _boxes()  # object boxes for the RoIAlign branch
  config.alarm = ml_collections.ConfigDict(
    {
      "window": 90,  # N: frames averaged for the alarm state (authors' code)
      "threshold": 0.4,  # alarm when the moving average exceeds this
    }
  )
  config.decision_threshold = 0.5  # probability above which a clip/frame is called anomalous
  # Folder with <split>/scores.csv of the prediction network evaluated on this dataset's
  # training and evaluation splits: adds the prediction_score control ("" = none).
  config.prediction_scores = ""
  config.best_metric = ""
  config.eval_plots = True
  _dataset(config, model_name, dataset)
  if size:
    _size(config, model_name, dataset, size)
  for ablation in ablations:
    apply_ablation(config, ablation)
  if "balanced" in changes:
    config.loss.class_weights = "batch"
  if "differences" in changes:
    config.model.temporal_input = "differences"
  if "norm" in changes:
    config.model.temporal_norm = "batch"
  if "max" in changes:
    config.model.pooling = "max"
  if "augment" in changes:
    config.data.augment.flip = True
    config.data.augment.max_shift = AUGMENT_MAX_SHIFT
  if "short" in changes:
    # Clips of 8 frames: 3.75x as many labelled clips from the same videos, each label
    # nearer its frames (docs/hybrid.md, "ConvLSTM baseline").
    if config.data.clip_window == config.data.clip_frames:
      config.data.clip_window = SHORT_CLIP_FRAMES
    config.data.clip_frames = SHORT_CLIP_FRAMES
    config.batch_size = max(config.batch_size, 8)
  if "revised" in changes and size == "cpu":
    # Both revised models' losses stay near ln 2 for their first 400 steps at this size;
    # HybridModel-1 scored alike after 1,000 and 2,000 steps on a validation split
    # (docs/hybrid.md).
    config.num_train_steps = 1000
  return config


def _model(name: str) -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.name = name  # the network (hybrid, convlstm or effnet_hog)
  m.dtype = "float32"  # compute dtype (bfloat16 for mixed precision; params stay float32)
  m.pretrained = ""  # Keras .h5 ImageNet weights of the backbone ("" = random initialisation)
  if name == "hybrid":
    m.backbone = "efficientnetv2_b0"  # spatial backbone (efficientnetv2_b0 or tiny)
    m.spatial_size = 224  # backbone input size (0 = the frame size)
    m.temporal_size = 64  # ConvLSTM input size (0 = the frame size)
    m.feature_dim = 512  # width of the spatial and temporal features per frame
    m.branches = "both"  # both, spatial or temporal
    m.fusion = "affm"  # affm (gated) or concat
    m.affm_hidden = 256  # hidden width of the AFFM gate
    m.use_object_features = True  # RoIAlign object features from the box source
    m.spatial_attention = True  # attention map over the backbone features before pooling
    m.attention_kernel = 3  # kernel of the spatial attention conv
    m.freeze_backbone = False  # stop gradients into the backbone
    m.roi_output_size = (7, 7)  # RoIAlign output bins
    m.roi_sampling_ratio = 2  # RoIAlign samples per bin and axis
    m.temporal_filters = (4, 8, 16, 32)  # ConvLSTM layers of the temporal branch
    m.recurrent_dropout = 0.2  # ConvLSTM recurrent dropout
    m.temporal_dropout = 0.2  # dropout between ConvLSTM layers
    m.head_dropout = 0.3  # dropout before the per-frame logit
    # Not published (docs/hybrid.md, Diagnosis): "differences" gives the ConvLSTM each
    # frame's change since the previous frame too; "max" pools space by the maximum.
    m.temporal_input = "frames"
    m.pooling = "mean"
    # Not published: "batch" standardises the ConvLSTM's input channels (BatchNorm).
    m.temporal_norm = "none"
  elif name == "convlstm":
    m.filters = (4, 8, 16, 32)  # ConvLSTM2D filters per layer (published)
    m.recurrent_activation = "sigmoid"  # sigmoid (Keras 3) or hard_sigmoid_keras2
    m.recurrent_dropout = 0.2  # recurrent dropout (published)
    m.dropout = 0.2  # time-distributed dropout after the first three layers (published)
    m.temporal_input = "frames"  # frames (published) or differences (each frame and its change)
    m.temporal_norm = "none"  # none (published) or batch (BatchNorm of the input channels)
    m.pooling = "flatten"  # flatten (published) or max (each feature's maximum over time and space)
  else:
    m.backbone = "efficientnetv2_b0"  # deep feature backbone (efficientnetv2_b0 or tiny)
    m.image_size = 224  # backbone input size (0 = the frame size)
    m.hog_size = 128  # HOG input size (grayscale, square)
    m.orientations = 9  # HOG orientation bins
    m.pixels_per_cell = (8, 8)  # HOG cell size
    m.cells_per_block = (2, 2)  # HOG block size in cells
    m.block_norm = "L2-Hys"  # HOG block normalisation
    m.hog_dim = 256  # projection of the HOG vector
    m.hidden = 256  # dense layer after concatenation
    m.dropout = 0.5  # dropout before the output
    m.freeze_backbone = False  # stop gradients into the backbone
  return m


def _loss(name: str) -> ml_collections.ConfigDict:
  loss = ml_collections.ConfigDict()
  # tcr: Temporal Confidence Reweighting; bce: class-weighted BCE per frame;
  # softmax: 2-way cross-entropy per clip (the ConvLSTM baseline's Keras loss).
  loss.name = {"hybrid": "tcr", "convlstm": "softmax", "effnet_hog": "bce"}[name]
  # batch: n / (2 n_y) over the batch; none: unweighted (the ConvLSTM's published loss).
  loss.class_weights = "none" if name == "convlstm" else "batch"
  # Permute the labels among the clips of each training batch: a control that shows
  # what a model scores when its labels carry no information (tests, docs/hybrid.md).
  loss.shuffle_labels = False
  if name == "hybrid":
    loss.gamma = 1.0  # TCR confidence exponent
    loss.lam = 0.1  # TCR smoothness weight
    loss.window = 5  # TCR window of the mean prediction (odd)
  return loss


def _boxes() -> ml_collections.ConfigDict:
  boxes = ml_collections.ConfigDict()
  boxes.source = "motion"  # motion (no weights), file (precomputed) or onnx (user-supplied detector)
  boxes.max_boxes = 8  # boxes kept per frame
  boxes.path = ""  # the box file (source=file) or the ONNX model (source=onnx)
  boxes.normalized = False  # file boxes in [0, 1] of the frame instead of pixels of the loaded frames
  boxes.threshold = 0.08  # motion: foreground threshold on |frame - background| in [0, 1]
  boxes.min_area = 16  # motion: smallest component kept, in pixels
  boxes.opening = 1  # motion: binary opening iterations (removes blobs under 3 pixels across)
  boxes.dilation = 2  # motion: binary dilation iterations (joins fragments, adds a margin)
  return boxes


def _dataset(config, model_name: str, dataset: str) -> None:
  data, model = config.data, config.model
  data.channels = 3
  data.clip_short = "drop"  # clips shorter than clip_frames are dropped (authors' code)
  data.clip_sampling = "uniform"  # stride max(len // N, 1) over the clip
  data.clip_source = "window"
  data.clip_window = 0
  # Video subset of the training split: "" = all; "fold:i/k" (name hash), "part:i/k"
  # (every k-th in name order), "~..." = all but those (sources.select_videos).
  data.train_videos = ""
  data.eval_videos = ""  # video subset of the evaluation split
  # "i/k": evaluate on part i of k of the evaluation split's videos (name order) and
  # train on data.train_split plus the other parts ("" = no folds; sources.select_videos).
  data.fold = ""
  # With a fold: "all" trains on data.train_split plus the other parts; "labelled" (a
  # diagnostic, docs/hybrid.md) on the other parts alone, so that normal and anomalous
  # training frames come from the same kind of video.
  data.fold_training = "all"
  # Training clips mirrored (flip) and moved by up to max_shift of the frame (the
  # ``augment`` change; vad_jax/data/augment.py). Off as published.
  data.augment = ml_collections.ConfigDict({"flip": False, "max_shift": 0.0})
  if model_name == "convlstm":
    data.image_size = (64, 64)
    data.clip_frames = 30
    config.batch_size = 4
    config.optimizer.learning_rate = 1e-3
    config.num_epochs = 50
  else:
    data.image_size = (224, 224)
    data.clip_frames = 16
    config.batch_size = 8
    config.optimizer.learning_rate = 1e-4
    config.num_epochs = 20
  if dataset.startswith("dcsass"):
    data.name = "dcsass"
    # Video-level split by default; the authors' random clip-level split is labelled.
    data.builder_config = "as_published" if dataset.endswith("as_published") else "default"
    data.clip_window = 0  # every DCSASS clip is one "video" of the builder
  elif dataset == "ucf_crime":
    data.name = "ucf_crime"
    data.builder_config = "stride30_112"  # 1 frame per second, 112x112 (docs/datasets.md)
    data.clip_window = 32  # windows of 32 s; training frames carry the video label
    if model_name != "convlstm":
      data.image_size = (112, 112)
  elif dataset == "shanghaitech":
    # The official training split has no anomalies; supervised models train on half of
    # the test videos and are evaluated on the other half (folds by video name hash).
    data.name = "shanghaitech"
    data.train_split = "test"
    data.train_videos = "fold:0/2"
    data.eval_videos = "fold:1/2"
    data.clip_window = 64
  elif dataset == "ucsd_ped2":
    # Supervised folds over the 12 labelled test videos (cyclists, skaters, carts, people
    # on the lawn); the 16 training videos (normal only) are always trained on.
    data.name = "ucsd_ped"
    data.builder_config = "ped2"
    data.fold = "0/4"
    data.channels = 1 if model_name == "convlstm" else 3  # grayscale frames, replicated for the backbones
    data.clip_window = data.clip_frames  # consecutive windows (a video's last partial one is dropped)
  else:
    data.name = "synthetic_surveillance"
    data.builder_config = "supervised"
    data.channels = 1 if model_name == "convlstm" else 3
    # Windows as long as the clips: with windows of 30 and 16 frames sampled at stride
    # max(30 // 16, 1) = 1, frames 16-29 of every window were never seen (docs/hybrid.md).
    data.clip_window = 30 if model_name == "convlstm" else 16
    data.image_size = (64, 64)
  del model


def _size(config, model_name: str, dataset: str, size: str) -> None:
  model, data = config.model, config.data
  if size == "cpu":
    # Minutes on a 2-core laptop: tiny backbone, 32x32 frames, windows of 8 consecutive
    # frames (measured in docs/RESULTS.md). The ConvLSTM baseline keeps its published
    # architecture and input (30 frames of 64x64).
    if model_name in ("hybrid", "effnet_hog"):
      model.backbone = "tiny"
      data.image_size = (32, 32)
      data.clip_frames = 8
      if dataset in ("synthetic", "ucsd_ped2"):
        data.clip_window = 8
      if dataset == "ucsd_ped2":
        data.image_size = (64, 96)  # 240x360 frames: a pedestrian is about 4x9 pixels
    if model_name == "hybrid":
      # At 32x32 a walker is about 2 pixels wide: an opening would erase every object
      # (docs/hybrid.md, Diagnosis), so none and a smaller margin.
      config.boxes.min_area = 4
      config.boxes.opening = 0
      config.boxes.dilation = 1
      model.spatial_size = 0
      model.temporal_size = 0
      model.feature_dim = 32
      model.affm_hidden = 16
      model.temporal_filters = (4, 8)
    if model_name == "effnet_hog":
      model.image_size = 0
      model.hog_size = 32
      model.hog_dim = 32
      model.hidden = 32
    config.optimizer.learning_rate = 1e-3
    config.num_epochs = 0
    config.num_train_steps = 400
    if model_name == "convlstm":
      data.image_size = (64, 64)
      data.clip_sampling = "contiguous"
      config.num_train_steps = 200
    config.log_every_steps = 50
    config.checkpoint_every_steps = 200
  else:  # test
    if model_name in ("hybrid", "effnet_hog"):
      model.backbone = "tiny"
    if model_name == "hybrid":
      model.spatial_size = 0
      model.temporal_size = 0
      model.feature_dim = 16
      model.affm_hidden = 8
      model.temporal_filters = (4,)
      config.boxes.min_area = 4
      config.boxes.opening = 0
      config.boxes.dilation = 1
    if model_name == "effnet_hog":
      model.image_size = 0
      model.hog_size = 32
      model.hog_dim = 8
      model.hidden = 8
    if model_name == "convlstm":
      model.filters = (2, 4)
    data.image_size = (32, 32)
    data.clip_frames = 8
    data.clip_window = 8 if dataset in ("synthetic", "ucsd_ped2") else data.clip_window
    config.batch_size = 8
    config.num_epochs = 0
    config.num_train_steps = 4
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.eval_plots = False


def apply_ablation(config, ablation: str) -> None:
  """Switches ``config`` (a HybridModel-1 config) to one of ``ABLATIONS`` in place."""
  if ablation not in ABLATIONS:
    raise ValueError(f"unknown ablation {ablation!r}; expected one of {ABLATIONS}")
  model = config.model
  if ablation == "no_affm":
    model.fusion = "concat"
  elif ablation == "bce":
    config.loss.name = "bce"
  elif ablation == "spatial_only":
    model.branches = "spatial"
  elif ablation == "temporal_only":
    model.branches = "temporal"
  elif ablation == "no_objects":
    model.use_object_features = False


def dcsass_config(model_name: str, variant: str = ""):
  """``MODEL`` on DCSASS; ``variant`` may hold ``as_published`` plus a size/ablation."""
  options = [o for o in variant.split(",") if o]
  dataset = "dcsass_as_published" if "as_published" in options else "dcsass"
  return get_config(",".join([model_name, dataset, *[o for o in options if o != "as_published"]]))
