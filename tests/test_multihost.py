"""A two-process (multi-host) training run on localhost: each process owns 2 virtual CPU
devices of a 4-device mesh, feeds its shard of every batch, and both agree on the
evaluation (frame level, and the localisation figures on the set's masks)."""

import os
import pathlib
import socket
import subprocess
import sys
import textwrap

from vad_jax import checkpointing

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_two_process_training_on_localhost(data_dir, tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {str(REPO)!r})
      from vad_jax import sharding
      sharding.maybe_initialize_distributed()
      import jax
      from vad_jax.configs import synthetic
      from vad_jax import loop
      config = synthetic.get_config("test")
      config.data.data_dir = {str(data_dir)!r}
      config.num_train_steps = 2
      assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.device_count())
      results = loop.train_and_evaluate(config, {str(tmp_path / "run")!r})
      keys = ("frames", "fused_micro_auc", "mask_frames", "pixel_auroc", "rbdc", "tbdc")
      print("RESULT", jax.process_index(), *(results[k] for k in keys))
  """)
  procs = []
  for rank in range(2):
    env = {
      **os.environ,
      "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
      "JAX_NUM_PROCESSES": "2",
      "JAX_PROCESS_ID": str(rank),
      "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
      "JAX_PLATFORMS": "cpu",
    }
    procs.append(
      subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
      )
    )
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  lines = sorted(next(x for x in out.splitlines() if x.startswith("RESULT")) for out, _ in outputs)
  assert lines[0].split()[2:] == lines[1].split()[2:]  # both hosts agree on every frame and every mask
  assert checkpointing.Checkpointer(tmp_path / "run" / "checkpoints", create=False).latest_step() == 2
