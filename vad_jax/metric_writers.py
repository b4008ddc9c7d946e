"""Training logs: TensorBoard event files (written by tensorboardX, no TensorFlow), a
``metrics.jsonl`` in the workdir, and a progress display.

On a terminal the progress is a tqdm bar with step, loss, steps/s and ETA; otherwise
(CI, redirected output) one plain log line per logging interval.
"""

import json
import pathlib
import sys
import time
from collections.abc import Mapping
from typing import Optional

import jax
import tqdm
from tensorboardX import SummaryWriter


class MetricWriter:
  """Writes scalars to TensorBoard and ``metrics.jsonl``; only process 0 writes.

  ``resume_step``: a run resumed from the checkpoint of that step first drops what an
  interrupted run logged after it (``metrics.jsonl`` lines, and TensorBoard events via
  ``purge_step``), so every step is logged exactly once.
  """

  def __init__(self, workdir: str | pathlib.Path, resume_step: Optional[int] = None, enabled: Optional[bool] = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.workdir = pathlib.Path(workdir)
    if self.enabled:
      self.workdir.mkdir(parents=True, exist_ok=True)
      jsonl = self.workdir / "metrics.jsonl"
      if resume_step is not None and jsonl.exists():
        kept = [
          line
          for line in jsonl.read_text(encoding="utf-8").splitlines()
          if line.strip() and json.loads(line)["step"] <= resume_step
        ]
        jsonl.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
      purge = resume_step + 1 if resume_step else None
      self._tb = SummaryWriter(str(self.workdir / "tensorboard"), purge_step=purge)
      self._jsonl = open(jsonl, "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
    if not self.enabled:
      return
    record = {"step": int(step)}
    for key, value in scalars.items():
      name = f"{prefix}{key}"
      self._tb.add_scalar(name, float(value), int(step))
      record[name] = float(value)
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


class Progress:
  """Step counter with loss, steps/s and ETA: a bar on a terminal, log lines elsewhere."""

  def __init__(self, total_steps: int, initial_step: int = 0, interactive: Optional[bool] = None):
    self.total, self.initial = total_steps, initial_step
    self.interactive = sys.stderr.isatty() if interactive is None else interactive
    self.enabled = jax.process_index() == 0
    self._start, self._start_step = time.perf_counter(), initial_step
    self._bar = (
      tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)
      if self.enabled and self.interactive
      else None
    )

  def rate(self, step: int) -> float:
    elapsed = time.perf_counter() - self._start
    return (step - self._start_step) / elapsed if elapsed > 0 else 0.0

  def update(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    rate = self.rate(step)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    if self._bar is not None:
      self._bar.n = step
      self._bar.set_postfix(loss=f"{scalars.get('loss', float('nan')):.4f}", refresh=True)
    else:
      print(
        f"step {step}/{self.total}  loss {scalars.get('loss', float('nan')):.5f}  {rate:.2f} steps/s  eta {eta:.0f}s",
        flush=True,
      )

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
