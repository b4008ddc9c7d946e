"""GFLOP/s of one 3x3 convolution's three programs on this machine: the forward pass, the
gradient with respect to the input (dx) and with respect to the kernel (dW), each with
XLA's native convolution, for layer shapes of the dual-stream network.

  python benchmarks/conv_layers.py                      # the project's XLA:CPU setting
  VAD_JAX_YNNPACK=1 python benchmarks/conv_layers.py    # XLA's default (YNNPACK)
  python benchmarks/conv_layers.py 8x256x256x32x32      # BATCHxHxWxC_INxC_OUT

Each shape is ``frames x height x width x in x out``: the encoder runs on every input
frame of every clip, so a batch of 2 clips of 4 frames is 8 images (paper size) and a
batch of 8 is 32 (CPU size). Median of 5 timed calls after a warm-up; the peak is a
2048x2048 float32 matmul timed the same way.
"""

import os
import sys

import jax
from jax import lax

from vad_jax import throughput  # importing vad_jax applies vad_jax/xla_cpu.py first

SHAPES = (
  "8x256x256x32x32",
  "8x128x128x64x64",
  "8x64x64x128x128",
  "8x32x32x256x256",
  "32x128x128x16x16",
  "32x64x64x32x32",
  "32x32x32x64x64",
  "32x16x16x128x128",
)


def conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def main(shapes) -> None:
  peak = throughput.matmul_peak()
  print(f"matmul peak {peak:.0f} GFLOP/s; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print("shape (frames x h x w x in x out) | GFLOP | forward | dx | dW  (GFLOP/s)")
  forward = jax.jit(conv)
  dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
  dw = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
  for shape in shapes:
    b, h, w, c_in, c_out = (int(s) for s in shape.split("x"))
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (b, h, w, c_in))
    kernel = jax.random.normal(keys[1], (3, 3, c_in, c_out))
    g = jax.random.normal(keys[2], (b, h, w, c_out))
    gflop = 2 * b * h * w * 9 * c_in * c_out / 1e9
    rates = [
      gflop / throughput.time_call(forward, x, kernel, steps=5),
      gflop / throughput.time_call(dx, x, kernel, g, steps=5),
      gflop / throughput.time_call(dw, x, kernel, g, steps=5),
    ]
    print(f"{shape} | {gflop:.2f} | " + " | ".join(f"{r:.0f}" for r in rates), flush=True)


if __name__ == "__main__":
  main(sys.argv[1:] or SHAPES)
