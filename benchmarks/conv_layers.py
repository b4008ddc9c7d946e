"""GFLOP/s of one 3x3 convolution's three programs on this machine: the forward pass, the
gradient with respect to the input (dx) and with respect to the kernel (dW), for layer
shapes of the dual-stream network, per implementation (``vad_jax.dual_stream.conv``:
XLA's ``native`` convolution or ``matmul``, neighbourhoods times kernel) and precision
(``float32``; ``bfloat16`` inputs and kernel, as the network computes in mixed precision).

  python benchmarks/conv_layers.py                          # native, float32
  python benchmarks/conv_layers.py --impls native,matmul --dtypes float32,bfloat16
  VAD_JAX_YNNPACK=1 python benchmarks/conv_layers.py        # XLA's default (YNNPACK)
  python benchmarks/conv_layers.py 8x256x256x32x32          # BATCHxHxWxC_INxC_OUT

Each shape is ``frames x height x width x in x out``: the encoder runs on every input
frame of every clip, so a batch of 2 clips of 4 frames is 8 images (paper size) and a
batch of 8 is 32 (CPU size). Median of 5 timed calls after a warm-up, the
implementations and precisions of one shape timed one after another; the peaks are a
2048x2048 matmul in each precision timed the same way. bfloat16 is counted at the same
FLOPs as float32.
"""

import argparse
import os

import jax

from vad_jax import throughput  # importing vad_jax applies vad_jax/xla_cpu.py first
from vad_jax.dual_stream import conv as conv_lib

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


def programs(impl: str):
  """Jitted forward, dx and dW of a 3x3 ``SAME`` convolution computed by ``impl``."""
  conv = lambda x, k: conv_lib.conv2d(x, k, impl)
  forward = jax.jit(conv)
  dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
  dw = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
  return forward, dx, dw


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("shapes", nargs="*", default=SHAPES)
  parser.add_argument("--impls", default="native", help="comma-separated: native, matmul")
  parser.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16")
  args = parser.parse_args(argv)
  impls, dtypes = args.impls.split(","), args.dtypes.split(",")
  peaks = {dtype: throughput.matmul_peak(dtype) for dtype in dtypes}
  print(
    "matmul peak " + ", ".join(f"{d} {p:.0f}" for d, p in peaks.items()) + " GFLOP/s; "
    f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
  )
  print("shape (frames x h x w x in x out) | impl | dtype | GFLOP | forward | dx | dW  (GFLOP/s)")
  compiled = {impl: programs(impl) for impl in impls}
  for shape in args.shapes:
    b, h, w, c_in, c_out = (int(s) for s in shape.split("x"))
    keys = jax.random.split(jax.random.key(0), 3)
    gflop = 2 * b * h * w * 9 * c_in * c_out / 1e9
    for dtype in dtypes:
      x = jax.random.normal(keys[0], (b, h, w, c_in), dtype)
      kernel = jax.random.normal(keys[1], (3, 3, c_in, c_out), dtype)
      g = jax.random.normal(keys[2], (b, h, w, c_out), dtype)
      for impl in impls:
        forward, dx, dw = compiled[impl]
        rates = [
          gflop / throughput.time_call(forward, x, kernel, steps=5),
          gflop / throughput.time_call(dx, x, kernel, g, steps=5),
          gflop / throughput.time_call(dw, x, kernel, g, steps=5),
        ]
        print(f"{shape} | {impl} | {dtype} | {gflop:.2f} | " + " | ".join(f"{r:.0f}" for r in rates), flush=True)


if __name__ == "__main__":
  main()
