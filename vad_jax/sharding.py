"""The device mesh, the two shardings the project uses, and global batches.

Every array in the project lives on one mesh with a single axis ``"data"`` spanning all
devices of all processes:

* parameters and model state are replicated: ``replicated(mesh)`` (``P()``);
* batches are split along their leading dimension: ``data_sharded(mesh)``
  (``P("data")``).

Each host only ever holds its own slice of a global batch; ``global_batch`` stitches the
slices of all hosts into global ``jax.Array`` s without moving data between hosts.

The mesh axis is ``AxisType.Auto``. JAX 0.10 makes ``jax.make_mesh`` default to
``Explicit`` axes, under which sharding becomes part of every array's type and plain
model code (reshapes, ``jnp.mean`` over the batch, ...) is rejected unless annotated;
``Auto`` leaves those decisions to the compiler, which is what the models here assume.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

# Environment variables read by ``maybe_initialize_distributed``.
_COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"  # also read by JAX itself
_NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
_PROCESS_ID_ENV = "JAX_PROCESS_ID"
_FORCE_ENV = "VAD_JAX_DISTRIBUTED"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Returns a one-axis mesh ``("data",)`` over ``devices`` (default: all devices).

  ``devices`` defaults to ``jax.devices()``, i.e. the devices of every process, so in a
  multi-host run the mesh is global and identical on all hosts.
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("make_mesh needs at least one device.")
  return jax.make_mesh(
    (len(devices),),
    (DATA_AXIS,),
    axis_types=(jax.sharding.AxisType.Auto,),
    devices=devices,
  )


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy of an array on every device (``P()``)."""
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits an array's leading (batch) dimension over ``"data"``."""
  return NamedSharding(mesh, P(DATA_AXIS))


def global_batch(mesh: Mesh, local_batch_tree: Any) -> Any:
  """Turns this host's slice of a batch into global arrays sharded ``P("data")``.

  Args:
    mesh: the mesh from ``make_mesh``.
    local_batch_tree: a pytree of host arrays (numpy), each ``[local_batch, ...]``. Every
      host must pass the same structure, shapes and dtypes; ``local_batch`` must be a
      multiple of the number of devices this host addresses.

  Returns:
    The same pytree of ``jax.Array`` s of shape ``[local_batch * process_count, ...]``.
    Host ``p`` 's rows land on host ``p`` 's devices, in the order those devices appear
    in the mesh.
  """
  sharding = data_sharded(mesh)
  num_local_devices = len(mesh.local_devices)

  def to_global(x):
    x = np.asarray(x)
    if x.ndim == 0:
      raise ValueError("global_batch needs arrays with a leading batch dimension.")
    if x.shape[0] % num_local_devices:
      raise ValueError(
        f"Local batch of {x.shape[0]} rows cannot be split evenly over this host's {num_local_devices} devices."
      )
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(to_global, local_batch_tree)


def serial_dispatch() -> bool:
  """Whether programs with collectives must wait for the previous one before dispatch:
  on the CPU backend with several devices (``dispatch_in_order``)."""
  return jax.default_backend() == "cpu" and jax.device_count() > 1


def dispatch_in_order(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
  """``[fn(item) for item in items]`` with the outputs left on the device.

  On the CPU backend with several devices each call waits for the previous one to
  finish before it is dispatched. Independent programs that contain collectives (an
  evaluation's batches), dispatched faster than they run, fill XLA:CPU's execution
  threads with each device waiting in the rendezvous of a different program; XLA aborts
  the process after 40 s (``rendezvous.cc: Termination timeout``). Training steps,
  though each depends on the state the previous one returns, hit the same abort on a
  loaded machine (``train.py`` waits the same way, ``serial_dispatch``).
  ``docs/RESULTS.md`` records the reproduction; ``tests/test_sharding.py`` checks this path. On accelerators
  the calls are dispatched asynchronously as usual.
  """
  serialize = serial_dispatch()
  outputs: list[Any] = []
  for item in items:
    if serialize and outputs:
      jax.block_until_ready(outputs[-1])
    outputs.append(fn(item))
  return outputs


def gather(batches: Sequence[Any]) -> dict[str, np.ndarray]:
  """Concatenates host copies of per-batch outputs and drops padding examples.

  Each batch is a mapping of arrays with a leading example axis and a ``valid`` mask
  (the evaluation iterators pad their last batch); ``valid`` itself is dropped.
  """
  parts: dict[str, list[np.ndarray]] = {}
  for batch in batches:
    valid = np.asarray(batch["valid"]).astype(bool).reshape(-1)
    for key, value in batch.items():
      if key != "valid":
        parts.setdefault(key, []).append(np.asarray(value).reshape(valid.size, *np.shape(value)[1:])[valid])
  if not parts:
    raise ValueError(
      "evaluation produced no frames: the test split is empty or every video is shorter than the clip length"
    )
  return {key: np.concatenate(values) for key, values in parts.items()}


def fetch(outputs: Sequence[Any]) -> dict[str, np.ndarray]:
  """One transfer of per-batch device outputs (gathered from all hosts), padding dropped."""
  if jax.process_count() > 1:
    return gather(multihost_utils.process_allgather(list(outputs), tiled=True))
  return gather(jax.device_get(list(outputs)))


def maybe_initialize_distributed(
  *,
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  force: bool = False,
) -> bool:
  """Initialises ``jax.distributed`` only when this process is part of a multi-host job.

  Must be called before anything touches a JAX backend (``jax.devices()``, any
  computation). Decides as follows, first match wins:

  1. JAX's distributed runtime is already initialised: nothing to do.
  2. ``VAD_JAX_DISTRIBUTED=0`` in the environment: never initialise.
  3. ``coordinator_address`` is given (e.g. from a command-line flag), or the
     ``JAX_COORDINATOR_ADDRESS`` environment variable is set: initialise with that
     address; the process count and id come from the arguments or from
     ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, or else from JAX's cluster
     auto-detection.
  4. ``force=True`` or ``VAD_JAX_DISTRIBUTED=1``: initialise with JAX's automatic
     cluster detection (Cloud TPU pods, Slurm, Open MPI, Kubernetes).
  5. A Slurm job step with more than one task (``SLURM_NTASKS`` > 1 together with
     ``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_PROCID``, ``SLURM_LOCALID``)
     or an Open MPI launch with more than one rank (``OMPI_MCA_orte_hnp_uri`` and
     ``OMPI_COMM_WORLD_SIZE`` > 1): initialise with auto-detection.
  6. Otherwise: single process, nothing to do.

  Returns:
    True when this call initialised the distributed runtime.
  """
  if jax.distributed.is_initialized():
    return False
  env = os.environ
  if env.get(_FORCE_ENV, "").strip() == "0":
    return False

  coordinator_address = coordinator_address or env.get(_COORDINATOR_ENV) or None
  if coordinator_address is not None:
    if num_processes is None and env.get(_NUM_PROCESSES_ENV):
      num_processes = int(env[_NUM_PROCESSES_ENV])
    if process_id is None and env.get(_PROCESS_ID_ENV):
      process_id = int(env[_PROCESS_ID_ENV])
    logging.info(
      "Initialising jax.distributed: coordinator=%s num_processes=%s process_id=%s",
      coordinator_address,
      num_processes,
      process_id,
    )
    jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
    )
    return True

  if force or env.get(_FORCE_ENV, "").strip() == "1" or _multi_process_launcher():
    logging.info("Initialising jax.distributed with cluster auto-detection.")
    jax.distributed.initialize()
    return True
  return False


def _multi_process_launcher() -> bool:
  """Whether Slurm or Open MPI started this process as one of several."""
  env = os.environ
  slurm_keys = (
    "SLURM_JOB_ID",
    "SLURM_STEP_NODELIST",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
  )
  if all(k in env for k in slurm_keys) and _as_int(env["SLURM_NTASKS"]) > 1:
    return True
  if "OMPI_MCA_orte_hnp_uri" in env and _as_int(env.get("OMPI_COMM_WORLD_SIZE")) > 1:
    return True
  return False


def _as_int(value: str | None) -> int:
  try:
    return int(value or 0)
  except ValueError:
    return 0
