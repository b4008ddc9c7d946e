"""The XLA:CPU setting made on import (vad_jax/xla_cpu.py).

Run as a script (``python tests/test_xla_cpu.py OUT.npz``) it writes the dual-stream
network's training loss and gradients under the process's own XLA flags, so that a test
can compare the two settings, each in its own process.
"""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import vad_jax
from vad_jax import config_flags, xla_cpu
from vad_jax.dual_stream import loss, task


def test_takes_convolutions_from_ynnpack_unless_the_user_chose():
  setting = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu.configure(environ)
  assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {setting}"
  assert xla_cpu.configure(environ)  # a second call adds nothing
  assert environ["XLA_FLAGS"].count("ynn_fusion_type") == 1

  empty = {}
  assert xla_cpu.configure(empty) and empty["XLA_FLAGS"] == setting

  # The user's own value is kept; the result says whether it leaves convolutions to XLA.
  for value, xla_convolutions in [
    ("", True),  # YNNPACK off
    ("individual_dot", True),
    ("individual_convolution,dot", False),
    ("+dot", False),  # XLA's default list, which holds individual_convolution, plus one
    ("-reduce,-individual_convolution", True),
  ]:
    own = {"XLA_FLAGS": f"--xla_cpu_experimental_ynn_fusion_type={value}"}
    assert xla_cpu.configure(own) == xla_convolutions, value
    assert own["XLA_FLAGS"] == f"--xla_cpu_experimental_ynn_fusion_type={value}"

  opted_out = {"VAD_JAX_YNNPACK": "1"}
  assert not xla_cpu.configure(opted_out) and "XLA_FLAGS" not in opted_out
  assert xla_cpu.ynn_fusion_types(opted_out) == "default"
  assert xla_cpu.ynn_fusion_types(environ) == "-individual_convolution"
  assert xla_cpu.ynn_fusion_types({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}) == ""


def ynnpack_ops(hlo: str) -> dict[str, int]:
  """How many convolutions, matmuls (dots) and reductions of a compiled program's text
  run inside YNNPACK fusions."""
  fused = set(re.findall(r"calls=(%[\w.\-]+)[^\n]*__ynn_fusion", hlo))
  counts = dict.fromkeys(("convolution", "dot", "reduce"), 0)
  for computation in re.split(r"\n(?=%|ENTRY)", hlo):
    if computation.split(" ", 1)[0] in fused:
      for op in re.findall(r"= \S+ (convolution|dot|reduce)\(", computation):
        counts[op] += 1
  return counts


def test_the_suite_compiles_convolutions_without_ynnpack_and_matmuls_with_it():
  # vad_jax was imported before JAX created its CPU client (conftest imports jax only),
  # so the flag took effect: the convolution (and its gradients) are XLA's own, the
  # matmul and the reduction YNNPACK's (at sizes YNNPACK takes: it leaves small ones to XLA).
  assert vad_jax.xla_cpu is xla_cpu
  dimensions = ("NHWC", "HWIO", "NHWC")

  def conv_then_matmul(x, k, m):
    y = jnp.tanh(lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dimensions))
    return jnp.sum(y.reshape(-1, 32) @ m)

  program = jax.jit(jax.value_and_grad(conv_then_matmul, argnums=(0, 1)))
  hlo = program.lower(jnp.ones((2, 64, 64, 32)), jnp.ones((3, 3, 32, 32)), jnp.ones((32, 64))).compile().as_text()
  assert hlo.count("convolution(") == 3  # forward, input gradient, kernel gradient
  counts = ynnpack_ops(hlo)
  assert counts["convolution"] == 0 and counts["dot"] >= 1, counts


def loss_and_gradients() -> dict[str, np.ndarray]:
  """Training loss and parameter gradients (``conv_impl=auto``: ``mixed`` on CPUs) of the
  test network at widths 32-64 and 64x64 frames, large enough for XLA to hand its
  convolutions to YNNPACK when that is on (it keeps small ones), flattened by parameter
  path; ``ynnpack_convolutions``: how many convolutions the compiled program runs in
  YNNPACK fusions."""
  config = config_flags.load("default:test")
  config.model.widths = (32, 64)
  frames = jax.random.uniform(jax.random.key(0), (2, 5, 64, 64, 3), minval=-1, maxval=1)
  model = task.build_model(config)
  variables = model.init(jax.random.key(1), frames, train=False)

  def loss_fn(params):
    (_, aux), _ = model.apply({**variables, "params": params}, frames, train=True, mutable=["batch_stats", "memory"])
    total, _ = loss.dual_stream_loss(aux, config.loss.alpha, config.loss.beta, config.loss.gamma_i, config.loss.gamma_x)
    return total

  program = jax.jit(jax.value_and_grad(loss_fn)).lower(variables["params"]).compile()
  value, grads = program(variables["params"])
  flat = {jax.tree_util.keystr(path): np.asarray(g) for path, g in jax.tree_util.tree_leaves_with_path(grads)}
  ynnpack_convolutions = ynnpack_ops(program.as_text())["convolution"]
  return {"loss": np.asarray(value), "ynnpack_convolutions": np.asarray(ynnpack_convolutions), **flat}


def test_network_loss_and_gradients_equal_under_xla_default(tmp_path):
  # The other setting runs in a child process: XLA reads its flags once per process.
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(xla_cpu.YNN_FLAG))
  env = {**os.environ, "XLA_FLAGS": flags, xla_cpu.OPT_OUT: "1"}
  out = tmp_path / "ynnpack.npz"
  subprocess.run([sys.executable, __file__, str(out)], env=env, check=True, timeout=600)
  theirs, ours = dict(np.load(out)), loss_and_gradients()
  # XLA's default runs convolutions in YNNPACK; the project's setting runs none there.
  assert theirs.pop("ynnpack_convolutions") > 0 and ours.pop("ynnpack_convolutions") == 0
  assert theirs.keys() == ours.keys()
  assert abs(float(ours["loss"]) - float(theirs["loss"])) <= 1e-5 * abs(float(theirs["loss"]))
  # The loss agrees to float32 rounding. Gradients pass through BatchNorm's backward at
  # batch 2, which amplifies rounding: measured, the largest difference of a leaf was
  # 1.8e-2 of that leaf's largest gradient between the two libraries (the bottleneck's
  # second kernel) and 2.2e-3 between conv_impl mixed and native under one library.
  # Leaves of rounding size (biases before BatchNorm) are scaled by the largest gradient.
  largest = max(float(np.max(np.abs(v))) for k, v in theirs.items() if k != "loss")
  for key, expected in theirs.items():
    scale = max(float(np.max(np.abs(expected))), 1e-3 * largest)
    error = float(np.max(np.abs(ours[key] - expected))) / scale
    assert error <= 3e-2, f"{key}: relative error {error:.2e}"


if __name__ == "__main__":
  np.savez(sys.argv[1], **loss_and_gradients())
