"""Keras HDF5 weights <-> Flax variables (params and batch_stats), with h5py only.

Supported file layout: the legacy Keras HDF5 weights layout, written by Keras 2
``model.save_weights("x.h5")`` / ``model.save("x.h5")`` (under ``model_weights``) and by
Keras 3's legacy-H5 path (``model.save("x.h5")``), and used by the ``keras.applications``
ImageNet files (e.g. ``efficientnetv2-b0_notop.h5``)::

    /                                 attrs: layer_names, backend, keras_version
    /<layer>/                         attrs: weight_names = ["<layer>/kernel:0", ...]
    /<layer>/<layer>/kernel:0         dataset (Keras shape)

A weight is identified by its ``weight_names`` entry: the last path component without
``":0"`` is the variable (``kernel``, ``bias``, ``gamma``...), the component before it is
the Keras layer. Keying on the weight name rather than the top-level group also reads
files where the network is nested inside a bigger Keras model (e.g. ``Sequential([base,
head])``: group ``efficientnetv2-b0`` holding ``stem_conv/kernel:0``, ...).
Keras 3 writes the same layout with two differences, both read: names without ``":0"``
(``block4a_dwconv2/kernel``), and a depthwise convolution's kernel named ``kernel``
instead of Keras 2's ``depthwise_kernel`` (same ``[k, k, c, 1]`` shape).
The Keras 3 ``.weights.h5`` format (``layers/<name>/vars/0``, no variable names) is not
read: it is detected and rejected with an explanation. Reading needs ``h5py`` (the
optional extra ``vad_jax[weights]``).

Name mapping: the Keras layer name of a Flax module is ``"_".join(module_path)`` (see
``vad_jax.hybrid.efficientnet``); variables map as

=========================  ==========================  ==============================
Flax (collection/name)     Keras                       notes
=========================  ==========================  ==============================
params/kernel              kernel                      Conv2D, Dense, ConvLSTM2D
params/kernel (dwconv)     depthwise_kernel            ``[k,k,c,1]`` <-> ``[k,k,1,c]``
params/recurrent_kernel    recurrent_kernel            ConvLSTM2D
params/bias                bias (beta for BatchNorm)
params/scale               gamma                       BatchNorm
batch_stats/mean           moving_mean                 BatchNorm
batch_stats/var            moving_variance             BatchNorm
=========================  ==========================  ==============================

A module is depthwise when its name ends with one of ``DEPTHWISE_SUFFIXES``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax.core import unfreeze
from flax.traverse_util import flatten_dict, unflatten_dict

Array = Any

DEPTHWISE_SUFFIXES = ("dwconv2", "dwconv", "depthwise_conv")

# Keras order of the variables of each layer kind (the order of ``weight_names``).
_KERAS_ORDER = (
  "kernel",
  "depthwise_kernel",
  "recurrent_kernel",
  "bias",
  "gamma",
  "beta",
  "moving_mean",
  "moving_variance",
)


def _is_depthwise(layer: str) -> bool:
  return layer.endswith(DEPTHWISE_SUFFIXES)


def _keras_variable(layer: str, collection: str, name: str, is_bn: bool) -> str:
  if collection == "batch_stats":
    return {"mean": "moving_mean", "var": "moving_variance"}[name]
  if name == "scale":
    return "gamma"
  if name == "bias":
    return "beta" if is_bn else "bias"
  if name == "kernel" and _is_depthwise(layer):
    return "depthwise_kernel"
  return name


def _to_keras_array(keras_var: str, value: np.ndarray) -> np.ndarray:
  if keras_var == "depthwise_kernel":  # Flax [k, k, 1, c] -> Keras [k, k, c, 1]
    return np.swapaxes(value, -1, -2)
  return value


def _from_keras_array(keras_var: str, value: np.ndarray) -> np.ndarray:
  if keras_var == "depthwise_kernel":  # Keras [k, k, c, m=1] -> Flax [k, k, 1, c]
    if value.shape[-1] != 1:
      raise ValueError(f"depth multiplier {value.shape[-1]} != 1 is not supported")
    return np.swapaxes(value, -1, -2)
  return value


def _get_subtree(tree: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
  for p in path:
    tree = tree[p]
  return tree


def flax_to_keras_layers(
  variables: Mapping[str, Any], *, subtree: Sequence[str] = ()
) -> dict[str, dict[str, np.ndarray]]:
  """``{keras_layer: {keras_variable: array in Keras layout}}`` from Flax variables.

  Args:
    variables: ``{"params": ..., "batch_stats": ...}`` (other collections are ignored).
    subtree: module path of the network inside ``variables`` (e.g. ``("backbone",)``).
  """
  per_module: dict[tuple[str, ...], dict[tuple[str, str], np.ndarray]] = {}
  for collection in ("params", "batch_stats"):
    if collection not in variables:
      continue
    tree = _get_subtree(unfreeze(variables[collection]), subtree)
    for path, value in flatten_dict(tree).items():
      per_module.setdefault(path[:-1], {})[(collection, path[-1])] = np.asarray(value)
  layers: dict[str, dict[str, np.ndarray]] = {}
  for module_path, leaves in per_module.items():
    layer = "_".join(module_path)
    is_bn = ("params", "scale") in leaves
    out = {}
    for (collection, name), value in leaves.items():
      var = _keras_variable(layer, collection, name, is_bn)
      out[var] = _to_keras_array(var, value)
    if layer in layers:
      raise ValueError(f"two Flax modules map to the Keras layer name {layer!r}")
    layers[layer] = dict(
      sorted(out.items(), key=lambda kv: _KERAS_ORDER.index(kv[0]) if kv[0] in _KERAS_ORDER else len(_KERAS_ORDER))
    )
  return layers


def _h5py():
  """The ``h5py`` module, or an ``ImportError`` that says how to install it."""
  try:
    import h5py  # noqa: PLC0415  (optional dependency: only to read or write .h5 files)
  except ImportError as error:
    raise ImportError(
      "Reading or writing Keras .h5 weights needs h5py, which is not installed: "
      "pip install 'vad_jax[weights]' (or pip install h5py)."
    ) from error
  return h5py


def _read_name_list(group, name: str) -> list[str]:
  """Keras string-list attribute, possibly split into ``name0``, ``name1``... chunks."""

  def dec(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)

  if name in group.attrs:
    return [dec(v) for v in group.attrs[name]]
  out, i = [], 0
  while f"{name}{i}" in group.attrs:
    out.extend(dec(v) for v in group.attrs[f"{name}{i}"])
    i += 1
  return out


def read_keras_h5(path: str | os.PathLike, *, group: str | None = None) -> dict[str, dict[str, np.ndarray]]:
  """``{keras_layer: {variable: array}}`` from a legacy Keras HDF5 weights/model file.

  Args:
    path: ``.h5`` file.
    group: optional top-level group (Keras layer or nested model name) to restrict to.
  """
  h5py = _h5py()
  layers: dict[str, dict[str, np.ndarray]] = {}
  with h5py.File(path, "r") as f:
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs and "layer_names0" not in root.attrs:
      if "layers" in root or "vars" in root:
        raise ValueError(
          f"{path} is a Keras 3 '.weights.h5' file: its weights are unnamed ('layers/<name>/vars/0'), "
          "so they cannot be matched to this model's layers. Convert it to the legacy HDF5 "
          "layout, which names every weight and which this loader reads (from Keras 2 and "
          "Keras 3 alike): in Keras 3, build the model, model.load_weights('x.weights.h5'), "
          "then model.save('x.h5') (an .h5 name selects the legacy format)."
        )
      raise ValueError(f"{path}: no 'layer_names' attribute; not a Keras HDF5 weights file")
    groups = _read_name_list(root, "layer_names")
    if group is not None:
      if group not in groups:
        raise KeyError(f"group {group!r} not in file; top-level layers: {groups[:20]}...")
      groups = [group]
    for g in groups:
      grp = root[g]
      for wname in _read_name_list(grp, "weight_names"):
        parts = wname.split("/")
        var = parts[-1].split(":")[0]
        layer = parts[-2] if len(parts) >= 2 else g
        arr = np.asarray(grp[wname])
        if var in layers.setdefault(layer, {}):
          raise ValueError(f"weight {layer}/{var} appears twice in {path}")
        layers[layer][var] = arr
  return layers


def keras_layers_to_flax(
  layers: Mapping[str, Mapping[str, np.ndarray]],
  variables: Mapping[str, Any],
  *,
  subtree: Sequence[str] = (),
  strict: bool = True,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
  """Copy Keras arrays into (a copy of) Flax ``variables``.

  Every ``params``/``batch_stats`` leaf under ``subtree`` must find its Keras weight with
  the same shape (after the depthwise transpose); otherwise ``KeyError``/``ValueError``
  (``strict``) or the leaf keeps its value and is listed in ``report["missing"]``.

  Returns:
    ``(new_variables, report)`` with ``report = {"loaded": [...], "missing": [...],
    "unused": [...]}`` (Keras layers the model does not have, e.g. ``predictions`` of a
    with-top file loaded into a no-top model).
  """
  new = {k: unfreeze(v) for k, v in variables.items()}
  expected = flax_to_keras_layers(variables, subtree=subtree)
  loaded, missing = [], []
  for collection in ("params", "batch_stats"):
    if collection not in new:
      continue
    tree = _get_subtree(new[collection], subtree)
    flat = flatten_dict(tree)
    is_bn = {p[:-1] for p in flatten_dict(_get_subtree(new.get("params", {}), subtree)) if p[-1] == "scale"}
    for path, old in flat.items():
      layer = "_".join(path[:-1])
      var = _keras_variable(layer, collection, path[-1], path[:-1] in is_bn)
      src = layers.get(layer, {}).get(var)
      if src is None and var == "depthwise_kernel":  # Keras 3 names it `kernel`.
        src = layers.get(layer, {}).get("kernel")
      if src is None:
        if strict:
          raise KeyError(f"Keras weight {layer}/{var} not found (for Flax {collection}/{'/'.join(path)})")
        missing.append(f"{layer}/{var}")
        continue
      value = _from_keras_array(var, np.asarray(src))
      if value.shape != tuple(old.shape):
        raise ValueError(f"shape mismatch for {layer}/{var}: file {value.shape} vs model {tuple(old.shape)}")
      flat[path] = np.asarray(value, dtype=np.asarray(old).dtype)
      loaded.append(f"{layer}/{var}")
    tree_new = unflatten_dict(flat)
    if subtree:
      parent = _get_subtree(new[collection], subtree[:-1])
      parent[subtree[-1]] = tree_new
    else:
      new[collection] = tree_new
  unused = sorted(set(layers) - set(expected))
  return new, {"loaded": loaded, "missing": missing, "unused": unused}


def load_keras_h5(
  path: str | os.PathLike,
  variables: Mapping[str, Any],
  *,
  subtree: Sequence[str] = (),
  group: str | None = None,
  strict: bool = True,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
  """Load a Keras HDF5 weights file into Flax ``variables`` (see module docstring).

  Example (ImageNet EfficientNetV2-B0 into the hybrid model's backbone)::

      variables = jax.jit(model.init, static_argnames="train")(key, *inputs, train=False)
      variables, report = load_keras_h5("efficientnetv2-b0_notop.h5", variables,
                                        subtree=("backbone",))
  """
  return keras_layers_to_flax(read_keras_h5(path, group=group), variables, subtree=subtree, strict=strict)


def _bytes_array(names: Sequence[str]) -> np.ndarray:
  """Fixed-length byte strings, the attribute type Keras writes (``np.asarray`` of bytes)."""
  return np.asarray([n.encode("utf8") for n in names])


def save_keras_h5(
  path: str | os.PathLike,
  variables: Mapping[str, Any],
  *,
  subtree: Sequence[str] = (),
  group: str | None = None,
  keras_version: str = "2.15.0",
) -> None:
  """Write Flax ``variables`` as a legacy Keras HDF5 weights file (the reverse of loading).

  Args:
    path: output ``.h5``.
    variables: Flax variables.
    subtree: module path of the network inside ``variables``.
    group: if given, nest all layers in one top-level group of that name (the layout of a
      Keras model nested inside another one); else one top-level group per layer.
    keras_version: value of the ``keras_version`` attribute.
  """
  h5py = _h5py()
  layers = flax_to_keras_layers(variables, subtree=subtree)
  with h5py.File(path, "w") as f:
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = keras_version.encode("utf8")
    if group is None:
      f.attrs["layer_names"] = _bytes_array(list(layers))
      for layer, weights in layers.items():
        g = f.create_group(layer)
        names = [f"{layer}/{var}:0" for var in weights]
        g.attrs["weight_names"] = _bytes_array(names)
        for n, value in zip(names, weights.values()):
          g.create_dataset(n, data=value)
    else:
      f.attrs["layer_names"] = _bytes_array([group])
      g = f.create_group(group)
      names, values = [], []
      for layer, weights in layers.items():
        for var, value in weights.items():
          names.append(f"{layer}/{var}:0")
          values.append(value)
      # Large name lists are chunked like Keras does past the 64 KB attribute limit.
      chunk = 1000
      if len(names) <= chunk:
        g.attrs["weight_names"] = _bytes_array(names)
      else:
        for i in range(0, len(names), chunk):
          g.attrs[f"weight_names{i // chunk}"] = _bytes_array(names[i : i + chunk])
      for n, value in zip(names, values):
        g.create_dataset(n, data=value)
