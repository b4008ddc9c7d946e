"""A trained model's scoring function, serialised with ``jax.export``.

The exported program maps the model's inputs (a batch of windows of frames already
preprocessed, and boxes for HybridModel-1) to the task's per-window outputs (the
dual-stream network: PSNR of the fused and per-stream predictions and the memory
distances of the predicted frame; the classifiers: per-frame and per-clip anomaly
probabilities). When the checkpoint has a calibration (``vad-jax calibrate``), the
dual-stream program also returns the calibrated scores (``score``, ``spatial_score``,
``temporal_score``: the share of the calibration's normal frames that score lower) and
``alarm`` (``score`` above the calibration's threshold), computed inside the program
(``dual_stream/exported_scores.py``). The weights and the calibration are part of the
program. A JSON file beside it (``model.json`` for ``model.jaxexport``) records the
inputs, outputs, the preprocessing the inputs need, the calibration (or
``"calibrated": false``), and the program's size and sha256. It runs with JAX alone,
without this package:

  import hashlib, json
  import jax
  program = open("model.jaxexport", "rb").read()
  info = json.load(open("model.json"))["program"]
  if len(program) != info["bytes"] or hashlib.sha256(program).hexdigest() != info["sha256"]:
    raise ValueError("model.jaxexport is damaged or truncated; export it again")
  scoring = jax.export.deserialize(program)
  outputs = scoring.call(windows)  # windows: float32 [B, T, h, w, c], see the JSON
  outputs["score"], outputs["alarm"]  # per window, with a calibration

The batch dimension is symbolic (any batch size). ``load`` does the same checks for
Python code that has this package.
"""

import functools
import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from vad_jax import precision, tasks
from vad_jax import workdir as workdir_lib

FORMAT_VERSION = 2  # 2: the program's size and sha256, the calibration
EXPORT_COMMAND = "vad-jax export --checkpoint RUN --output {path}"


def scoring_function(
  config: ml_collections.ConfigDict, state: Any, calibration: Optional[Mapping[str, Any]] = None
) -> tuple:
  """``(fn, input names, example inputs, calibration description)``: ``fn(*inputs)``
  is the task's ``eval_step`` on a batch made of the model's inputs, with ``state``
  closed over, and with the calibrated scores and alarm added when ``calibration`` is
  given and the task calibrates (``calibrated_outputs``; the description is ``None``
  otherwise)."""
  task = tasks.for_config(config)
  model = task.build_model(config)
  batch, _ = task.example_batch(config, 1)
  inputs = task.model_inputs(config, batch)
  names = [next(k for k, v in batch.items() if v is x) for x in inputs]
  step = functools.partial(task.eval_step, model=model, config=config)
  calibrated, described = None, None
  outputs_for = tasks.hook(task, "calibrated_outputs")
  if calibration is not None and outputs_for is not None:
    calibrated, described = outputs_for(config, calibration)

  def fn(*arrays):
    outputs = step(state, dict(zip(names, arrays)))
    return outputs if calibrated is None else {**outputs, **calibrated(outputs)}

  return fn, names, inputs, described


def _calibration_entries(task, described: Optional[dict[str, Any]]) -> dict[str, Any]:
  """The JSON's calibration entries: the calibration, or how to fit one for a task that
  calibrates (none for a classifier: its probability is its score)."""
  if described is not None:
    return {"calibrated": True, "calibration": described}
  if tasks.hook(task, "calibrate") is None:
    return {}
  return {
    "calibrated": False,
    "calibration": (
      "the outputs are the raw statistics, no scores or alarms comparable between videos; fit a "
      "calibration (vad-jax calibrate --workdir RUN [--videos NORMAL_VIDEOS]) and export again"
    ),
  }


def export(
  config: ml_collections.ConfigDict,
  state: Any,
  path: str | pathlib.Path,
  calibration: Optional[Mapping[str, Any]] = None,
) -> pathlib.Path:
  """Writes the serialised scoring program to ``path`` and its description to
  ``path`` with the suffix ``.json``; returns ``path``. With a ``calibration`` (a
  task that calibrates) the program also returns calibrated scores and alarms."""
  path = pathlib.Path(path)
  fn, names, examples, described = scoring_function(config, state, calibration)
  (batch,) = jax.export.symbolic_shape("batch")
  specs = [jax.ShapeDtypeStruct((batch, *np.shape(x)[1:]), np.asarray(x).dtype) for x in examples]
  program = jax.export.export(jax.jit(fn))(*specs).serialize()
  outputs = jax.eval_shape(fn, *[jax.ShapeDtypeStruct((2, *s.shape[1:]), s.dtype) for s in specs])
  data = config.data
  task = tasks.for_config(config)
  inputs = task.input_description(config)
  description = {
    "format_version": FORMAT_VERSION,
    "jax_version": jax.__version__,
    "model": config.model.name,
    "precision": precision.of_config(config).name,
    "program": {"file": path.name, "bytes": len(program), "sha256": hashlib.sha256(program).hexdigest()},
    "inputs": [
      {"name": n, "shape": ["batch", *map(int, s.shape[1:])], "dtype": str(s.dtype)} for n, s in zip(names, specs)
    ],
    "outputs": {k: {"shape": ["batch", *map(int, v.shape[1:])], "dtype": str(v.dtype)} for k, v in outputs.items()},
    "preprocessing": {
      "image_size": [int(s) for s in data.image_size],
      "channels": int(data.channels),
      "scaling": inputs["scaling"],
      "resize": "Pillow bilinear (vad_jax.data.preprocessing.prepare_image)",
    },
    "window": inputs["window"],
    **_calibration_entries(task, described),
  }
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")  # whole or not at all, as the description
  tmp.write_bytes(program)
  tmp.replace(path)
  workdir_lib.write_text_atomic(description_path(path), json.dumps(description, indent=2) + "\n")
  return path


def description_path(path: str | pathlib.Path) -> pathlib.Path:
  """The JSON beside an exported program."""
  return pathlib.Path(path).with_suffix(".json")


def describe(path: str | pathlib.Path) -> dict[str, Any]:
  """The description of the program at ``path`` (its JSON); ``ValueError`` naming the
  JSON when it is missing, unreadable or lacks the program's size and sha256."""
  path = pathlib.Path(path)
  json_path = description_path(path)
  again = EXPORT_COMMAND.format(path=path)
  try:
    description = json.loads(json_path.read_text())
  except FileNotFoundError:
    raise ValueError(f"{json_path} is missing: it describes and checks {path}; export it again: {again}") from None
  except (OSError, ValueError) as error:
    raise ValueError(f"{json_path} is unreadable ({error}); export it again: {again}") from None
  program = description.get("program") if isinstance(description, dict) else None
  if not isinstance(program, dict) or not {"bytes", "sha256"} <= set(program):
    raise ValueError(
      f"{json_path} records no size and sha256 of {path} (format_version "
      f"{description.get('format_version') if isinstance(description, dict) else None!r}, "
      f"{FORMAT_VERSION} has them); export it again: {again}"
    )
  return description


def load(path: str | pathlib.Path) -> jax.export.Exported:
  """The exported program at ``path``, after checking its size and sha256 against the
  JSON beside it; ``ValueError`` naming the file when it is truncated or damaged."""
  path = pathlib.Path(path)
  recorded = describe(path)["program"]
  program = path.read_bytes()
  again = EXPORT_COMMAND.format(path=path)
  if len(program) < recorded["bytes"]:
    raise ValueError(f"{path} is truncated: {len(program)} of {recorded['bytes']} bytes; export it again: {again}")
  if len(program) != recorded["bytes"]:
    raise ValueError(
      f"{path} has {len(program)} bytes, {recorded['bytes']} were exported (see {description_path(path)}); "
      f"export it again: {again}"
    )
  digest = hashlib.sha256(program).hexdigest()
  if digest != recorded["sha256"]:
    raise ValueError(
      f"{path}: sha256 differs from the one recorded in {description_path(path)} ({digest} != "
      f"{recorded['sha256']}): the file is damaged; export it again: {again}"
    )
  return jax.export.deserialize(program)
