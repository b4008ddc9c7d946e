"""The XLA:CPU setting made on import (vad_jax/xla_cpu.py).

Run as a script (``python tests/test_xla_cpu.py OUT.npz``) it writes the dual-stream
network's training loss and gradients under the process's own XLA flags, so that a test
can compare the two settings, each in its own process.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import vad_jax
from vad_jax import config_flags, xla_cpu
from vad_jax.dual_stream import loss, task


def test_turns_ynnpack_off_unless_the_user_chose():
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu.configure(environ)
  assert environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type="
  assert xla_cpu.configure(environ)  # a second call adds nothing
  assert environ["XLA_FLAGS"].count("ynn_fusion_type") == 1

  empty = {}
  assert xla_cpu.configure(empty) and empty["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="

  own = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_dot"}
  assert not xla_cpu.configure(own)
  assert own["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=individual_dot"

  opted_out = {"VAD_JAX_YNNPACK": "1"}
  assert not xla_cpu.configure(opted_out) and "XLA_FLAGS" not in opted_out


def convolution_is_a_ynnpack_fusion() -> bool:
  """Whether this process's XLA:CPU compiles a 3x3 convolution into a YNNPACK fusion (at
  a size YNNPACK takes: it leaves small ones, such as 2x32x32x16, to XLA)."""
  dimensions = ("NHWC", "HWIO", "NHWC")
  conv = jax.jit(lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dimensions))
  hlo = conv.lower(jnp.ones((2, 64, 64, 32)), jnp.ones((3, 3, 32, 32))).compile().as_text()
  assert "convolution(" in hlo
  return "ynn_fusion" in hlo


def test_the_suite_compiles_convolutions_without_ynnpack():
  # vad_jax was imported before JAX created its CPU client (conftest imports jax only),
  # so the flag took effect: the convolution is XLA's own, not a YNNPACK fusion.
  assert vad_jax.xla_cpu is xla_cpu
  assert not convolution_is_a_ynnpack_fusion()


def loss_and_gradients() -> dict[str, np.ndarray]:
  """Training loss and parameter gradients (``conv_impl=auto``: ``mixed`` on CPUs) of the
  test network at widths 32-64 and 64x64 frames, large enough for XLA to hand its
  convolutions to YNNPACK when that is on (it keeps small ones), flattened by parameter
  path; ``ynnpack``: whether the compiled program holds a YNNPACK fusion."""
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
  return {"loss": np.asarray(value), "ynnpack": np.asarray("ynn_fusion" in program.as_text()), **flat}


def test_network_loss_and_gradients_equal_under_xla_default(tmp_path):
  # The other setting runs in a child process: XLA reads its flags once per process.
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(xla_cpu.YNN_FLAG))
  env = {**os.environ, "XLA_FLAGS": flags, xla_cpu.OPT_OUT: "1"}
  out = tmp_path / "ynnpack.npz"
  subprocess.run([sys.executable, __file__, str(out)], env=env, check=True, timeout=600)
  theirs, ours = dict(np.load(out)), loss_and_gradients()
  assert theirs.pop("ynnpack") and not ours.pop("ynnpack"), "the two processes compiled the same way"
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
  jax.config.update("jax_threefry_partitionable", False)  # as conftest.py sets it: the same initial values
  np.savez(sys.argv[1], **loss_and_gradients())
