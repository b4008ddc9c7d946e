"""What ``vad-jax detect`` reports of a stream: times from the source's own clock (none for
a frame folder, never an assumed frame rate), and an alarm still on when the source
ends or is stopped (Ctrl-C) in the summary.

The model is the tiny prediction network untrained: with a threshold below every
possible score each scored frame alarms, which fixes where the alarms are.
"""

import jax
import numpy as np
import pytest
from PIL import Image

from vad_jax import config_flags, sharding
from vad_jax import state as state_lib
from vad_jax.detector import Detector
from vad_jax.dual_stream import task as dual_stream
from vad_jax.tfds_builders import video as video_lib
from vad_jax.video import report, results


@pytest.fixture(scope="module")
def detector():
  config = config_flags.load("synthetic:test")
  mesh = sharding.make_mesh(jax.devices()[:1])
  model = dual_stream.build_model(config)
  state = state_lib.initial_state(dual_stream, model, config, state_lib.make_optimizer(config, 1), mesh)
  return Detector(config, state)


def _frames(n: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  return rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)


def test_times_come_from_the_source_clock_and_a_folder_has_none(detector, tmp_path):
  video = tmp_path / "slow.avi"
  video_lib.write_video(video, _frames(12), fps=4)  # 0.25 s apart: not 25 fps
  timed = list(detector.stream(video, batch_size=4, normalisation="causal"))
  assert [r.index for r in timed] == list(range(12))
  np.testing.assert_allclose([r.time for r in timed], np.arange(12) * 0.25)
  folder = tmp_path / "frames"
  folder.mkdir()
  for i, frame in enumerate(_frames(6)):
    Image.fromarray(frame).save(folder / f"{i:03d}.png")
  assert [r.time for r in detector.stream(folder, batch_size=4, normalisation="causal")] == [None] * 6


def test_an_alarm_on_at_the_end_of_the_source_is_in_the_summary(detector, tmp_path, capsys):
  video = tmp_path / "clip.avi"
  video_lib.write_video(video, _frames(10), fps=4)
  options = report.Options(batch_size=4, threshold=-1.0, normalisation="causal", min_frames=2)
  assert report.stream(detector, str(video), None, options) == [(4, 9)]  # frames 4-9 are scored, all alarm
  err = capsys.readouterr().err
  assert "alarm from frame 4 (1.00 s)" in err
  assert "alarm still on at the end of the source (frame 9 (2.25 s))" in err
  assert "alarm intervals (>= 2 frames): 4-9 (still on at the end)" in err


def test_an_alarm_on_when_the_stream_is_stopped_is_in_the_summary(detector, capsys):
  def camera():  # a live source the user stops with Ctrl-C after 14 frames
    yield from _frames(14)
    raise KeyboardInterrupt

  options = report.Options(batch_size=2, threshold=-1.0, normalisation="causal", min_frames=3)
  intervals = report.stream(detector, camera(), None, options)
  err = capsys.readouterr().err
  assert "stopped" in err and "alarm from frame 4\n" in err  # no time: the source has no clock
  last = intervals[-1][1]
  assert intervals == [(4, last)] and 6 <= last <= 13  # the frames scored before the stop
  assert f"alarm still on when stopped (frame {last})" in err
  assert f"4-{last} (still on at the end)" in err


def test_alarm_events_carry_the_times_and_mark_an_alarm_open_at_the_end():
  alarms = [0, 1, 1, 0, 0, 1, 1, 1]
  found = [results.FrameResult(i, 1.0, 1.0, bool(a), time=0.5 * i) for i, a in enumerate(alarms)]
  events = [r.event for r in results.with_alarm_events(iter(found), min_frames=2) if r.event is not None]
  assert [(e.first, e.last, e.first_time, e.last_time, e.open) for e in events] == [
    (1, None, 0.5, None, False),
    (1, 2, 0.5, 1.0, False),
    (5, None, 2.5, None, False),
    (5, 7, 2.5, 3.5, True),
  ]
