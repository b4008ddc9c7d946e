"""EfficientNetV2 (Tan & Le, ICML 2021) in Flax, laid out like ``keras.applications``.

The architecture, hyper-parameters and layer names follow the Keras implementation
(``keras.applications.EfficientNetV2B0``), so that Keras ImageNet weights load 1:1 (see
``vad_jax.hybrid.keras_weights``):

* optional preprocessing (``include_preprocessing``): inputs in ``[0, 255]``; for the B
  variants with 3 channels ``x / 255`` then ImageNet mean/std normalisation (constants,
  no weights), otherwise ``x / 128 - 1``;
* stem: 3x3 stride-2 conv (``stem_conv``, no bias), ``stem_bn``, swish;
* stages of Fused-MBConv (``conv_type`` 1) and MBConv (``conv_type`` 0) blocks named
  ``block{stage}{a, b, ...}``; inside a block the Keras layer names without the
  ``block1a_`` prefix (``expand_conv``, ``expand_bn``, ``dwconv2``, ``bn``, ``se_reduce``,
  ``se_expand``, ``project_conv``, ``project_bn``). The Keras layer name of a parameter
  is therefore ``"_".join(flax_path[:-1])`` (e.g. ``("block4a", "se_reduce", "kernel")``
  is layer ``block4a_se_reduce``);
* head: 1x1 conv to 1280 (``top_conv``), ``top_bn``, swish; with ``include_top`` global
  average pool, dropout 0.2 (``top_dropout``) and a dense classifier (``predictions``).

BatchNorm: Keras defaults ``epsilon = 1e-3``, momentum 0.9 (Flax's ``momentum`` has the
same meaning). Convolutions use ``SAME`` padding, which in both XLA and TF pads the
extra row/column of a stride-2 convolution at the bottom/right. Stochastic depth is the
Keras per-sample dropout with rate ``0.2 * block_index / num_blocks`` on residual
branches.

EfficientNetV2-B0 without top: 5,858,704 trainable parameters + 60,608 BatchNorm
statistics = 5,919,312, the Keras figure (docs/hybrid.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Array = Any


@dataclasses.dataclass(frozen=True)
class StageArgs:
  """One stage of blocks (the Keras ``blocks_args`` entries)."""

  kernel_size: int
  num_repeat: int
  input_filters: int
  output_filters: int
  expand_ratio: int
  se_ratio: float
  strides: int
  conv_type: int  # 0: MBConv, 1: Fused-MBConv


# EfficientNetV2-B0 (Keras ``DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]``).
B0_STAGES: tuple[StageArgs, ...] = (
  StageArgs(3, 1, 32, 16, 1, 0.0, 1, 1),
  StageArgs(3, 2, 16, 32, 4, 0.0, 2, 1),
  StageArgs(3, 2, 32, 48, 4, 0.0, 2, 1),
  StageArgs(3, 3, 48, 96, 4, 0.25, 2, 0),
  StageArgs(3, 5, 96, 112, 6, 0.25, 1, 0),
  StageArgs(3, 8, 112, 192, 6, 0.25, 2, 0),
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keras's VarianceScaling(2.0, fan_out, truncated_normal) for convolutions and
# VarianceScaling(1/3, fan_out, uniform) for the classifier.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_out", "uniform")
# Keras stores a depthwise kernel as [k, k, c, 1] (fan_out = k * k); Flax as [k, k, 1, c].
depthwise_init = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal", in_axis=-1, out_axis=-2)


def round_filters(filters: int, width_coefficient: float, divisor: int = 8, min_depth: int = 8) -> int:
  """Channel count scaled by the width coefficient and rounded to a multiple of ``divisor``."""
  filters = filters * width_coefficient
  return int(max(min_depth, int(filters + divisor / 2) // divisor * divisor))


def round_repeats(repeats: int, depth_coefficient: float) -> int:
  return int(math.ceil(depth_coefficient * repeats))


class MBConvBlock(nn.Module):
  """MBConv: 1x1 expand, depthwise kxk, SE, 1x1 project (+ residual). ``[b, h, w, c]``."""

  input_filters: int
  output_filters: int
  expand_ratio: int
  kernel_size: int
  strides: int
  se_ratio: float
  drop_rate: float
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Array, *, train: bool) -> Array:
    bn = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=self.bn_momentum,
      epsilon=self.bn_epsilon,
      dtype=self.dtype,
    )
    conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=conv_init, dtype=self.dtype)
    filters = self.input_filters * self.expand_ratio
    x = inputs
    if self.expand_ratio != 1:
      x = conv(filters, (1, 1), name="expand_conv")(x)
      x = nn.swish(bn(name="expand_bn")(x))
    k = self.kernel_size
    x = conv(
      filters, (k, k), strides=self.strides, feature_group_count=filters, kernel_init=depthwise_init, name="dwconv2"
    )(x)
    x = nn.swish(bn(name="bn")(x))
    if 0 < self.se_ratio <= 1:
      x = _squeeze_excite(self, x, filters, max(1, int(self.input_filters * self.se_ratio)))
    x = conv(self.output_filters, (1, 1), name="project_conv")(x)
    x = bn(name="project_bn")(x)
    if self.strides == 1 and self.input_filters == self.output_filters:
      if self.drop_rate > 0:
        x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train, name="drop")(x)
      x = x + inputs
    return x


class FusedMBConvBlock(nn.Module):
  """Fused-MBConv: kxk expand conv (or a single kxk conv if ``expand_ratio == 1``),
  optional SE, 1x1 project (+ residual). ``[b, h, w, c]``."""

  input_filters: int
  output_filters: int
  expand_ratio: int
  kernel_size: int
  strides: int
  se_ratio: float
  drop_rate: float
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Array, *, train: bool) -> Array:
    bn = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=self.bn_momentum,
      epsilon=self.bn_epsilon,
      dtype=self.dtype,
    )
    conv = functools.partial(nn.Conv, use_bias=False, padding="SAME", kernel_init=conv_init, dtype=self.dtype)
    filters = self.input_filters * self.expand_ratio
    k = self.kernel_size
    x = inputs
    if self.expand_ratio != 1:
      x = conv(filters, (k, k), strides=self.strides, name="expand_conv")(x)
      x = nn.swish(bn(name="expand_bn")(x))
    if 0 < self.se_ratio <= 1:
      x = _squeeze_excite(self, x, filters, max(1, int(self.input_filters * self.se_ratio)))
    if self.expand_ratio != 1:
      x = conv(self.output_filters, (1, 1), name="project_conv")(x)
    else:
      x = conv(self.output_filters, (k, k), strides=self.strides, name="project_conv")(x)
    x = bn(name="project_bn")(x)
    if self.expand_ratio == 1:
      x = nn.swish(x)
    if self.strides == 1 and self.input_filters == self.output_filters:
      if self.drop_rate > 0:
        x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train, name="drop")(x)
      x = x + inputs
    return x


def _squeeze_excite(block: nn.Module, x: Array, filters: int, reduced: int) -> Array:
  """Keras SE inside ``block``'s compact scope: pool, ``se_reduce`` (swish), ``se_expand`` (sigmoid)."""
  s = jnp.mean(x, axis=(1, 2), keepdims=True)
  s = nn.Conv(reduced, (1, 1), kernel_init=conv_init, dtype=block.dtype, name="se_reduce")(s)
  s = nn.swish(s)
  s = nn.Conv(filters, (1, 1), kernel_init=conv_init, dtype=block.dtype, name="se_expand")(s)
  return x * nn.sigmoid(s)


class EfficientNetV2(nn.Module):
  """EfficientNetV2 backbone/classifier with Keras layer names.

  Input ``[batch, h, w, 3]`` in ``[0, 255]`` when ``include_preprocessing`` (Keras
  default), else already normalised. Returns ``(output, aux)``: ``output`` is the
  ``predictions`` logits ``[batch, classes]`` with ``include_top``, else the last feature
  map ``[batch, h / 32, w / 32, 1280]``; ``aux = {"features": feature map, "pooled":
  [batch, 1280] global average}``.
  """

  stages: Sequence[StageArgs] = B0_STAGES
  width_coefficient: float = 1.0
  depth_coefficient: float = 1.0
  variant: str = "b0"  # B variants use ImageNet mean/std preprocessing
  include_top: bool = False
  include_preprocessing: bool = True
  classes: int = 1000
  dropout_rate: float = 0.2
  drop_connect_rate: float = 0.2
  top_filters: int = 1280
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: Array, *, train: bool) -> tuple[Array, dict[str, Array]]:
    if images.ndim != 4:
      raise ValueError(f"expected images of rank 4 [batch, h, w, c], got shape {images.shape}")
    x = images.astype(self.dtype)
    if self.include_preprocessing:
      if self.variant.startswith("b") and x.shape[-1] == 3:
        x = x / 255.0
        x = (x - jnp.asarray(IMAGENET_MEAN, self.dtype)) / jnp.asarray(IMAGENET_STD, self.dtype)
      else:
        x = x / 128.0 - 1.0
    bn = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=self.bn_momentum,
      epsilon=self.bn_epsilon,
      dtype=self.dtype,
    )
    wc = self.width_coefficient
    stem = round_filters(self.stages[0].input_filters, wc)
    x = nn.Conv(
      stem, (3, 3), strides=2, padding="SAME", use_bias=False, kernel_init=conv_init, dtype=self.dtype, name="stem_conv"
    )(x)
    x = nn.swish(bn(name="stem_bn")(x))

    repeats = [round_repeats(s.num_repeat, self.depth_coefficient) for s in self.stages]
    total = float(sum(s.num_repeat for s in self.stages))
    b = 0
    for i, stage in enumerate(self.stages):
      block_cls = FusedMBConvBlock if stage.conv_type == 1 else MBConvBlock
      in_f = round_filters(stage.input_filters, wc)
      out_f = round_filters(stage.output_filters, wc)
      for j in range(repeats[i]):
        x = block_cls(
          input_filters=in_f if j == 0 else out_f,
          output_filters=out_f,
          expand_ratio=stage.expand_ratio,
          kernel_size=stage.kernel_size,
          strides=stage.strides if j == 0 else 1,
          se_ratio=stage.se_ratio,
          drop_rate=self.drop_connect_rate * b / total,
          bn_momentum=self.bn_momentum,
          bn_epsilon=self.bn_epsilon,
          dtype=self.dtype,
          name=f"block{i + 1}{chr(j + 97)}",
        )(x, train=train)
        b += 1

    x = nn.Conv(
      round_filters(self.top_filters, wc),
      (1, 1),
      use_bias=False,
      kernel_init=conv_init,
      dtype=self.dtype,
      name="top_conv",
    )(x)
    features = nn.swish(bn(name="top_bn")(x))
    pooled = jnp.mean(features, axis=(1, 2))
    aux = {"features": features, "pooled": pooled}
    if not self.include_top:
      return features, aux
    y = nn.Dropout(self.dropout_rate, deterministic=not train, name="top_dropout")(pooled)
    logits = nn.Dense(self.classes, kernel_init=dense_init, dtype=self.dtype, name="predictions")(y)
    return logits, aux


EfficientNetV2B0 = functools.partial(EfficientNetV2, stages=B0_STAGES, variant="b0")


def keras_layer_name(path: Sequence[str]) -> str:
  """Keras layer name of a Flax module path, e.g. ``("block4a", "se_reduce") -> "block4a_se_reduce"``."""
  return "_".join(path)
