"""Reading a compiled XLA program: memory per device, the collectives per step and their
bytes (from the optimised HLO text), and the FLOPs of XLA's cost analysis."""

from __future__ import annotations

import math
import re
from typing import Any, Optional

import numpy as np

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")

_DTYPE_BYTES = {
  "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
  "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1, "s4": 0.5, "u4": 0.5,
}  # fmt: skip
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([0-9,]*)\]")
_COLLECTIVE = re.compile(
  r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.+?)\s+(?P<op>"
  + "|".join(COLLECTIVES)
  + r")(?P<suffix>-start)?\("
)


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape: ``f32[512,512]{1,0}`` or a tuple ``(f32[8], bf16[2,4])``."""
  total = 0.0
  for dtype, dims in _ARRAY.findall(shape):
    if dtype not in _DTYPE_BYTES:
      continue
    total += _DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
  return int(total)


def replica_groups(line: str, num_devices: int) -> list[list[int]]:
  """The device groups of a collective's HLO line, in any of XLA's three notations.

  ``replica_groups={{0,1},{2,3}}`` (explicit), ``replica_groups=[2,4]<=[8]`` or
  ``[2,4]<=[4,2]T(1,0)`` (an iota reshaped, transposed, grouped),
  ``replica_groups=mesh['x'=2,'y'=4] {'y'}`` (groups along named mesh axes); an empty or
  missing list means one group of all devices. A collective-permute gets its
  ``source_target_pairs`` as two-device groups.
  """
  pairs = re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", line)
  if pairs:
    return [[int(a), int(b)] for a, b in re.findall(r"\{(\d+),(\d+)\}", pairs.group(1))]
  mesh = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", line)
  if mesh:
    axes = re.findall(r"'([^']+)'=(\d+)", mesh.group(1))
    names, sizes = [a for a, _ in axes], [int(s) for _, s in axes]
    over = [names.index(a) for a in re.findall(r"'([^']+)'", mesh.group(2))]
    ids = np.arange(math.prod(sizes)).reshape(sizes)
    kept = [i for i in range(len(sizes)) if i not in over]
    ids = np.transpose(ids, kept + over).reshape(-1, math.prod(sizes[i] for i in over) if over else 1)
    return ids.tolist()
  iota = re.search(r"replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", line)
  if iota:
    groups_shape = [int(x) for x in iota.group(1).split(",")]
    ids = np.arange(math.prod(int(x) for x in iota.group(2).split(","))).reshape(
      [int(x) for x in iota.group(2).split(",")]
    )
    if iota.group(3):
      ids = np.transpose(ids, [int(x) for x in iota.group(3).split(",")])
    return ids.reshape(groups_shape[0], -1).tolist()
  explicit = re.search(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}", line)
  if explicit and explicit.group(1):
    return [[int(x) for x in g.split(",") if x] for g in re.findall(r"\{([\d,]*)\}", explicit.group(1))]
  return [list(range(num_devices))]


def collectives(hlo_text: str, num_devices: int) -> list[dict[str, Any]]:
  """Every collective of an optimised HLO module: op, result shape, bytes, groups.

  Asynchronous pairs count once (the ``-start``; its ``-done`` is skipped). A collective
  inside a loop body is listed once, whatever the trip count (the programs here have none).
  """
  found = []
  for line in hlo_text.splitlines():
    match = _COLLECTIVE.match(line)
    if not match:
      continue
    shape = match.group("shape")
    nbytes = shape_bytes(shape)
    if match.group("suffix") and shape.startswith("("):
      # An async start's tuple holds the operands and the results: the payload is half.
      nbytes //= 2
    groups = replica_groups(line, num_devices)
    op_name = re.search(r'op_name="([^"]*)"', line)
    found.append(
      {
        "op": match.group("op"),
        "name": match.group("name"),
        "shape": re.sub(r"\{[^}]*\}", "", shape).strip(),
        "bytes": nbytes,
        "groups": groups,
        "group_size": max((len(g) for g in groups), default=0),
        "source": op_name.group(1) if op_name else "",
      }
    )
  return found


def summarise_collectives(ops: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
  """``{op: {"count", "bytes"}}`` over a program's collectives."""
  summary: dict[str, dict[str, int]] = {}
  for op in ops:
    entry = summary.setdefault(op["op"], {"count": 0, "bytes": 0})
    entry["count"] += 1
    entry["bytes"] += op["bytes"]
  return summary


def _cost(analysis: Any) -> dict[str, float]:
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  analysis = analysis or {}
  return {k: float(analysis[k]) for k in ("flops", "bytes accessed", "transcendentals") if k in analysis}


def memory(compiled, chip_bytes: Optional[int]) -> dict[str, Any]:
  """A compiled program's memory per chip; ``peak_bytes`` = arguments + outputs - aliased
  + temporaries + generated code, the figure JAX's own out-of-memory check compares."""
  stats = compiled.memory_analysis()
  if stats is None:
    return {}
  result = {
    "argument_bytes": int(stats.argument_size_in_bytes),
    "output_bytes": int(stats.output_size_in_bytes),
    "alias_bytes": int(stats.alias_size_in_bytes),
    "temp_bytes": int(stats.temp_size_in_bytes),
    "code_bytes": int(stats.generated_code_size_in_bytes),
  }
  result["peak_bytes"] = (
    result["argument_bytes"] + result["output_bytes"] - result["alias_bytes"] + result["temp_bytes"]
  ) + result["code_bytes"]
  if chip_bytes:
    result["chip_bytes"] = int(chip_bytes)
    result["fraction_of_chip"] = result["peak_bytes"] / chip_bytes
    result["fits"] = result["peak_bytes"] <= chip_bytes
  return result


def analyse(compiled, num_devices: int, chip_bytes: Optional[int]) -> dict[str, Any]:
  """Memory, FLOPs and collectives of one compiled program (per chip, per call)."""
  text = compiled.as_text()
  ops = collectives(text, num_devices)
  cost = _cost(compiled.cost_analysis())
  return {
    "memory": memory(compiled, chip_bytes),
    "flops": cost.get("flops", float("nan")),
    "bytes_accessed": cost.get("bytes accessed", float("nan")),
    "collectives": ops,
    "collectives_by_op": summarise_collectives(ops),
    "collective_bytes": sum(op["bytes"] for op in ops),
    "hlo_bytes": len(text),
  }


def device_memory(device) -> Optional[int]:
  try:
    stats = device.memory_stats() or {}
  except Exception:  # compile-only and some local devices report none
    return None
  return stats.get("bytes_limit")
