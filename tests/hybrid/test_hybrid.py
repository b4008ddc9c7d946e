"""HybridModel-1 pieces: RoIAlign, boxes, AFFM, TCR loss, and the two frame-level models."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vad_jax.configs import classifier
from vad_jax.hybrid import boxes as boxes_lib
from vad_jax.hybrid.boxes import FileBoxSource, MotionBoxSource, OnnxDetectorBoxSource, decode_detections, pad_boxes
from vad_jax.hybrid.model import (
  AdaptiveFeatureFusion,
  HybridModel1,
  TinyEfficientNetHOGClassifier,
  TinyHybridModel1,
  pool_object_features,
)
from vad_jax.hybrid.roi_align import roi_align, roi_align_batched
from vad_jax.hybrid.tcr import class_weights_from_labels, tcr_loss, weighted_bce, window_mean

# ----------------------------------------------------------------------------- RoIAlign

# f(y, x) = 4 y + x on a 4x4 map: bilinear interpolation reproduces it exactly inside.
RAMP = (4.0 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(np.float32)[..., None]


def test_roi_align_aligned_interior_box():
  # Box [1, 3] x [1, 3] -> shifted by -0.5: [0.5, 2.5]; 2x2 bins of size 1; 2x2 samples at
  # 0.75 and 1.25 (bin 0), 1.75 and 2.25 (bin 1): bin means at 1.0 and 2.0.
  out = roi_align(jnp.asarray(RAMP), jnp.array([[1.0, 1.0, 3.0, 3.0]]), output_size=(2, 2), sampling_ratio=2)
  expected = np.array([[4 * 1 + 1, 4 * 1 + 2], [4 * 2 + 1, 4 * 2 + 2]], np.float32)
  np.testing.assert_allclose(np.asarray(out)[0, ..., 0], expected, atol=1e-6)


def test_roi_align_not_aligned_and_border_clamp():
  # aligned=False: no shift, [1, 3] -> samples 1.25, 1.75 | 2.25, 2.75: means 1.5 and 2.5.
  out = roi_align(jnp.asarray(RAMP), jnp.array([[1.0, 1.0, 3.0, 3.0]]), output_size=(2, 2), aligned=False)
  expected = np.array([[4 * 1.5 + 1.5, 4 * 1.5 + 2.5], [4 * 2.5 + 1.5, 4 * 2.5 + 2.5]], np.float32)
  np.testing.assert_allclose(np.asarray(out)[0, ..., 0], expected, atol=1e-6)
  # aligned, box [0, 2]: samples at -0.25 (clamped to 0) and 0.25 in bin 0:
  # mean of f at (0,0), (0,.25), (.25,0), (.25,.25) = (0 + .25 + 1 + 1.25) / 4 = 0.625.
  out = roi_align(jnp.asarray(RAMP), jnp.array([[0.0, 0.0, 2.0, 2.0]]), output_size=(2, 2))
  assert np.isclose(float(out[0, 0, 0, 0]), 0.625, atol=1e-6)
  # Samples beyond one pixel outside the map contribute zero: a box far outside.
  out = roi_align(jnp.asarray(RAMP), jnp.array([[10.0, 10.0, 12.0, 12.0]]), output_size=(1, 1))
  assert float(out[0, 0, 0, 0]) == 0.0


def test_roi_align_scale_and_batch():
  # spatial_scale 0.5: image box [2, 6] = feature box [1, 3], same as the interior case.
  feats = jnp.stack([jnp.asarray(RAMP), 2.0 * jnp.asarray(RAMP)])
  boxes = jnp.array([[[2.0, 2.0, 6.0, 6.0]], [[2.0, 2.0, 6.0, 6.0]]])
  out = roi_align_batched(feats, boxes, output_size=(2, 2), spatial_scale=0.5)
  assert out.shape == (2, 1, 2, 2, 1)
  np.testing.assert_allclose(np.asarray(out[1]), 2 * np.asarray(out[0]), atol=1e-6)
  assert np.isclose(float(out[0, 0, 0, 0, 0]), 5.0)
  seven = roi_align(jnp.zeros((8, 8, 3)), jnp.zeros((5, 4)))
  assert seven.shape == (5, 7, 7, 3)


def test_pool_object_features_weighting_and_empty_frames():
  feats = jnp.stack([jnp.full((4, 4, 2), 1.0), jnp.full((4, 4, 2), 1.0)])
  feats = feats.at[0, :2].set(3.0)  # top half of frame 0 is 3, bottom half 1
  # Boxes whose samples stay inside one half (no bilinear blending across the edge).
  boxes = jnp.array([[[0, 0, 8, 2], [0, 6, 8, 8]], [[0, 0, 8, 8], [0, 0, 8, 8]]], jnp.float32)
  scores = jnp.array([[0.75, 0.25], [1.0, 1.0]])
  valid = jnp.array([[True, True], [False, False]])
  obj, has = pool_object_features(feats, boxes, scores, valid, image_hw=(8, 8), output_size=(2, 2))
  # Frame 0: box 1 (top, value 3) weight .75, box 2 (bottom, value 1) weight .25.
  np.testing.assert_allclose(np.asarray(obj[0]), [2.5, 2.5], atol=1e-5)
  np.testing.assert_array_equal(np.asarray(obj[1]), [0.0, 0.0])
  np.testing.assert_array_equal(np.asarray(has)[:, 0], [1.0, 0.0])


# ----------------------------------------------------------------------------- boxes


def _moving_square_clip(t=6, size=32):
  clip = np.full((t, size, size, 3), 40, np.uint8)
  for i in range(t):
    clip[i, 8:16, 3 * i + 2 : 3 * i + 10] = 220
  return clip


def test_motion_boxes_find_the_moving_object():
  clip = _moving_square_clip()
  for background in ("median", "running_mean"):
    out = MotionBoxSource(max_boxes=3, background=background, min_area=8)(clip)
    assert out.boxes.shape == (6, 3, 4) and out.valid.shape == (6, 3)
    t = 4  # the square covers rows 8..15 and columns 14..21 in frame 4
    assert out.valid[t, 0] and out.scores[t, 0] > 0.5
    x1, y1, x2, y2 = out.boxes[t, 0]
    assert x1 <= 14 and x2 >= 22 and y1 <= 8 and y2 >= 16
    if background == "median":  # object + the 2-pixel dilation margin
      np.testing.assert_array_equal(out.boxes[t, 0], [12, 6, 24, 18])
      assert out.valid[:, 0].all() and not out.valid[:, 1].any()
    assert not out.valid[t, 2] and (out.boxes[~out.valid] == 0).all()
  static = np.repeat(clip[:1], 6, axis=0)
  assert not MotionBoxSource()(static).valid.any()


def test_file_box_sources_and_padding(tmp_path):
  js = tmp_path / "boxes.json"
  js.write_text(
    json.dumps({"v1": {"0": [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.9], [0, 0, 1, 1, 0.1]], "2": [[0, 0, 2, 2]]}})
  )
  out = FileBoxSource(js, max_boxes=2)(np.zeros((3, 8, 8, 3)), video="v1")
  np.testing.assert_array_equal(out.boxes[0], [[5, 6, 7, 8], [1, 2, 3, 4]])  # by score, truncated
  np.testing.assert_allclose(out.scores[0], [0.9, 0.5])
  np.testing.assert_array_equal(out.valid, [[True, True], [False, False], [True, False]])
  assert out.scores[2, 0] == 1.0  # missing score defaults to 1
  csv_path = tmp_path / "boxes.csv"
  csv_path.write_text("video,frame,x1,y1,x2,y2,score\nv1,7,0.25,0.5,0.75,1.0,0.8\n")
  out = FileBoxSource(csv_path, max_boxes=1, normalized=True)(np.zeros((1, 8, 16, 3)), video="v1", frame_indices=[7])
  np.testing.assert_allclose(out.boxes[0, 0], [4, 4, 12, 8])
  with pytest.raises(ValueError, match="video"):
    FileBoxSource(csv_path)(np.zeros((1, 8, 8, 3)))


def test_detector_decoding(tmp_path):
  rows = np.array([[[0, 0, 10, 10, 0.9, 0], [0, 0, 5, 5, 0.95, 2], [1, 1, 4, 4, 0.1, 0]]], np.float32)
  det = decode_detections(rows, score_threshold=0.25, class_ids=(0,), scale=(2.0, 0.5))
  np.testing.assert_allclose(det, [[0, 0, 20, 5, 0.9]])
  padded = pad_boxes([det, np.zeros((0, 5))], 2)
  assert padded.valid.tolist() == [[True, False], [False, False]]


def _tiny_detector(path, input_size=(8, 16)):
  """An ONNX "detector" in the YOLO-with-NMS layout: ``images [1, 3, H, W]`` -> ``[1, 2,
  6]`` rows ``(x1, y1, x2, y2, score, class)`` in input pixels: a person at (2, 1)-(10, 5)
  and a class-2 object at (0, 0)-(4, 4), both scored by the image's mean brightness."""
  import onnx
  from onnx import TensorProto, helper, numpy_helper

  rows = np.array([[[2, 1, 10, 5, 0, 0], [0, 0, 4, 4, 0, 2]]], np.float32)
  score_column = np.array([[[0, 0, 0, 0, 1, 0]]], np.float32)
  nodes = [
    helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),
    helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
    helper.make_node("Mul", ["mean3", "score_column"], ["scores"]),
    helper.make_node("Add", ["rows", "scores"], ["detections"]),
  ]
  initializers = [
    numpy_helper.from_array(rows, "rows"),
    numpy_helper.from_array(score_column, "score_column"),
    numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
  ]
  graph = helper.make_graph(
    nodes,
    "tiny_detector",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_size])],
    [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 2, 6])],
    initializers,
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
  model.ir_version = 8
  onnx.checker.check_model(model)
  onnx.save(model, path)
  return path


def test_onnx_detector_boxes_from_a_generated_model(tmp_path):
  """The ONNX source runs a real (tiny, generated) model through onnxruntime: frames are
  resized to the input size, scaled to [0, 1] and given channel-first; detections are
  kept by class and score and scaled back to the frame's pixels."""
  path = _tiny_detector(tmp_path / "tiny.onnx")
  source = OnnxDetectorBoxSource(path, max_boxes=2, input_size=(8, 16), score_threshold=0.25)
  frames = np.zeros((3, 16, 64, 3), np.uint8)
  frames[0] = 255  # bright: mean 1.0, the person is kept
  frames[1] = 51  # mean 0.2: below the 0.25 threshold
  frames[2, :, :, 0] = 255  # mean 1/3 over the three channels: kept, scored 1/3
  found = source(frames)
  assert found.boxes.shape == (3, 2, 4) and found.valid.tolist() == [[True, False], [False, False], [True, False]]
  np.testing.assert_allclose(found.boxes[0, 0], [8, 2, 40, 10])  # input (2, 1)-(10, 5) x (64/16, 16/8)
  np.testing.assert_allclose(found.scores[[0, 2], 0], [1.0, 1 / 3], rtol=1e-5)
  config = classifier.get_config("hybrid,synthetic,test")
  config.boxes.source, config.boxes.path = "onnx", str(path)
  assert isinstance(boxes_lib.make_box_source(config), OnnxDetectorBoxSource)
  with pytest.raises(FileNotFoundError, match="missing.onnx"):
    OnnxDetectorBoxSource(tmp_path / "missing.onnx")


# ----------------------------------------------------------------------------- AFFM


def test_affm_gate_in_unit_interval_and_fused_between_inputs():
  s = jax.random.normal(jax.random.key(0), (2, 5, 8)) * 3
  h = jax.random.normal(jax.random.key(1), (2, 5, 8)) * 3
  affm = AdaptiveFeatureFusion(hidden=4)
  variables = affm.init(jax.random.key(2), s, h)
  assert variables["params"]["w1"]["kernel"].shape == (16, 4)
  fused, g = affm.apply(variables, s, h)
  g = np.asarray(g)
  assert g.shape == (2, 5, 8) and (g > 0).all() and (g < 1).all() and g.std() > 0
  lo, hi = np.minimum(s, h), np.maximum(s, h)
  assert ((np.asarray(fused) >= lo - 1e-6) & (np.asarray(fused) <= hi + 1e-6)).all()
  np.testing.assert_allclose(np.asarray(fused), g * s + (1 - g) * h, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- TCR loss


def test_tcr_loss_hand_computed():
  # p = [0.5, 0.75, 0.25], y = [0, 1, 1]; n = 3 -> class weights 3/2 (y=0), 3/4 (y=1).
  logits = jnp.array([[0.0, np.log(3.0), -np.log(3.0)]])
  labels = jnp.array([[0, 1, 1]])
  np.testing.assert_allclose(np.asarray(class_weights_from_labels(labels)), [1.5, 0.75])
  # The window of 5 covers the whole clip: pbar = 0.5 everywhere; w = [1, .75, .75],
  # renormalised to mean 1: [1.2, 0.9, 0.9].
  bce = np.array([np.log(2.0), np.log(4.0 / 3.0), np.log(4.0)])
  cw = np.array([1.5, 0.75, 0.75])
  w = np.array([1.2, 0.9, 0.9])
  smooth = (0.25**2 + 0.5**2) / 2
  expected = np.sum(cw * w * bce) / 3 + 0.1 * smooth
  loss, aux = tcr_loss(logits, labels, gamma=1.0, lam=0.1)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(aux["confidence_weights"])[0], w, rtol=1e-5)
  np.testing.assert_allclose(float(aux["smoothness"]), smooth, rtol=1e-5)
  # gamma = 2 squares the raw weights before renormalising.
  w2 = np.array([1.0, 0.5625, 0.5625])
  w2 = w2 / w2.mean()
  loss2, _ = tcr_loss(logits, labels, gamma=2.0, lam=0.0)
  np.testing.assert_allclose(float(loss2), np.sum(cw * w2 * bce) / 3, rtol=1e-5)


def test_tcr_disabled_is_weighted_bce_and_window_mean():
  # jit once per configuration (cheaper on CPU than compiling every eager op).
  jit_tcr = jax.jit(tcr_loss, static_argnames=("gamma", "lam", "window", "tcr"))
  jit_bce = jax.jit(weighted_bce)
  logits = jax.random.normal(jax.random.key(0), (3, 7)) * 2
  labels = (jax.random.uniform(jax.random.key(1), (3, 7)) > 0.7).astype(jnp.int32)
  mask = jnp.ones((3, 7)).at[2, 5:].set(0.0)
  plain = jit_bce(logits, labels, mask=mask)
  off, _ = jit_tcr(logits, labels, mask=mask, tcr=False)
  neutral, _ = jit_tcr(logits, labels, mask=mask, gamma=0.0, lam=0.0)
  on, aux = jit_tcr(logits, labels, mask=mask, lam=0.0)
  np.testing.assert_allclose(float(off), float(plain), rtol=1e-6)
  np.testing.assert_allclose(float(neutral), float(plain), rtol=1e-6)
  assert abs(float(on) - float(plain)) > 1e-4
  # Hand-computed class-weighted BCE with explicit weights.
  y = np.asarray(labels, np.float64)
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  m = np.asarray(mask)
  ref = np.sum(m * np.where(y == 1, 2.0, 0.5) * -(y * np.log(p) + (1 - y) * np.log(1 - p))) / m.sum()
  got = jit_bce(logits, labels, class_weights=jnp.array([0.5, 2.0]), mask=mask)
  np.testing.assert_allclose(float(got), ref, rtol=1e-5)
  # Centred window of 5, truncated at the ends and at masked frames.
  v = jnp.arange(1.0, 8.0)[None]
  np.testing.assert_allclose(np.asarray(window_mean(v, jnp.ones((1, 7)), 5))[0], [2, 2.5, 3, 4, 5, 5.5, 6])
  mk = jnp.ones((1, 7)).at[0, 6].set(0.0)
  np.testing.assert_allclose(np.asarray(window_mean(v, mk, 5))[0, 5], 5.0)  # (4 + 5 + 6) / 3
  # Gradients do not flow through the confidence weights (stop-gradient): the gradient
  # of the TCR loss without smoothness equals that of the BCE with the weights fixed.
  w = aux["confidence_weights"]
  cw = class_weights_from_labels(labels, mask)[labels]
  fixed = lambda z: jnp.sum(mask * cw * w * optax.sigmoid_binary_cross_entropy(z, labels.astype(z.dtype))) / mask.sum()
  g_tcr = jax.jit(jax.grad(lambda z: tcr_loss(z, labels, mask=mask, lam=0.0)[0]))(logits)
  g_fixed = jax.jit(jax.grad(fixed))(logits)
  np.testing.assert_allclose(np.asarray(g_tcr), np.asarray(g_fixed), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- models


def _synthetic_clips(b=4, t=4, size=16):
  """Anomalous clips (label 1) have a bright moving square; normal ones are dim noise."""
  rng = np.random.default_rng(0)
  frames = (rng.random((b, t, size, size, 3)) * 0.3).astype(np.float32)
  labels = np.zeros((b, t), np.int32)
  for i in range(b // 2, b):
    for k in range(t):
      frames[i, k, 4:10, 2 + 2 * k : 8 + 2 * k] = 1.0
    labels[i] = 1
  boxes = np.tile(np.array([2.0, 2.0, 14.0, 14.0], np.float32), (b, t, 2, 1))
  scores = np.full((b, t, 2), 0.8, np.float32)
  valid = np.zeros((b, t, 2), bool)
  valid[b // 2 :, :, 0] = True
  return frames, labels, boxes, scores, valid


def _train(model, inputs, labels, loss_fn, steps=12, lr=1e-2):
  variables = jax.jit(model.init, static_argnames="train")(jax.random.key(0), *inputs, train=False)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  tx = optax.adam(lr)
  opt = tx.init(params)

  @jax.jit
  def step(params, state, opt):
    def f(p):
      (logits, aux), new_state = model.apply({"params": p, **state}, *inputs, train=True, mutable=list(state))
      return loss_fn(logits, labels), (new_state, aux)

    (loss, (state, aux)), grads = jax.value_and_grad(f, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), state, opt, loss, aux

  losses = []
  for _ in range(steps):
    params, state, opt, loss, aux = step(params, state, opt)
    losses.append(float(loss))
  return losses, aux


def test_hybrid_model_trains_with_tcr_loss():
  frames, labels, boxes, scores, valid = _synthetic_clips()
  # Dropout off so the losses of successive steps are comparable.
  model = TinyHybridModel1(temporal_filters=(4,), recurrent_dropout=0.0, temporal_dropout=0.0, head_dropout=0.0)
  losses, aux = _train(model, (frames, boxes, scores, valid), labels, lambda z, y: tcr_loss(z, y)[0])
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.7 * losses[0], losses
  g = np.asarray(aux["gate"])
  assert g.shape == (4, 4, 32) and (g > 0).all() and (g < 1).all()
  np.testing.assert_array_equal(np.asarray(aux["has_objects"]), valid[..., 0].astype(np.float32))
  assert aux["attention"].shape == (4, 4, 4, 4, 1)


def test_hog_classifier_trains_with_tiny_backbone():
  frames, labels, *_ = _synthetic_clips()
  model = TinyEfficientNetHOGClassifier(dropout=0.0)
  losses, aux = _train(model, (frames,), labels, lambda z, y: weighted_bce(z, y))
  assert losses[-1] < 0.7 * losses[0], losses
  assert aux["hog"].shape == (4, 4, 324) and aux["clip_probs"].shape == (4,)


@pytest.mark.parametrize(
  "overrides,has_gate,dim",
  [
    (dict(), True, 32),
    (dict(fusion="concat"), False, 64),
    (dict(branches="spatial"), False, 32),
    (dict(branches="temporal"), False, 32),
    (dict(use_object_features=False, spatial_attention=False), True, 32),
  ],
)
def test_hybrid_ablation_configs(overrides, has_gate, dim):
  frames, _, boxes, scores, valid = _synthetic_clips(b=1, t=3)
  model = TinyHybridModel1(**overrides)
  args = (frames, boxes, scores, valid)
  variables = jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a, train=False), *args)
  (logits, aux) = jax.eval_shape(lambda v, *a: model.apply(v, *a, train=False), variables, *args)
  assert logits.shape == (1, 3)
  assert (aux["gate"] is not None) == has_gate
  assert variables["params"]["head"]["kernel"].shape == (dim, 1)
  params = variables["params"]
  assert ("temporal_proj" in params) == (overrides.get("branches") != "spatial")
  assert ("backbone" in params) == (overrides.get("branches") != "temporal")
  if "backbone" in params:
    # global (16) [+ object (16) + has-object bit (1)] -> spatial_proj
    n_in = 16 + (17 if overrides.get("use_object_features", True) else 0)
    assert params["spatial_proj"]["kernel"].shape == (n_in, 32)


def test_temporal_differences_and_max_pooling_options():
  """``temporal_input="differences"`` gives the ConvLSTM each frame beside its change
  since the previous frame; ``pooling="max"`` projects the ConvLSTM map per location (a
  kernel independent of the map size) and keeps the strongest location."""
  frames, _, boxes, scores, valid = _synthetic_clips(b=2, t=3)
  args = (frames, boxes, scores, valid)
  shapes = {}
  for name, options in (("plain", {}), ("diff", dict(temporal_input="differences")), ("max", dict(pooling="max"))):
    model = TinyHybridModel1(branches="temporal", **options)
    variables = jax.eval_shape(lambda *a, m=model: m.init(jax.random.key(0), *a, train=False), *args)
    shapes[name] = jax.tree.map(lambda x: x.shape, variables["params"])
  assert shapes["diff"]["conv_lstm_0"]["cell"]["kernel"][2] == 2 * shapes["plain"]["conv_lstm_0"]["cell"]["kernel"][2]
  filters = TinyHybridModel1().temporal_filters[-1]
  assert shapes["max"]["temporal_proj"]["kernel"][0] == filters < shapes["plain"]["temporal_proj"]["kernel"][0]

  # With the weights of the frame channels zeroed the model sees only the differences:
  # a still clip then scores as a black one, a moving clip does not.
  model = TinyHybridModel1(branches="temporal", temporal_input="differences")
  variables = model.init(jax.random.key(0), frames, train=False)
  kernel = variables["params"]["conv_lstm_0"]["cell"]["kernel"]
  variables["params"]["conv_lstm_0"]["cell"]["kernel"] = kernel.at[:, :, :3].set(0.0)
  still = np.repeat(frames[:, 1:2], 3, axis=1)
  apply = jax.jit(lambda x: model.apply(variables, x, train=False)[0])
  np.testing.assert_allclose(apply(still), apply(np.zeros_like(still)), atol=1e-6)
  assert np.abs(np.asarray(apply(frames)) - np.asarray(apply(still))).max() > 1e-4
  with pytest.raises(ValueError, match="pooling"):
    TinyHybridModel1(pooling="median").init(jax.random.key(0), *args, train=False)
  with pytest.raises(ValueError, match="temporal_input"):
    TinyHybridModel1(temporal_input="flow").init(jax.random.key(0), *args, train=False)


def test_temporal_input_norm_standardises_the_convlstm_input():
  """``temporal_norm="batch"`` puts a BatchNorm over the ConvLSTM's input channels: in
  training it standardises each channel over batch, time and space (so a scaled clip
  gives the same logits), in evaluation it uses the running statistics it tracked."""
  frames, _, boxes, scores, valid = _synthetic_clips(b=2, t=3)
  model = TinyHybridModel1(branches="temporal", temporal_input="differences", temporal_norm="batch")
  variables = model.init(jax.random.key(0), frames, train=False)
  stats = variables["batch_stats"]["input_norm"]
  assert stats["mean"].shape == stats["var"].shape == (6,)  # 3 frame + 3 difference channels
  no_dropout = dict(recurrent_dropout=0.0, temporal_dropout=0.0, head_dropout=0.0)
  model = TinyHybridModel1(branches="temporal", temporal_input="differences", temporal_norm="batch", **no_dropout)

  def train_logits(x):
    (logits, _), updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return logits, updated

  logits, updated = jax.jit(train_logits)(frames)
  shifted, _ = jax.jit(train_logits)(2.0 * frames - 0.3)  # every channel scaled (and shifted)
  np.testing.assert_allclose(shifted, logits, atol=1e-4)
  x = np.asarray(frames, np.float64)
  seen = np.concatenate([x, np.concatenate([np.zeros_like(x[:, :1]), np.diff(x, axis=1)], 1)], -1)
  np.testing.assert_allclose(
    updated["batch_stats"]["input_norm"]["mean"], 0.1 * seen.mean(axis=(0, 1, 2, 3)), rtol=1e-4
  )
  eval_logits = model.apply({**variables, **updated}, frames, train=False)[0]
  assert eval_logits.shape == (2, 3) and np.abs(np.asarray(eval_logits) - np.asarray(logits)).max() > 1e-6
  with pytest.raises(ValueError, match="temporal_norm"):
    TinyHybridModel1(temporal_norm="layer").init(jax.random.key(0), frames, boxes, scores, valid, train=False)
  assert "batch_stats" not in TinyHybridModel1(branches="temporal").init(jax.random.key(0), frames, train=False)


def test_full_size_models_shapes():
  model = HybridModel1()
  frames = jax.ShapeDtypeStruct((1, 16, 112, 112, 3), jnp.float32)
  boxes = jax.ShapeDtypeStruct((1, 16, 4, 4), jnp.float32)
  sc = jax.ShapeDtypeStruct((1, 16, 4), jnp.float32)
  va = jax.ShapeDtypeStruct((1, 16, 4), jnp.bool_)
  variables = jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a, train=False), frames, boxes, sc, va)
  logits, aux = jax.eval_shape(lambda v, *a: model.apply(v, *a, train=False), variables, frames, boxes, sc, va)
  assert logits.shape == (1, 16) and aux["gate"].shape == (1, 16, 512)
  assert aux["attention"].shape == (1, 16, 7, 7, 1)  # 112 -> resized to 224 -> 7x7
  assert variables["params"]["spatial_proj"]["kernel"].shape == (1280 * 2 + 1, 512)
  assert variables["params"]["temporal_proj"]["kernel"].shape == (3 * 3 * 32, 512)
  from vad_jax.hybrid.model import EfficientNetHOGClassifier

  clf = EfficientNetHOGClassifier()
  x = jax.ShapeDtypeStruct((2, 240, 320, 3), jnp.float32)
  v = jax.eval_shape(lambda a: clf.init(jax.random.key(0), a, train=False), x)
  logits, aux = jax.eval_shape(lambda v, a: clf.apply(v, a, train=False), v, x)
  assert logits.shape == (2,) and aux["hog"].shape == (2, 8100)
  assert v["params"]["hog_proj"]["kernel"].shape == (8100, 256)
  assert v["params"]["fc"]["kernel"].shape == (1280 + 256, 256)
  with pytest.raises(ValueError, match="rank 5"):
    model.init(jax.random.key(0), jnp.zeros((16, 32, 32, 3)), train=False)
