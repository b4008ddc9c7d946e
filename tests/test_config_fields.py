"""Every field of a shipped config is read by the code of its task.

Each model family's ``:test`` config is trained (2 steps, with best-checkpoint tracking),
evaluated and used by ``detect`` while ``config_reads`` records which fields the
package reads. Every field of the family's shipped configs must be among them, or be
listed in ``CONDITIONAL`` with the setting under which it is read; those are then read
by exercising that setting.
"""

import numpy as np
import pytest
from config_reads import leaves, recording

from vad_jax import config_flags, loop, sharding
from vad_jax import state as state_lib
from vad_jax.data import prepare
from vad_jax.detector import Detector
from vad_jax.hybrid import boxes as hybrid_boxes
from vad_jax.hybrid import task as hybrid_task
from vad_jax.tfds_builders.synthetic_surveillance import scene

# Fields read only under another setting than the :test configs use.
CONDITIONAL = {
  "num_epochs": "num_train_steps is 0 (training length in epochs)",
  "data.manual_dir": "the dataset is not prepared yet",
  "boxes.path": "boxes.source is 'file' or 'onnx'",
  "boxes.normalized": "boxes.source is 'file'",
  "prediction_scores": "the controls run (python -m vad_jax.ablations)",
}

FAMILIES = {
  "synthetic:test": (
    "default",
    "default:mnad",
    "default:cpu",
    "synthetic",
    "ucsd_ped2",
    "ucsd_ped2:cpu",
    "ucsd_ped1:cpu",
    "avenue",
    "shanghaitech",
    "own_videos",
    "own_videos:cpu",
  ),
  "classifier:hybrid,synthetic,test": (
    "hybrid_synthetic",
    "hybrid_dcsass",
    "hybrid_ucf_crime",
    "hybrid_shanghaitech",
    "classifier:hybrid,synthetic,cpu",
  ),
  "classifier:convlstm,synthetic,test": ("convlstm_dcsass", "classifier:convlstm,synthetic,cpu"),
  "classifier:effnet_hog,synthetic,test": ("effnet_hog_dcsass", "classifier:effnet_hog,synthetic,cpu"),
}


@pytest.mark.parametrize("test_config", sorted(FAMILIES))
def test_every_shipped_field_is_read(test_config, tmp_path):
  config = config_flags.load(test_config)
  config.data.data_dir = str(tmp_path / "tfds")
  config.num_train_steps = 2
  config.best_metric = "fused_micro_auc" if config.model.name == "dual_stream" else "clip_auc"
  frames = [np.repeat(f, 3, -1) for f in scene.generate_video(3, num_frames=20, anomalies=("fast_mover",)).frames]
  with recording(config) as reads:
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    config_, state = state_lib.restore(tmp_path / "run" / "checkpoints", None, sharding.make_mesh())
    del config_
    Detector(config, state).score(iter(frames), batch_size=2, normalisation="video", name="video")
  unread = {f for f in leaves(config) if f not in reads}
  assert unread <= set(CONDITIONAL), f"fields no code read: {sorted(unread - set(CONDITIONAL))}"
  for shipped in FAMILIES[test_config]:
    extra = set(leaves(config_flags.load(shipped))) - set(leaves(config)) - set(CONDITIONAL)
    assert not extra, f"{shipped} has fields its :test config lacks: {sorted(extra)}"


def test_conditional_fields_are_read_under_their_setting(tmp_path):
  config = config_flags.load("synthetic:test")
  config.num_train_steps = 0
  config.data.data_dir = str(tmp_path / "tfds")
  with recording(config) as reads:
    loop.total_train_steps(config, 10)
    prepare.ensure_prepared(config.data)
  assert {"num_epochs", "data.manual_dir"} <= reads
  config = config_flags.load("classifier:hybrid,synthetic,test")
  config.boxes.source = "file"
  config.boxes.path = str(tmp_path / "boxes.json")
  with recording(config) as reads, pytest.raises(Exception, match="boxes.json"):
    hybrid_boxes.make_box_source(config)
  assert {"boxes.path", "boxes.normalized"} <= reads
  with recording(config) as reads:
    hybrid_task.controls(config)
  assert "prediction_scores" in reads
