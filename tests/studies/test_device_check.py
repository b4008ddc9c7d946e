"""``python -m vad_jax.device_check --tiny``: the GPU check's CPU mode runs end to end."""

import json

from vad_jax.studies import device_check


def test_tiny_mode_runs_end_to_end_and_writes_its_results(data_dir, tmp_path):
  options = device_check.tiny_options(tmp_path / "check", data_dir=str(data_dir))
  device_check.run_check(options)

  results = json.loads((tmp_path / "check" / "device_check.json").read_text())
  assert results["mode"] == "tiny" and results["environment"]["backend"] == "cpu"
  rows = results["benchmarks"]
  # float32 and bfloat16 at the batch, then the other convolution implementation.
  assert [(r["dtype"], r["batch"]) for r in rows] == [("float32", 8), ("bfloat16", 8), ("bfloat16", 8)]
  assert [r["conv_impl"] for r in rows] == ["native", "native", "mixed"]
  for row in rows:
    assert "error" not in row and "skipped" not in row, row
    for key in ("forward frames/s", "forward % of peak", "train step (s)", "train frames/s", "train % of peak"):
      assert row[key] > 0, key
  assert "matmul peak bf16 GFLOP/s" in rows[1]

  training = results["training"]
  assert "error" not in training, training
  assert training["steps"] == 4 and training["step_seconds_from"] == "benchmark"
  assert 0.0 <= training["metrics"]["fused_micro_auc"] <= 1.0
  assert (tmp_path / "check" / "train" / "checkpoints" / "4").is_dir()

  report = results["aot"]["programs"]["eval_step"]  # the AOT report for the local devices
  assert report["status"] == "compiled" and report["memory"]["peak_bytes"] > 0 and report["flops"] > 0

  table = (tmp_path / "check" / "device_check.md").read_text()
  assert "| float32 | 8 | native |" in table and "## Training and evaluation" in table
  assert "fused" in table and "| eval_step | compiled |" in table
