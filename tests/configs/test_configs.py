"""Every config file builds, and its model traces (shapes only) at its own resolution."""

import functools
import importlib

import jax
import pytest

from vad_jax import tasks

CONFIGS = [
  ("default", ""),
  ("default", "mnad"),
  ("default", "cpu"),
  ("default", "test"),
  ("synthetic", ""),
  ("synthetic", "test"),
  ("synthetic", "paper"),
  ("ucsd_ped2", ""),
  ("ucsd_ped2", "mnad"),
  ("ucsd_ped2", "cpu"),
  ("ucsd_ped2", "cpu128"),
  ("ucsd_ped1", "cpu"),
  ("avenue", ""),
  ("avenue", "cpu"),
  ("shanghaitech", ""),
  ("shanghaitech", "cpu"),
  ("own_videos", ""),
  ("own_videos", "cpu"),
  ("own_videos", "test"),
]


@pytest.mark.parametrize("name, variant", CONFIGS)
def test_config_builds_and_traces(name, variant):
  config = importlib.import_module(f"vad_jax.configs.{name}").get_config(variant)
  model = tasks.for_config(config).build_model(config)
  h, w = config.data.image_size
  frames = jax.ShapeDtypeStruct((1, config.model.sequence_length, h, w, config.data.channels), "float32")
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), frames)
  fused, _ = jax.eval_shape(functools.partial(model.apply, train=False), variables, frames)
  assert fused.shape == (1, h, w, config.data.channels)
  assert config.batch_size % 8 == 0 or config.batch_size < 8


@pytest.mark.parametrize("name", ["default", "synthetic", "ucsd_ped2", "avenue", "shanghaitech", "own_videos"])
def test_unknown_variant_is_an_error(name):
  with pytest.raises(ValueError, match="unknown variant"):
    importlib.import_module(f"vad_jax.configs.{name}").get_config("nope")


def test_paper_hyperparameters():
  from vad_jax.configs import avenue, default, shanghaitech

  config = default.get_config()
  assert config.model.num_items == 20 and config.model.sequence_length == 5
  assert tuple(config.data.image_size) == (256, 256) and config.batch_size == 8
  assert (config.optimizer.learning_rate, config.optimizer.b1, config.optimizer.b2) == (2e-5, 0.9, 0.999)
  assert (config.loss.alpha, config.loss.beta, config.loss.gamma_i, config.loss.gamma_x) == (0.1, 0.1, 0.5, 0.5)
  assert (config.loss.margin_a, config.loss.margin_b, config.score.lam) == (2.0, 1.0, 0.8)
  assert avenue.get_config().num_epochs == 50 and shanghaitech.get_config().num_epochs == 10


# ---- --config by name or by file ------------------------------------------------------


def test_shipped_configs_resolve_by_name_from_any_directory(tmp_path, monkeypatch):
  from vad_jax import config_flags
  from vad_jax.configs import ucsd_ped2

  monkeypatch.chdir(tmp_path)
  assert {"default", "synthetic", "ucsd_ped2", "classifier", "hybrid_synthetic"} <= set(config_flags.shipped_configs())
  assert config_flags.load("ucsd_ped2:cpu").to_dict() == ucsd_ped2.get_config("cpu").to_dict()
  # The README's repository-style paths work outside the repository too.
  assert config_flags.load("configs/ucsd_ped2.py:cpu").to_dict() == ucsd_ped2.get_config("cpu").to_dict()
  own = tmp_path / "camera.py"
  own.write_text(
    "from vad_jax.configs import synthetic\n\n\ndef get_config(variant=''):\n"
    "  config = synthetic.get_config(variant)\n  config.batch_size = 24\n  return config\n"
  )
  assert config_flags.load("camera.py:test").batch_size == 24
  with pytest.raises(ValueError, match=r"no shipped config of that name; shipped configs: .*ucsd_ped2"):
    config_flags.load("ucsd_ped3")


def test_train_cli_names_the_shipped_configs_for_an_unknown_one(tmp_path):
  import subprocess
  import sys

  result = subprocess.run(
    [sys.executable, "-m", "vad_jax.train", "--config", "nope:cpu", "--workdir", str(tmp_path / "w")],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert "no shipped config of that name" in result.stderr and "ucsd_ped2" in result.stderr
  assert not (tmp_path / "w").exists()


def test_own_videos_configs_prepare_frames_at_the_network_input_size():
  from vad_jax.configs import own_videos
  from vad_jax.tfds_builders.own_videos import own_videos_dataset_builder

  for variant in ("", "cpu", "test"):
    config = own_videos.get_config(variant)
    prepared = own_videos_dataset_builder.Builder.builder_configs[config.data.builder_config]
    assert prepared.frame_size in (None, tuple(config.data.image_size)), variant


def test_the_configs_extend_the_common_base():
  """Both families hold every field of ``common.get_base`` and delete none."""
  from vad_jax.configs import classifier, common, default

  def leaves(c, p=""):
    return {p + k for k, v in c.items()} | {
      x for k, v in c.items() if hasattr(v, "items") for x in leaves(v, f"{p}{k}.")
    }

  base = leaves(common.get_base())
  for config in (default.get_config(), classifier.get_config("hybrid,synthetic,cpu")):
    assert base <= leaves(config)
  assert (
    "score" not in classifier.get_config("convlstm,dcsass")
    and "frame_stride" not in classifier.get_config("convlstm,dcsass").data
  )


def test_classifier_variants_by_name_equal_the_positional_form():
  from vad_jax.configs import classifier

  named = classifier.get_config("model=hybrid,data=synthetic,size=cpu,ablation=bce+no_affm,change=augment")
  assert named.to_json() == classifier.get_config("hybrid,synthetic,cpu,bce,no_affm,augment").to_json()
  assert (
    classifier.get_config("data=dcsass,model=convlstm").to_json() == classifier.get_config("convlstm,dcsass").to_json()
  )
  with pytest.raises(ValueError, match="'model' is given twice"):
    classifier.get_config("model=hybrid,model=convlstm,data=dcsass")
  with pytest.raises(ValueError, match=r"unknown key\(s\) \['sise'\]"):
    classifier.get_config("hybrid,dcsass,sise=cpu")
  with pytest.raises(ValueError, match="needs 'MODEL,DATASET"):
    classifier.get_config("size=cpu")
