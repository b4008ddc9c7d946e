"""The alarm regions as a detector hands them out: boxes on the alarmed frames of a
calibrated stream, in the source frame's pixels, from error maps whose worst block is
the offline statistics' concentration; the ``boxes`` column of ``detect``'s lines, and
their outlines on the annotated output.

The model is the tiny prediction network untrained, calibrated on frames of the same
moving texture it is then run on.
"""

import io

import jax
import numpy as np
import pytest
from PIL import Image

from vad_jax import config_flags, sharding
from vad_jax import state as state_lib
from vad_jax.detector import Detector
from vad_jax.dual_stream import calibration, regions
from vad_jax.dual_stream import task as dual_stream
from vad_jax.video import annotation, report, results, windows

HEIGHT, WIDTH = 48, 40  # the source frames; the model sees 16 x 16


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 255, (HEIGHT, WIDTH + 64, 3), dtype=np.uint8)
  return [base[:, i : i + WIDTH].copy() for i in range(n)]  # a texture moving sideways


@pytest.fixture(scope="module")
def calibrated():
  config = config_flags.load("synthetic:test")
  mesh = sharding.make_mesh(jax.devices()[:1])
  model = dual_stream.build_model(config)
  state = state_lib.initial_state(dual_stream, model, config, state_lib.make_optimizer(config, 1), mesh)
  normal = Detector(config, state).score(_frames(40), batch_size=4, normalisation="video")
  fitted = calibration.fit(normal.details, config.score.lam, 0.1, ["normal"])
  return Detector(config, state, calibration=fitted)


def test_alarmed_frames_carry_boxes_in_source_pixels_and_the_others_none(calibrated):
  frames = _frames(30, seed=1)
  found = list(calibrated.stream(iter(frames), batch_size=4))
  scored = [r for r in found if r.score is not None]
  assert len(scored) == 26 and all(r.boxes == () for r in found if not r.alarm)
  assert all(r.error_map is None and r.frame is None for r in found)  # not asked for: not handed out
  every = [r for r in calibrated.stream(iter(frames), batch_size=4, threshold=-1.0) if r.score is not None]
  assert all(r.alarm and r.boxes for r in every)
  for r in every:
    for x0, y0, x1, y1 in r.boxes:  # the 8 x 8 grid over the 40 x 48 source: 5 x 6 pixels a block
      assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
      assert x0 % 5 == x1 % 5 == 0 and y0 % 6 == y1 % 6 == 0
  # Encoded frames (a frame folder's) are measured from their header.
  encoded = []
  for i, frame in enumerate(frames):
    image = Image.fromarray(frame)
    with io.BytesIO() as buffer:
      image.save(buffer, format="PNG")
      encoded.append(windows.EncodedFrame(buffer.getvalue(), f"{i}.png"))
  assert windows.frame_size(encoded[0]) == (HEIGHT, WIDTH)
  from_files = [r for r in calibrated.stream(iter(encoded), batch_size=4, threshold=-1.0) if r.score is not None]
  assert [r.boxes for r in from_files] == [r.boxes for r in every]


def test_the_streamed_error_maps_worst_block_is_the_offline_concentration(calibrated):
  frames = _frames(30, seed=2)
  offline = calibrated.score(frames, batch_size=8)
  streamed = [r for r in calibrated.stream(iter(frames), batch_size=3, error_maps=True) if r.score is not None]
  assert [r.index for r in streamed] == offline.frames.tolist()
  worst = [regions.block_concentration(r.error_map).max() for r in streamed]
  np.testing.assert_allclose(worst, offline.details["psnr"] - offline.details["block_psnr"], atol=1e-3)
  assert [r.alarm for r in streamed] == offline.alarm.tolist()
  level = calibrated.calibration["region_level"]
  for r in streamed:  # the boxes are those of the streamed error map
    assert r.boxes == (regions.alarm_boxes(r.error_map, level, (HEIGHT, WIDTH)) if r.alarm else ())


def test_detect_prints_a_boxes_column(calibrated, capsys):
  options = report.Options(batch_size=4, threshold=-1.0, normalisation=None, min_frames=1)
  report.stream(calibrated, _frames(12, seed=3), None, options)
  rows = capsys.readouterr().out.strip().splitlines()
  assert rows[0] == "frame,score,alarm,boxes" and len(rows) == 1 + 12 - 4
  for row in rows[1:]:
    frame, score, alarm, boxes = row.split(",")
    assert alarm == "1" and boxes
    for box in boxes.split(";"):
      x0, y0, x1, y1 = map(int, box.split(" "))
      assert x0 < x1 <= WIDTH and y0 < y1 <= HEIGHT
  quiet = report.Options(batch_size=4, threshold=2.0, normalisation=None, min_frames=1)  # nothing alarms
  report.stream(calibrated, _frames(6, seed=3), None, quiet)
  assert [row.split(",")[3] for row in capsys.readouterr().out.strip().splitlines()[1:]] == ["", ""]
  assert report.boxes_field(((1, 2, 3, 4), (5, 6, 7, 8))) == "1 2 3 4;5 6 7 8" and report.boxes_field(()) == ""


def test_each_video_of_a_folder_gets_the_boxes_column(calibrated, tmp_path, capsys):
  from vad_jax.tfds_builders import video as video_lib

  (tmp_path / "videos").mkdir()
  (tmp_path / "out").mkdir()  # as detect makes it
  video_lib.write_video(tmp_path / "videos" / "a.avi", np.stack(_frames(10, seed=4)))
  video_lib.write_video(tmp_path / "videos" / "short.avi", np.stack(_frames(3, seed=4)))
  options = report.Options(batch_size=4, threshold=-1.0, normalisation=None, min_frames=1)
  report.folder(calibrated, tmp_path / "videos", tmp_path / "out", options)
  rows = (tmp_path / "out" / "a.csv").read_text().splitlines()
  assert rows[0] == "frame,score,alarm,boxes" and [r.split(",")[0] for r in rows[1:]] == ["4", "5", "6", "7", "8", "9"]
  assert all(r.split(",")[3] for r in rows[1:])
  summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
  assert summary[1].startswith("a.avi,6,1,4-9") and summary[2].startswith("short.avi,0,error,")
  assert "short.avi: error:" in capsys.readouterr().err


def test_the_boxes_are_outlined_on_the_annotated_frame(tmp_path):
  frame = np.full((40, 60, 3), 100, np.uint8)
  drawn = annotation.draw_boxes(frame, [(10, 5, 30, 25)], width=2)
  colour = np.array(annotation.BOX_COLOUR)
  assert (drawn[5:7, 10:30] == colour).all() and (drawn[23:25, 10:30] == colour).all()
  assert (drawn[5:25, 10:12] == colour).all() and (drawn[5:25, 28:30] == colour).all()
  assert (drawn[7:23, 12:28] == 100).all()  # inside: untouched
  assert (drawn[:5] == 100).all() and (drawn[25:] == 100).all() and (drawn[:, 30:] == 100).all()
  assert (frame == 100).all()  # a copy
  assert (annotation.draw_boxes(frame, [(50, 30, 90, 80)], width=1)[30:40, 50] == colour).all()  # clipped
  # Through the annotated output: outlined while alarmed.
  result = results.FrameResult(7, 0.99, 0.99, True, frame, boxes=((10, 5, 30, 25),))
  with annotation.AnnotatedOutput(tmp_path / "strip.png", 25.0) as output:
    output.add(result)
  strip = np.asarray(Image.open(tmp_path / "strip.png").convert("RGB"))
  assert (strip[20, 10] == colour).all() and (strip[20, 20] == 100).all()
