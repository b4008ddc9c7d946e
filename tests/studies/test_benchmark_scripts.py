"""The stand-alone scripts under benchmarks/ run (their JAX side, at toy sizes)."""

import importlib.util
import pathlib

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
  spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("layers", ["project", "flax"])
def test_torch_reference_jax_side_counts_and_times_the_network(layers):
  result = load("torch_reference").run_jax(batch=1, size=32, steps=1, layers=layers)
  # 174.9 GFLOP for 2 clips at 256x256 (docs/RESULTS.md) scale to about 1.37 for one
  # at 32x32 (less at the deepest levels' borders); a training step is about three
  # forward passes.
  assert 0.9 < result["forward GFLOP"] < 1.5
  assert 2.5 < result["train GFLOP"] / result["forward GFLOP"] < 3.5
  assert result["forward s"] > 0 and result["train s"] > 0 and result["matmul peak GFLOP/s"] > 0


def test_conv_layers_prints_a_row_per_shape(capsys):
  load("conv_layers").main(["2x8x8x4x4", "1x4x4x8x16"])
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("2x8x8", "1x4x4"))]
  assert len(rows) == 2 and all(len(row.split("|")) == 7 for row in rows)  # shape, impl, dtype, GFLOP, 3 rates
