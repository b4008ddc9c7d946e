"""Measuring a model: inference frames/s, training-step time, FLOPs per frame, achieved
GFLOP/s and the machine's measured matmul peak (``run``), and the detector's frames/s end
to end (``detector_throughput``); ``vad-jax benchmark`` prints them as one table.

FLOPs come from XLA's cost analysis of the compiled programs (multiply-adds count 2). For
a model with a ``model.conv_impl`` setting they are counted on the program with XLA's
native convolutions whatever implementation is timed, so every implementation is
credited with the same work (patches @ kernel would also count the zero padding).
"Frames" are predicted frames for the prediction network (one per clip of
``sequence_length`` input frames) and classified frames for the classifiers (``batch x
clip_frames`` per call; the ConvLSTM scores a clip, so its frames/s is clip frames read).
Inputs are the task's example batch with random frames in [0, 1) (and random boxes
where the model takes boxes), so the box source's host time is not included.
"""

import functools
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from vad_jax import precision, sharding, tasks
from vad_jax import state as state_lib
from vad_jax.detector import Detector
from vad_jax.video import annotation, sources

PEAK_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def time_call(fn, *args, steps: int) -> float:
  """Median seconds per call after one warm-up call (compilation excluded)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def flops_of(program) -> float:
  """XLA's FLOP count of a compiled program (``jax.jit(f).lower(...).compile()``)."""
  analysis = program.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan"))) if analysis else float("nan")


def matmul_peak(dtype=jnp.float32, n: int | None = None, steps: int = 5) -> float:
  """Measured GFLOP/s of a square ``n x n`` matmul on the default device (``n``: 2048 on a
  CPU, 8192 on an accelerator, which a 2048 matmul leaves mostly idle)."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  seconds = time_call(jax.jit(jnp.dot), a, b, steps=steps)
  return 2 * n**3 / seconds / 1e9


def random_inputs(task: tasks.Scoring, config, batch: int) -> tuple[dict[str, jax.Array], int]:
  """The task's example batch with random frames (and random boxes where present)."""
  inputs, frames_per_call = task.example_batch(config, batch)
  inputs = dict(inputs)
  inputs["frames"] = jax.random.uniform(jax.random.key(0), inputs["frames"].shape)
  if "boxes" in inputs:
    h, w = config.data.image_size
    corner = jax.random.uniform(jax.random.key(1), inputs["boxes"].shape[:-1] + (2,), maxval=min(h, w) / 2)
    inputs.update(
      boxes=jnp.concatenate([corner, corner + min(h, w) / 4], axis=-1),
      box_scores=jnp.ones(inputs["box_scores"].shape),
      box_valid=jnp.ones(inputs["box_valid"].shape, bool),
    )
  return {k: jnp.asarray(v) for k, v in inputs.items()}, frames_per_call


def counting_config(config):
  """The config whose programs' FLOPs are reported: native convolutions if the model has a
  choice (the same work for every implementation)."""
  if config.model.get("conv_impl", "native") == "native":
    return config
  counting = config.copy_and_resolve_references()
  counting.model.conv_impl = "native"
  return counting


def run(config, batch: int, steps: int, skip_train: bool = False, time_eval: bool = True) -> dict[str, float]:
  """The benchmark's figures for ``config``'s model at ``batch`` (see the module docstring).

  The peak is a matmul in the model's compute dtype (``model.dtype`` resolved, float32 if unset),
  so a bfloat16 model is compared with the bfloat16 peak.
  """
  task = tasks.for_config(config)
  model = task.build_model(config)
  counted = counting_config(config)
  counting_model = task.build_model(counted) if counted is not config else None
  inputs, frames_per_call = random_inputs(task, config, batch)
  tx = state_lib.make_optimizer(config, 1000)
  state = jax.jit(lambda rng: state_lib.create(model, task.init_variables(model, config, rng, inputs), tx))(
    jax.random.key(1)
  )

  # The forward pass alone: the model's output without the task's statistics.
  def forward_of(model):
    return jax.jit(
      lambda s, x: jax.tree.leaves(model.apply(s.variables, *task.model_inputs(config, x), train=False)[0])
    ).lower(state, inputs)

  # Each timed program is compiled once; the FLOPs come from it unless another
  # implementation is counted (counting_config).
  forward = forward_of(model).compile()
  forward_flops = flops_of(forward_of(counting_model).compile() if counting_model else forward)
  result = {
    "params (M)": sum(x.size for x in jax.tree.leaves(state.params)) / 1e6,
    "forward GFLOP/frame": forward_flops / frames_per_call / 1e9,
  }
  seconds = time_call(forward, state, inputs, steps=steps)
  result["forward frames/s"] = frames_per_call / seconds
  result["forward GFLOP/s"] = result["forward GFLOP/frame"] * frames_per_call / seconds
  if time_eval:
    eval_fn = jax.jit(functools.partial(task.eval_step, model=model, config=config))
    result["eval step frames/s"] = frames_per_call / time_call(eval_fn, state, inputs, steps=steps)
  if not skip_train:

    def step_of(model, config):
      train_step = functools.partial(task.train_step, model=model, config=config)
      return jax.jit(train_step, donate_argnums=0).lower(state, inputs)

    step = step_of(model, config).compile()
    result["train GFLOP/step"] = flops_of(step_of(counting_model, counted).compile() if counting_model else step) / 1e9
    state_copy = jax.tree.map(jnp.copy, state)
    # Donated state: thread it through the timed calls.
    state_copy, _ = step(state_copy, inputs)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      state_copy, metrics = step(state_copy, inputs)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    result["train step (s)"] = float(np.median(times))
    result["train frames/s"] = frames_per_call / result["train step (s)"]
    result["train GFLOP/s"] = result["train GFLOP/step"] / result["train step (s)"]
  dtype = precision.compute_dtype(config)
  peak = matmul_peak(dtype, steps=steps)
  result[f"matmul peak {PEAK_NAMES.get(dtype.name, dtype.name)} GFLOP/s"] = peak
  result["forward % of peak"] = 100 * result["forward GFLOP/s"] / peak
  if not skip_train:
    result["train % of peak"] = 100 * result["train GFLOP/s"] / peak
  return result


def detector_throughput(config, num_frames: int, size: tuple[int, int], batch: int) -> dict[str, float]:
  """Frames/s of the detector on a generated video file, PyAV decoding, the pipeline's
  preprocessing and the model included, as a live camera would be scored (the
  dual-stream network with causal normalisation; a calibrated ``score`` costs the same,
  a calibrated ``stream`` also fetches the error maps, as the annotated path does, for
  its alarm boxes): ``Detector.score`` (results at the end), ``Detector.stream`` (each frame's
  result as its batch is scored) and ``detect --output``'s path (the stream with frames
  and error maps, drawn with heat maps and written to an H.264 file). One warm-up pass
  on a short video compiles the programs first."""
  task = tasks.for_config(config)
  model = task.build_model(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  state = state_lib.initial_state(task, model, config, state_lib.make_optimizer(config, 1), mesh)
  detector = Detector(config, state)
  rng = np.random.default_rng(0)
  base = rng.integers(0, 255, (size[0], size[1] + num_frames, 3), dtype=np.uint8)
  # A task with several normalisations of its score (the prediction network) is timed with
  # the causal one, which needs no calibration (a calibrated stream adds the error maps' transfer).
  normalisation = "causal" if "causal" in (tasks.hook(task, "NORMALISATIONS") or ()) else None
  timings = {}
  with tempfile.TemporaryDirectory() as tmp:
    video = pathlib.Path(tmp) / "camera.mp4"
    with sources.VideoWriter(video, 25.0) as writer:
      for i in range(num_frames):  # a texture panning right: every frame differs
        writer.write(base[:, i : i + size[1]])
    warm_up = np.stack([base[:, : size[1]]] * 24)
    detector.score(warm_up, batch_size=batch, normalisation=normalisation)  # compile
    for _ in detector.stream(warm_up, batch_size=batch, normalisation=normalisation, error_maps=True):
      pass
    start = time.perf_counter()
    result = detector.score(video, batch_size=batch, normalisation=normalisation)
    timings["score"] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in detector.stream(video, batch_size=batch, normalisation=normalisation):
      pass
    timings["stream"] = time.perf_counter() - start
    start = time.perf_counter()
    results = detector.stream(video, batch_size=batch, normalisation=normalisation, keep_frames=True, error_maps=True)
    with annotation.AnnotatedOutput(pathlib.Path(tmp) / "annotated.mp4", 25.0) as drawn:
      for r in results:
        drawn.add(r)
    timings["stream + annotated video"] = time.perf_counter() - start
  return {
    "video frames": float(num_frames),
    "scored frames": float(result.frames.size),
    **{f"{name} frames/s": num_frames / seconds for name, seconds in timings.items()},
  }
