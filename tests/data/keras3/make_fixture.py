"""Writes ``efficientnetv2_small_legacy.h5`` and ``..._io.npz`` with Keras 3 (JAX backend).

Keras 3 installs without TensorFlow; this is how the fixture was made (Keras 3.15.1):

  pip install --target /tmp/kerasdeps keras
  KERAS_BACKEND=jax PYTHONPATH=... python tests/data/keras3/make_fixture.py

A two-stage EfficientNetV2 (the ``stages`` of tests/test_efficientnet.py's small model,
Keras' fixed 1280-filter top), BatchNorm statistics set to non-trivial values, saved with
``model.save("x.h5")`` (Keras 3's legacy HDF5 path: depthwise kernels named ``kernel``,
weight names without ``:0``). Only ``model_weights`` and the ``backend`` /
``keras_version`` attributes are kept (the architecture JSON is dropped to keep the file
small). The ``.npz`` holds an input batch in [0, 255] and Keras' pooled output for it.
"""

import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.append("/tmp/kerasdeps")  # keras after the project's own numpy / h5py

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.applications import efficientnet_v2  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BLOCKS = [
  dict(
    kernel_size=3, num_repeat=1, input_filters=8, output_filters=8, expand_ratio=1, se_ratio=0.0, strides=1, conv_type=1
  ),
  dict(
    kernel_size=3,
    num_repeat=2,
    input_filters=8,
    output_filters=16,
    expand_ratio=2,
    se_ratio=0.25,
    strides=2,
    conv_type=0,
  ),
]


def main():
  keras.utils.set_random_seed(0)
  model = efficientnet_v2.EfficientNetV2(
    width_coefficient=1.0,
    depth_coefficient=1.0,
    default_size=32,
    name="efficientnetv2-b0",
    blocks_args=BLOCKS,
    include_top=False,
    weights=None,
    input_shape=(32, 32, 3),
    include_preprocessing=True,
    pooling="avg",
  )
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      rng = np.random.default_rng(len(layer.name))
      layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
      layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))
  x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
  y = np.asarray(model(x, training=False), np.float32)
  full = HERE / "_full.h5"
  model.save(full)
  with h5py.File(full, "r") as src, h5py.File(HERE / "efficientnetv2_small_legacy.h5", "w") as dst:
    for key in ("backend", "keras_version"):
      dst.attrs[key] = src.attrs[key]
    src.copy("model_weights", dst)
  full.unlink()
  np.savez_compressed(HERE / "efficientnetv2_small_legacy_io.npz", x=x, y=y)


if __name__ == "__main__":
  main()
