"""Commands run as a person runs them on a terminal: on a pseudo-terminal that reports no
size (as under ``script`` or another program's pty), where tqdm drew nothing before."""

import os
import pty
import subprocess


def run_on_a_pseudo_terminal(command: list[str], cwd=None, timeout: float = 600) -> tuple[int, str]:
  """``(exit status, everything the command wrote)``, stdout and stderr both on the terminal."""
  leader, follower = pty.openpty()
  process = subprocess.Popen(command, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, cwd=cwd)
  os.close(follower)
  output = bytearray()
  while True:
    try:
      chunk = os.read(leader, 65536)
    except OSError:  # EIO: the command closed the terminal
      break
    if not chunk:
      break
    output += chunk
  os.close(leader)
  return process.wait(timeout=timeout), output.decode(errors="replace")
