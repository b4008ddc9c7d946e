"""A trained model's scoring function, serialised with ``jax.export``.

The exported program maps the model's inputs (a batch of windows of frames already
preprocessed, and boxes for HybridModel-1) to the task's per-window outputs (the
dual-stream network: PSNR of the fused and per-stream predictions and the memory
distances of the predicted frame; the classifiers: per-frame and per-clip anomaly
probabilities). The weights are part of the program. It runs with JAX alone, without
this package:

  import jax, numpy as np
  scoring = jax.export.deserialize(open("model.jaxexport", "rb").read())
  outputs = scoring.call(windows)  # windows: float32 [B, T, h, w, c], see the .json beside it

The batch dimension is symbolic (any batch size); a JSON file beside the program
records the inputs, outputs and the preprocessing the inputs need.
"""

import functools
import json
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np

from vad_jax import tasks

FORMAT_VERSION = 1


def scoring_function(config: ml_collections.ConfigDict, state: Any):
  """``(fn, input names, example inputs)``: ``fn(*inputs)`` is the task's ``eval_step``
  on a batch made of the model's inputs, with ``state`` closed over."""
  task = tasks.for_config(config)
  model = task.build_model(config)
  batch, _ = task.example_batch(config, 1)
  inputs = task.model_inputs(config, batch)
  names = [next(k for k, v in batch.items() if v is x) for x in inputs]
  step = functools.partial(task.eval_step, model=model, config=config)

  def fn(*arrays):
    return step(state, dict(zip(names, arrays)))

  return fn, names, inputs


def export(config: ml_collections.ConfigDict, state: Any, path: str | pathlib.Path) -> pathlib.Path:
  """Writes the serialised scoring program to ``path`` and its description to
  ``path`` with the suffix ``.json``; returns ``path``."""
  path = pathlib.Path(path)
  fn, names, examples = scoring_function(config, state)
  (batch,) = jax.export.symbolic_shape("batch")
  specs = [jax.ShapeDtypeStruct((batch, *np.shape(x)[1:]), np.asarray(x).dtype) for x in examples]
  exported = jax.export.export(jax.jit(fn))(*specs)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(exported.serialize())
  outputs = jax.eval_shape(fn, *[jax.ShapeDtypeStruct((2, *s.shape[1:]), s.dtype) for s in specs])
  data = config.data
  inputs = tasks.for_config(config).input_description(config)
  description = {
    "format_version": FORMAT_VERSION,
    "jax_version": jax.__version__,
    "model": config.model.name,
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
  }
  path.with_suffix(".json").write_text(json.dumps(description, indent=2) + "\n")
  return path
