"""Training logs: TensorBoard event files (written by tensorboardX, no TensorFlow), a
``metrics.jsonl`` in the workdir, and what a person sees in the terminal.

Both logs hold every step once, whatever happened to the runs that wrote them.
``metrics.jsonl`` holds one JSON record per line: a torn last line (power loss
mid-write) is dropped with a warning when the file is opened again, a resumed run drops
what was logged after its checkpoint, and records that are written again for the same
step (an evaluation rerun) replace the old ones. The TensorBoard event files are pruned
the same way (``prune_events``: the events of the steps a resumed run does again, an
evaluation's points that a new evaluation replaces, a torn last record), and events are
on disk at every logging step.

On a terminal the progress is a tqdm bar with step, loss, steps/s and ETA (on a terminal
that reports no width, as under ``script`` or a pseudo-terminal of a program, 80
columns); otherwise (CI, redirected output) one plain line per logging interval. Either
shows the first step as soon as it is done (compilation included), and evaluation its
first batch. Checkpoints, evaluation progress and the paths of what was written get one
line each; library INFO logs (orbax, absl) appear only with ``--verbosity=0``.
"""

import itertools
import json
import os
import pathlib
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Optional

import jax
import numpy as np
import tqdm
from absl import flags, logging
from PIL import Image
from tensorboardX import summary as tb_summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c

from vad_jax import workdir as workdir_lib


def read_records(path: pathlib.Path) -> list[dict[str, Any]]:
  """The records of a ``metrics.jsonl``; an unreadable line (a torn write) is dropped
  with a warning naming the file and the line."""
  records = []
  if not path.exists():
    return records
  lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if not isinstance(record, dict) or "step" not in record:
        raise ValueError("not a step record")
    except ValueError:
      where = "last line" if number == len(lines) else f"line {number}"
      logging.warning("%s: dropping the unreadable %s (an interrupted write?): %r", path, where, line[:200])
      continue
    records.append(record)
  return records


EVENT_FILES = "events.out.tfevents.*"
_EVENT_FILE_NUMBERS = itertools.count()


def _event_records(path: pathlib.Path) -> Iterator[tuple[bytes, Event]]:
  """``(record bytes, event)`` of every whole record of a TensorBoard event file (TFRecord
  framing: length, its CRC, the event, its CRC); a torn last record is left out."""
  data = path.read_bytes()
  start = 0
  while start + 12 <= len(data):
    header = data[start : start + 8]
    (length,) = struct.unpack("<Q", header)
    end = start + 12 + length + 4
    if struct.unpack("<I", data[start + 8 : start + 12])[0] != masked_crc32c(header) or end > len(data):
      return  # torn (or damaged) from here on
    yield data[start:end], Event.FromString(data[start + 12 : end - 4])
    start = end


def read_events(directory: str | pathlib.Path) -> list[Event]:
  """Every event of the TensorBoard files in ``directory``, file by file (oldest first)."""
  return [event for path in sorted(pathlib.Path(directory).glob(EVENT_FILES)) for _, event in _event_records(path)]


def prune_events(directory: pathlib.Path, drop: Callable[[Event], bool], keep: Optional[pathlib.Path] = None) -> int:
  """Rewrites the event files in ``directory`` (all but ``keep``) without the events that
  ``drop`` picks and without a torn last record; returns how many events were dropped.

  Each file is replaced whole (written aside, then renamed); records are copied as they
  are. A TensorBoard already running keeps what it loaded: the resumed run's purge
  event (``EventFile``) makes it discard the steps done again."""
  dropped = 0
  for path in sorted(directory.glob(EVENT_FILES)):
    if keep is not None and path == keep:
      continue
    kept, count, size = [], 0, 0
    for record, event in _event_records(path):
      count += 1
      size += len(record)
      if not event.HasField("file_version") and drop(event):
        continue
      kept.append(record)
    if len(kept) == count and size == path.stat().st_size:
      continue
    dropped += count - len(kept)
    aside = path.with_name(f".{path.name}.pruned")
    aside.write_bytes(b"".join(kept))
    os.replace(aside, path)
  return dropped


class EventFile:
  """A TensorBoard event file written synchronously: every ``add`` is on disk when it
  returns (tensorboardX's ``SummaryWriter`` queues events in a thread and flushes every
  two minutes, so a killed run lost them). Each file has a name of its own (tensorboardX
  names files by the second, and a second file opened in the same second truncated the
  first). ``purge_step``: a TensorBoard that is running discards the events it loaded
  from earlier files at and after that step (a resumed run)."""

  def __init__(self, directory: pathlib.Path, purge_step: Optional[int] = None):
    directory.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}.{next(_EVENT_FILE_NUMBERS):03d}"
    self._writer = EventsWriter(str(directory / "events"), filename_suffix=suffix)
    self.path = pathlib.Path(self._writer._file_name)  # noqa: SLF001  (tensorboardX has no public name for it)
    if purge_step is not None:
      self._write(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))

  def _write(self, event: Event) -> None:
    event.wall_time = time.time()
    self._writer.write_event(event)
    self._writer.flush()

  def add(self, step: int, summary) -> None:
    self._write(Event(step=int(step), summary=summary))

  def close(self) -> None:
    self._writer.close()


def training_minutes(records: list[dict], step: int) -> float:
  """Training time up to ``step`` from the logged step rates (the first interval
  includes compilation); NaN when the log does not reach ``step``."""
  seconds, previous, reached = 0.0, 0, False
  for record in sorted(records, key=lambda r: r["step"]):
    rate = record.get("train/steps_per_second")
    if rate is None or record["step"] > step:
      continue
    seconds += (record["step"] - previous) / rate
    previous, reached = record["step"], record["step"] == step
  return seconds / 60.0 if reached else float("nan")


def _write_records(path: pathlib.Path, records: list[dict[str, Any]]) -> None:
  """Replaces the file's content atomically (write, then rename)."""
  workdir_lib.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def repair_records(path: pathlib.Path, resume_step: Optional[int] = None) -> None:
  """Rewrites a ``metrics.jsonl`` without its unreadable lines (a torn write) and, for a
  run resumed from the checkpoint of ``resume_step``, without the records after it."""
  if not path.exists():
    return
  records = read_records(path)
  kept = [r for r in records if resume_step is None or r["step"] <= resume_step]
  if len(kept) != len(path.read_text(encoding="utf-8", errors="replace").splitlines()):
    _write_records(path, kept)


class MetricWriter:
  """Writes scalars to TensorBoard and ``metrics.jsonl``; only process 0 writes.

  ``resume_step``: a run resumed from the checkpoint of that step (0: started afresh)
  first drops what earlier runs logged after it, in ``metrics.jsonl`` and in the
  TensorBoard files (``prune_events``; a fresh start drops everything, the config text
  of step 0 included), so every step is logged exactly once.
  """

  def __init__(self, workdir: str | pathlib.Path, resume_step: Optional[int] = None, enabled: Optional[bool] = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.workdir = pathlib.Path(workdir)
    if self.enabled:
      self.workdir.mkdir(parents=True, exist_ok=True)
      self._path = self.workdir / "metrics.jsonl"
      repair_records(self._path, resume_step)
      tensorboard = self.workdir / "tensorboard"
      purge = None
      if resume_step is not None and tensorboard.is_dir():
        prune_events(tensorboard, lambda event: resume_step == 0 or event.step > resume_step)
        purge = resume_step + 1
      self._tb = EventFile(tensorboard, purge_step=purge)
      self._jsonl = open(self._path, "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: Mapping[str, float], prefix: str = "", replace: bool = False) -> None:
    """Logs ``scalars`` at ``step`` (names prefixed). ``replace``: first drop what was
    logged at this step under this prefix (a new evaluation of the same step replaces
    the old one's records, TensorBoard points and images)."""
    if not self.enabled:
      return
    if replace:
      self._jsonl.close()
      records = read_records(self._path)
      kept = [r for r in records if not (r["step"] == step and any(k.startswith(prefix) for k in r if k != "step"))]
      if len(kept) != len(records):
        _write_records(self._path, kept)
      self._jsonl = open(self._path, "a", encoding="utf-8")
      prune_events(
        self._tb.path.parent,
        lambda event: (
          event.step == step
          and event.HasField("summary")
          and all(v.tag.startswith(prefix) for v in event.summary.value)
        ),
        keep=self._tb.path,
      )
    record = {"step": int(step)}
    for key, value in scalars.items():
      name = f"{prefix}{key}"
      self._tb.add(step, tb_summary.scalar(name, float(value)))
      record[name] = float(value)
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()

  def write_text(self, step: int, name: str, text: str) -> None:
    if self.enabled:
      self._tb.add(step, tb_summary.text(name, text))

  def write_images(self, step: int, paths: Iterable[pathlib.Path], prefix: str = "") -> None:
    """PNG files (evaluation plots) as TensorBoard images named by their file stem."""
    if not self.enabled:
      return
    for path in paths:
      with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
      self._tb.add(step, tb_summary.image(f"{prefix}{path.stem}", array, dataformats="HWC"))

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def quiet_library_logs() -> None:
  """Library INFO logs (orbax, absl) off unless ``--verbosity`` was given: absl turns
  them on after parsing the flags when the flag is absent."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def say(message: str) -> None:
  """One line for the person watching (process 0), beside the progress bar."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def duration(seconds: float) -> str:
  """``"2 h 05 min"``, ``"12 min"`` or ``"40 s"``."""
  seconds = max(0, round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
  return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _bar_size(stream) -> dict[str, Any]:
  """tqdm's size options for ``stream``: the terminal's own, or 80 columns and 24 lines
  where the terminal reports no size (a pseudo-terminal under ``script`` or another
  program), where tqdm would draw nothing at all."""
  try:
    columns = os.get_terminal_size(stream.fileno()).columns
  except (OSError, ValueError, AttributeError):
    columns = 0
  return {"dynamic_ncols": True} if columns else {"ncols": 80, "nrows": 24}


class Progress:
  """Step counter with loss, steps/s and ETA: a bar on a terminal, log lines elsewhere."""

  def __init__(self, total_steps: int, initial_step: int = 0, interactive: Optional[bool] = None):
    self.total, self.initial = total_steps, initial_step
    self.interactive = sys.stderr.isatty() if interactive is None else interactive
    self.enabled = jax.process_index() == 0
    self._start = self._last_time = time.perf_counter()
    self._last_step = initial_step
    self._first: Optional[tuple[int, float]] = None  # (step, time) of this run's first step
    self._bar = (
      tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", file=sys.stderr, **_bar_size(sys.stderr))
      if self.enabled and self.interactive
      else None
    )

  def rate(self, step: int) -> float:
    """Steps per second since the previous call (the last logging interval)."""
    now = time.perf_counter()
    elapsed = now - self._last_time
    rate = (step - self._last_step) / elapsed if elapsed > 0 else 0.0
    self._last_time, self._last_step = now, step
    return rate

  def early_step(self, step: int, loss: float) -> None:
    """A line for one of the first steps of this run, before the first logging step:
    the first (its time includes compilation), then a later one with the time per step
    since the first and the time left. Logs nothing."""
    if not self.enabled:
      return
    now = time.perf_counter()
    if self._first is None:
      self._first = (step, now)
      timing = f"first step {now - self._start:.0f}s (compilation included)"
    else:
      per_step = (now - self._first[1]) / max(1, step - self._first[0])
      timing = f"{per_step:.2f} s/step after the first: about {duration(per_step * (self.total - step))} left"
    if self._bar is not None:
      self._bar.n = step
      self._bar.set_postfix(loss=f"{loss:.4f}", refresh=True)
    say(f"step {step}/{self.total}  loss {loss:.5f}  {timing}")

  def update(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    rate = scalars.get("steps_per_second", 0.0)
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


def counting(items: Iterable[Any], what: str, total: Optional[int] = None) -> Iterator[Any]:
  """Yields ``items`` and shows how many were done: a bar on a terminal, else a plain
  line after the first item (its time includes compilation) and at every tenth of
  ``total`` (every 100 items when the total is unknown)."""
  interactive = sys.stderr.isatty() and jax.process_index() == 0
  bar = (
    tqdm.tqdm(total=total, desc=what, unit="batch", leave=False, file=sys.stderr, **_bar_size(sys.stderr))
    if interactive
    else None
  )
  every = max(1, total // 10) if total else 100
  count = 0
  start = time.perf_counter()
  try:
    for item in items:
      yield item
      count += 1
      if bar is not None:
        bar.update(1)
      elif count == 1 or count % every == 0:
        say(f"{what}: {count}/{total if total else '?'} batches ({time.perf_counter() - start:.0f}s)")
  finally:
    if bar is not None:
      bar.close()
