"""The training workdir: an exclusive lock while a run writes to it, and path checks.

The lock is an ``fcntl.flock`` on ``<workdir>/LOCK``: the operating system releases it
when its process ends in any way (exit, exception, SIGKILL), so a lock left by a dead
process is simply taken over; the file names the process that holds it, for the
message another run gets.
"""

import fcntl
import os
import pathlib
import socket
import time

from absl import logging

LOCK_NAME = "LOCK"


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` whole or not at all (a sibling ``.tmp``, then a rename):
  a killed process never leaves a half-written file."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text, encoding="utf-8")
  tmp.replace(path)


class WorkdirBusyError(RuntimeError):
  """Another process is training in the same workdir."""


def check_path(path: str | os.PathLike, what: str) -> pathlib.Path:
  """``path`` as a ``Path``; ``ValueError`` naming ``what`` if it is not valid UTF-8
  (array_record and orbax fail deep inside on such paths, after writing part of a
  checkpoint)."""
  text = os.fspath(path)
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    raise ValueError(f"{what} {text!r} is not a valid UTF-8 path; use a path of UTF-8 characters") from None
  return pathlib.Path(text)


class WorkdirLock:
  """``with WorkdirLock(workdir):`` holds the workdir's lock (``WorkdirBusyError`` if
  another live process holds it)."""

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / LOCK_NAME
    self._fd: int | None = None

  def __enter__(self) -> "WorkdirLock":
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
      os.close(fd)
      raise WorkdirBusyError(
        f"workdir {self.path.parent} is in use by {holder}; wait for that run to end or stop it "
        f"(its lock is released when its process ends)"
      ) from None
    previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    if previous:
      logging.info("taking over the lock of %s in %s (that process has ended)", previous, self.path.parent)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      os.ftruncate(self._fd, 0)
      os.close(self._fd)  # releases the lock
      self._fd = None
