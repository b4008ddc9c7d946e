"""EfficientNetV2-B0: Keras-equal size and layer names, forward pass, Keras h5 round trip."""

import pathlib
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from vad_jax.hybrid.efficientnet import EfficientNetV2B0, round_filters
from vad_jax.hybrid.keras_weights import load_keras_h5, read_keras_h5, save_keras_h5

IMAGE = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _shapes(model, image=IMAGE):
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), image)


def _random_variables(shapes, seed):
  """Concrete random variables with the structure of ``shapes`` (cheap, no init compile)."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = path[-1].key
    if name == "var":
      return rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
    if name in ("scale", "mean", "bias"):
      return (rng.standard_normal(s.shape) * 0.1 + (name == "scale")).astype(np.float32)
    fan_in = int(np.prod(s.shape[:-1]))
    return (rng.standard_normal(s.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def test_parameter_count_equals_keras_efficientnetv2b0():
  shapes = _shapes(EfficientNetV2B0())
  # Keras EfficientNetV2B0(include_top=False).summary(): 5,919,312 total,
  # 5,858,704 trainable, 60,608 non-trainable (BatchNorm moving mean/variance).
  assert _count(shapes["params"]) == 5_858_704
  assert _count(shapes["batch_stats"]) == 60_608
  assert _count(shapes) == 5_919_312
  with_top = _shapes(EfficientNetV2B0(include_top=True))
  assert _count(with_top) == 7_200_312  # Keras with the 1000-way classifier


def test_output_shapes_and_keras_layer_names():
  model = EfficientNetV2B0()
  shapes = _shapes(model)
  out, aux = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), shapes, IMAGE)
  assert out.shape == (1, 7, 7, 1280) and aux["pooled"].shape == (1, 1280)
  top = EfficientNetV2B0(include_top=True, classes=10)
  logits, _ = jax.eval_shape(lambda v, x: top.apply(v, x, train=False), _shapes(top), IMAGE)
  assert logits.shape == (1, 10)

  params = flatten_dict(shapes["params"])
  layers = {"_".join(k[:-1]) for k in params}
  blocks = {k[0] for k in params if k[0].startswith("block")}
  expected_blocks = {f"block{s}{chr(97 + j)}" for s, n in enumerate([1, 2, 2, 3, 5, 8], 1) for j in range(n)}
  assert blocks == expected_blocks
  for name in [
    "stem_conv",
    "stem_bn",
    "block1a_project_conv",
    "block1a_project_bn",
    "block2a_expand_conv",
    "block4a_dwconv2",
    "block4a_se_reduce",
    "block4a_se_expand",
    "block6h_project_bn",
    "top_conv",
    "top_bn",
  ]:
    assert name in layers, name
  assert "block1a_expand_conv" not in layers  # expand_ratio 1: single fused conv
  assert "block3a_se_reduce" not in layers  # fused stages have no SE in B0
  assert params[("block4a", "dwconv2", "kernel")].shape == (3, 3, 1, 192)
  # Keras SE width is based on the block input: int(48 * 0.25) = 12.
  assert params[("block4a", "se_reduce", "kernel")].shape == (1, 1, 192, 12)
  assert params[("block1a", "project_conv", "kernel")].shape == (3, 3, 32, 16)
  assert round_filters(1280, 1.1) == 1408


def test_forward_pass_on_tiny_input():
  model = EfficientNetV2B0()
  images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3)) * 255.0
  variables = _random_variables(_shapes(model, images), seed=0)
  feats, aux = jax.jit(model.apply, static_argnames="train")(variables, images, train=False)
  assert feats.shape == (2, 1, 1, 1280)
  assert np.isfinite(np.asarray(feats)).all()
  assert np.asarray(aux["pooled"]).std() > 0
  with pytest.raises(ValueError, match="rank 4"):
    model.apply(variables, images[0], train=False)


def test_keras_h5_round_trip_is_exact(tmp_path):
  model = EfficientNetV2B0()
  shapes = _shapes(model)
  source = _random_variables(shapes, seed=1)
  path = tmp_path / "efficientnetv2-b0_notop.h5"
  save_keras_h5(path, source)

  # The file has the Keras layout: depthwise kernels [k, k, c, 1], BN weights in Keras order.
  with h5py.File(path, "r") as f:
    assert "stem_conv" in [n.decode() for n in f.attrs["layer_names"]]
    assert f["block4a_dwconv2/block4a_dwconv2/depthwise_kernel:0"].shape == (3, 3, 192, 1)
    assert [n.decode() for n in f["stem_bn"].attrs["weight_names"]] == [
      "stem_bn/gamma:0",
      "stem_bn/beta:0",
      "stem_bn/moving_mean:0",
      "stem_bn/moving_variance:0",
    ]

  target = _random_variables(shapes, seed=2)
  loaded, report = load_keras_h5(path, target)
  assert report["missing"] == [] and report["unused"] == []
  assert len(report["loaded"]) == len(jax.tree.leaves(source))
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(source)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert jax.tree.structure(loaded) == jax.tree.structure(source)


def test_keras_h5_nested_group_subtree_and_errors(tmp_path):
  # A small EfficientNetV2 (stem + one fused + one MBConv stage) keeps this test light.
  from vad_jax.hybrid.efficientnet import EfficientNetV2, StageArgs

  stages = (StageArgs(3, 1, 8, 8, 1, 0.0, 1, 1), StageArgs(3, 2, 8, 16, 2, 0.25, 2, 0))
  small = EfficientNetV2(stages=stages, top_filters=32, include_top=True, classes=3)
  image = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  source = _random_variables(_shapes(small, image), seed=3)
  path = tmp_path / "nested.h5"
  # Layout of a Keras model nested in another one (e.g. Sequential([backbone, head])).
  save_keras_h5(path, source, group="efficientnetv2-b0")
  assert set(read_keras_h5(path)) >= {"stem_conv", "block2b_se_expand", "predictions"}

  # Load into the same network living under a parent module, without its classifier.
  notop = EfficientNetV2(stages=stages, top_filters=32)
  inner = _random_variables(_shapes(notop, image), seed=4)
  wrapped = {k: {"backbone": v} for k, v in inner.items()}
  loaded, report = load_keras_h5(path, wrapped, subtree=("backbone",))
  assert report["unused"] == ["predictions"]
  flat_src = flatten_dict(source["params"])
  for k, v in flatten_dict(loaded["params"]["backbone"]).items():
    np.testing.assert_array_equal(np.asarray(v), np.asarray(flat_src[k]))
  np.testing.assert_array_equal(
    np.asarray(loaded["batch_stats"]["backbone"]["top_bn"]["var"]),
    np.asarray(source["batch_stats"]["top_bn"]["var"]),
  )

  # A model layer the file lacks is an error (strict) or reported (non-strict).
  bigger = EfficientNetV2(stages=stages, top_filters=48)
  other = _random_variables(_shapes(bigger, image), seed=5)
  with pytest.raises(ValueError, match="shape mismatch"):
    load_keras_h5(path, other)
  extra = {k: dict(v) for k, v in inner.items()}
  extra["params"]["extra_dense"] = {"kernel": np.zeros((2, 2), np.float32)}
  with pytest.raises(KeyError, match="extra_dense/kernel"):
    load_keras_h5(path, extra)
  _, report = load_keras_h5(path, extra, strict=False)
  assert report["missing"] == ["extra_dense/kernel"]


KERAS3 = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "keras3"


def test_keras3_legacy_h5_loads_and_gives_keras_outputs():
  """A file written by Keras 3 (JAX backend) with ``model.save("x.h5")``: depthwise
  kernels are named ``kernel`` and names have no ``:0`` (tests/data/keras3/make_fixture.py)."""
  from vad_jax.hybrid.efficientnet import EfficientNetV2, StageArgs

  path = KERAS3 / "efficientnetv2_small_legacy.h5"
  with h5py.File(path, "r") as f:
    assert f.attrs["keras_version"].startswith("3.")
    names = [
      n.decode() if isinstance(n, bytes) else n for n in f["model_weights/block2a_dwconv2"].attrs["weight_names"]
    ]
    assert names == ["block2a_dwconv2/kernel"]
    assert f["model_weights/block2a_dwconv2/block2a_dwconv2/kernel"].shape == (3, 3, 16, 1)
  stages = (StageArgs(3, 1, 8, 8, 1, 0.0, 1, 1), StageArgs(3, 2, 8, 16, 2, 0.25, 2, 0))
  model = EfficientNetV2(stages=stages, top_filters=1280)
  io = np.load(KERAS3 / "efficientnetv2_small_legacy_io.npz")
  variables = _random_variables(_shapes(model, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)), seed=6)
  loaded, report = load_keras_h5(path, variables)
  assert report["missing"] == [] and report["unused"] == []
  assert "block2a_dwconv2/depthwise_kernel" in report["loaded"]
  _, aux = jax.jit(lambda v, x: model.apply(v, x, train=False))(loaded, io["x"])
  np.testing.assert_allclose(np.asarray(aux["pooled"]), io["y"], rtol=1e-5, atol=1e-5)


def test_keras3_weights_h5_is_rejected_with_a_way_out(tmp_path):
  path = tmp_path / "model.weights.h5"
  with h5py.File(path, "w") as f:  # the Keras 3 native layout: unnamed variables
    f.create_dataset("layers/stem_conv/vars/0", data=np.zeros((3, 3, 3, 32), np.float32))
  with pytest.raises(ValueError) as error:
    read_keras_h5(path)
  message = str(error.value)
  assert "Keras 3 '.weights.h5'" in message and "model.save('x.h5')" in message
  assert "save_weights_to_hdf5_group" not in message


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py -> ImportError
  with pytest.raises(ImportError, match=r"vad_jax\[weights\]"):
    read_keras_h5(tmp_path / "x.h5")
  with pytest.raises(ImportError, match=r"pip install 'vad_jax\[weights\]'"):
    save_keras_h5(tmp_path / "x.h5", {"params": {}})
