"""Ahead-of-time compilation (``vad_jax.aot``): the programs compiled for the CPU backend's
8 virtual devices communicate only through all-reduces over ``data``; the report's memory
and FLOPs are there; a target this machine cannot compile for says why."""

import importlib.util
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from vad_jax import aot, compiled_programs, config_flags


def tiny_config():
  config = config_flags.load("default:test")
  config.model.widths = (4, 8)  # two levels: compilation dominates the test's time
  config.model.conv_impl = "native"
  return config


@pytest.fixture(scope="module")
def report():
  return aot.compile_target(tiny_config(), "cpu:8", global_batch=8)


def test_train_step_communicates_only_by_all_reduce_over_all_of_data(report):
  entry = report["programs"]["train_step"]
  assert entry["status"] == "compiled"
  ops = entry["collectives"]
  assert ops, "a data-parallel training step must all-reduce its gradients"
  assert {op["op"] for op in ops} == {"all-reduce"}, entry["collectives_by_op"]
  for op in ops:
    assert op["groups"] == [list(range(8))], op
  # The gradients of every parameter cross the devices once: at least the parameters'
  # bytes are all-reduced, and nothing as large as the batch's frames is.
  params = aot.abstract_inputs(tiny_config(), aot.make_mesh(jax.devices()[:8]), 8)[1].params
  param_bytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(params))
  assert param_bytes <= entry["collective_bytes"] < 3 * param_bytes, (param_bytes, entry["collective_bytes"])
  frames_per_example = 5 * 16 * 16 * 3 * 4
  assert max(op["bytes"] for op in ops) < 8 * frames_per_example
  assert any("transpose" in op["source"] for op in ops), "no gradient (transpose) all-reduce found"


def test_evaluation_and_scorer_need_no_communication(report):
  for name in ("eval_step", "scorer"):
    entry = report["programs"][name]
    assert entry["status"] == "compiled" and entry["collectives"] == [], (name, entry["collectives_by_op"])


def test_memory_and_flops_are_reported_per_chip(report):
  assert report["target"]["chips"] == 8 and report["batch"] == {"global": 8, "per_chip": 1}
  for name, entry in report["programs"].items():
    memory = entry["memory"]
    for key in ("argument_bytes", "output_bytes", "peak_bytes"):
      assert memory[key] > 0, (name, key)
    assert memory["temp_bytes"] >= 0 and memory["alias_bytes"] >= 0
    assert entry["flops"] > 0, name
  train = report["programs"]["train_step"]
  # The donated state is aliased to the new state, and training costs more than scoring.
  assert train["memory"]["alias_bytes"] > 0
  assert train["flops"] > 2 * report["programs"]["eval_step"]["flops"]
  text = aot.markdown(report)
  assert "| train_step | compiled |" in text and "## train_step: collectives" in text


def test_per_chip_flops_shrink_with_the_chips_sharing_a_batch():
  config = tiny_config()
  one = aot.compile_target(config, "cpu:1", global_batch=8, programs=("eval_step",))
  eight = aot.compile_target(config, "cpu:8", global_batch=8, programs=("eval_step",))
  ratio = one["programs"]["eval_step"]["flops"] / eight["programs"]["eval_step"]["flops"]
  assert 6 < ratio < 10, ratio


def test_a_target_that_cannot_be_compiled_here_says_why():
  with pytest.raises(aot.TargetUnavailable, match="xla_force_host_platform_device_count=64"):
    aot.compile_target(tiny_config(), "cpu:64")
  with pytest.raises(ValueError, match="unknown target 'tpu:v9:2x2'"):
    aot.parse_target("tpu:v9:2x2")
  if importlib.util.find_spec("libtpu") is None:
    with pytest.raises(aot.TargetUnavailable, match="tpu:v5e:2x2: .*TPU"):
      aot.compile_target(tiny_config(), "tpu:v5e:2x2")


def test_a_gpu_target_is_lowered_with_the_reason_it_was_not_compiled():
  report = aot.compile_target(tiny_config(), "gpu:h100:8", global_batch=8, programs=("train_step",))
  assert report["status"] == "lowered" and "CUDA PJRT plugin, which is not installed" in report["reason"]
  entry = report["programs"]["train_step"]
  assert entry["status"] == "lowered" and entry["sharding_annotations"] > 0 and "memory" not in entry
  assert report["target"]["chips"] == 8 and report["target"]["chip_memory_bytes"] == 80 * 10**9


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu not installed (the tpu extra)")
def test_a_tpu_slice_compiles_from_this_cpu():
  report = aot.compile_target(tiny_config(), "tpu:v5e:2x2", global_batch=8, programs=("train_step",))
  entry = report["programs"]["train_step"]
  assert report["target"]["device_kind"] == "TPU v5 lite" and entry["status"] == "compiled"
  assert {op["op"] for op in entry["collectives"]} == {"all-reduce"}
  assert all(op["groups"] == [[0, 1, 2, 3]] for op in entry["collectives"])
  assert 0 < entry["memory"]["fraction_of_chip"] < 0.01


@pytest.mark.parametrize(
  "line, groups",
  [
    ("%ar = f32[4] all-reduce(%x), replica_groups={{0,1},{2,3}}, to_apply=%add", [[0, 1], [2, 3]]),
    ("%ar = f32[4] all-reduce(%x), replica_groups=[2,4]<=[8], to_apply=%add", [[0, 1, 2, 3], [4, 5, 6, 7]]),
    ("%ar = f32[4] all-reduce(%x), replica_groups=[4,2]<=[2,4]T(1,0), to_apply=%a", [[0, 4], [1, 5], [2, 6], [3, 7]]),
    ("%ar = f32[4] all-reduce(%x), replica_groups=mesh['a'=2,'b'=2] {'b'}, to_apply=%a", [[0, 1], [2, 3]]),
    ("%ar = f32[4] all-reduce(%x), replica_groups=mesh['a'=2,'b'=2] {'a'}, to_apply=%a", [[0, 2], [1, 3]]),
    ("%ar = f32[4] all-reduce(%x), replica_groups={}, to_apply=%add", [[0, 1, 2, 3]]),
    ("%cp = f32[4] collective-permute(%x), source_target_pairs={{0,1},{1,0}}", [[0, 1], [1, 0]]),
  ],
)
def test_replica_groups_in_each_of_xlas_notations(line, groups):
  assert compiled_programs.replica_groups(line, 4) == groups


def test_collectives_count_an_async_pair_once_with_its_payload():
  hlo = "\n".join(
    [
      "  %s = (f32[256,256]{1,0}, f32[256,256]{1,0}) all-reduce-start(%p), replica_groups={{0,1}}, to_apply=%add",
      "  %d = f32[256,256]{1,0} all-reduce-done(%s)",
      "  %g = bf16[8,128]{1,0} all-gather(%q), replica_groups=[1,2]<=[2], dimensions={0}",
    ]
  )
  ops = compiled_programs.collectives(hlo, 2)
  assert [(op["op"], op["bytes"]) for op in ops] == [("all-reduce", 256 * 256 * 4), ("all-gather", 8 * 128 * 2)]
  assert compiled_programs.summarise_collectives(ops)["all-reduce"] == {"count": 1, "bytes": 262144}


def test_the_command_reports_an_unavailable_target_and_fails(tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "vad_jax.studies.aot", "--config", "default:test", "--targets", "cpu:64", "--out", tmp_path],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert "cannot compile for cpu:64 here" in result.stdout and "device_count=64" in result.stderr
  saved = json.loads((tmp_path / "aot_cpu_64.json").read_text())
  assert saved["status"] == "unavailable" and "8 device(s)" in saved["reason"]


def test_largest_fit_finds_the_boundary_of_a_nearly_linear_memory():
  calls = []

  def measure(batch):  # 100 bytes of weights, 10 per example, 3 more from 6 examples on
    calls.append(batch)
    return 100 + 10 * batch + 3 * (batch >= 6)

  found = aot.largest_fit(measure, 1, 2, capacity=170)
  assert found["largest"] == 6 and found["peak_bytes"] == 163
  assert found["tried"][7] == 173 and len(calls) == len(set(calls)) <= 5

  refused = aot.largest_fit(lambda side: None if side > 9 else 50 * side**2, 2, 4, capacity=10**6, scale=lambda s: s**2)
  assert refused["largest"] == 9 and refused["tried"][10] is None

  # A start above the boundary (the seed of --fit_start) halves, then bisects.
  above = aot.largest_fit(measure, 12, 13, capacity=170)
  assert above["largest"] == 6 and above["tried"][12] == 223 and above["tried"][7] == 173
  nothing = aot.largest_fit(lambda b: None, 4, 5, capacity=170)
  assert nothing["largest"] == 0 and nothing["peak_bytes"] is None


def test_the_scaling_model_rings_the_all_reduce_over_the_slowest_link():
  from vad_jax.studies import scaling

  h100 = scaling.CHIPS["h100"]
  assert scaling.all_reduce_seconds(1e9, 1, h100) == 0.0
  assert scaling.all_reduce_seconds(1e9, 2, h100) == pytest.approx(1e9 / 450e9)  # 2 (n-1)/n = 1
  assert scaling.all_reduce_seconds(1e9, 64, h100) == pytest.approx(2 * 63 / 64 * 1e9 / 50e9)  # across hosts
  rows = scaling.step_times(197e12 * 0.5 * 0.01, 1e8, scaling.CHIPS["tpu_v5e"], mfu=0.5)
  assert [r["chips"] for r in rows] == [1, 8, 64, 256] and rows[0]["compute_s"] == pytest.approx(0.01)
  assert rows[0]["efficiency_serial"] == 1.0 and rows[-1]["all_reduce_s"] == pytest.approx(2 * 255 / 256 * 1e8 / 200e9)
