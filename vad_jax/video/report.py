"""What ``vad-jax detect`` prints and writes, over a ``vad_jax.detector.Detector``.

A single source is scored frame by frame as it is read (``stream``): one CSV line per
scored frame on stdout (``frame,score,alarm,boxes``: the boxes of an alarm's regions
where the scorer gives them, ``boxes_field``), each alarm interval on stderr as it
starts and ends, and the annotated video or image strip drawn as the frames go by. A
whole-video normalisation prints its lines (the boxes column empty: no regions without
the calibration) once the video is scored (``print_detection``) and draws the output in a
second pass (``write_output``). A folder of videos gives one result file per video, its
lines as a single source's, and a summary (``folder``).
"""

import contextlib
import dataclasses
import pathlib
import sys

import numpy as np

from vad_jax.tfds_builders import video as video_lib
from vad_jax.video import annotation, results, sources


@dataclasses.dataclass(frozen=True)
class Options:
  """The detect command's scoring options."""

  batch_size: int = 8
  threshold: float | None = None
  normalisation: str | None = None
  min_frames: int = 5


def check_output(output: pathlib.Path) -> None:
  """Raises before any work for an output format ``annotation.AnnotatedOutput`` cannot
  write, or a folder that does not exist."""
  if output.suffix.lower() not in annotation.VIDEO_OUTPUTS + annotation.IMAGE_OUTPUTS:
    raise ValueError(
      f"--output {output}: unsupported format {output.suffix or '(none)'!r}; use "
      f"{'/'.join(annotation.VIDEO_OUTPUTS)} for an annotated video or {'/'.join(annotation.IMAGE_OUTPUTS)} for an "
      f"image strip"
    )
  if not output.parent.is_dir():
    raise FileNotFoundError(f"--output {output}: the folder {output.parent} does not exist")


def boxes_field(boxes) -> str:
  """Boxes ``(x0, y0, x1, y1)`` as one CSV field: ``"x0 y0 x1 y1;x0 y0 x1 y1"``, empty for
  none."""
  return ";".join(" ".join(str(int(v)) for v in box) for box in boxes)


def _when(index: int, time: float | None) -> str:
  """A frame in words: its number, and its time where the source has a clock."""
  return f"frame {index}" + (f" ({time:.2f} s)" if time is not None else "")


def stream(detector, source: str, output: pathlib.Path | None, options: Options) -> list[tuple[int, int]]:
  """Scores ``source`` frame by frame as it is read (decoded once), printing each scored
  frame and each alarm as it starts and ends, and drawing the annotated video or strip
  as the frames go by (``annotation.AnnotatedOutput``). Times come from the source's own
  clock (none for a frame folder). Ctrl-C ends a live stream cleanly; an alarm still on
  when the source ends or is stopped is reported as open. Returns the alarm intervals
  ``(first, last)``."""
  found = detector.stream(
    source,
    batch_size=options.batch_size,
    threshold=options.threshold,
    normalisation=options.normalisation,
    min_frames=options.min_frames,
    keep_frames=output is not None,
    error_maps=output is not None,
  )
  intervals, open_at, header = [], None, False
  started, last = None, None  # the alarm under way; the last result seen
  with contextlib.ExitStack() as stack:
    drawn = None
    if output is not None:
      drawn = stack.enter_context(annotation.AnnotatedOutput(output, sources.frame_rate(source), detector.heat_scale()))
    try:
      for r in found:
        last = r
        if drawn is not None:
          drawn.add(r)
        if r.score is not None:
          if not header:
            print("frame,score,alarm,boxes")
            header = True
          print(f"{r.index},{r.score:.4f},{int(r.alarm)},{boxes_field(r.boxes)}", flush=True)
        if r.event is None:
          continue
        if r.event.last is None or (r.event.open and started is None):
          started = r.event
          print(f"alarm from {_when(r.event.first, r.event.first_time)}", file=sys.stderr)
        if r.event.last is not None:
          intervals.append((r.event.first, r.event.last))
          started = None
          if r.event.open:
            open_at = r.event.last
            print(
              f"alarm still on at the end of the source ({_when(r.event.last, r.event.last_time)})", file=sys.stderr
            )
          else:
            print(f"alarm ended: frames {r.event.first}-{r.event.last}", file=sys.stderr)
    except KeyboardInterrupt:
      print("stopped", file=sys.stderr)  # what was drawn so far is kept
      if started is not None:
        intervals.append((started.first, last.index))
        open_at = last.index
        print(f"alarm still on when stopped ({_when(last.index, last.time)})", file=sys.stderr)
  spans = [f"{a}-{b}" + (" (still on at the end)" if b == open_at else "") for a, b in intervals]
  print(f"alarm intervals (>= {options.min_frames} frames): " + (", ".join(spans) or "none"), file=sys.stderr)
  if output is not None:
    print(f"wrote {output}", file=sys.stderr)
  return intervals


def write_output(output: pathlib.Path, detector, source: str, result: results.Detection, batch_size: int) -> None:
  """The annotated video or strip of a whole-video (``video``-normalised) result: the
  source is read a second time for the frames and the prediction errors, and drawn with
  the result's scores (memory does not grow with the video beyond the scores)."""
  level_of = dict(zip(result.frames.tolist(), result.level.tolist()))
  alarm_of = dict(zip(result.frames.tolist(), result.alarm.tolist()))
  frames = detector.stream(source, batch_size=batch_size, normalisation="causal", keep_frames=True, error_maps=True)
  with annotation.AnnotatedOutput(output, sources.frame_rate(source), detector.heat_scale()) as drawn:
    for r in frames:
      drawn.add(r, level=level_of.get(r.index), alarm=alarm_of.get(r.index, False))


def print_detection(result: results.Detection, min_frames: int) -> list[tuple[int, int]]:
  """A whole video's scores as CSV lines, then its alarm intervals."""
  print("frame,score,alarm,boxes")  # the columns of a stream's lines; a whole-video score has no boxes
  for i, s, a in zip(result.frames, result.scores, result.alarm):
    print(f"{i},{s:.4f},{int(a)},")
  intervals = results.alarm_intervals(result.frames, result.alarm, min_frames)
  print(
    f"alarm intervals ({result.rule}, >= {min_frames} frames): "
    + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"),
    file=sys.stderr,
  )
  return intervals


def _whole_video(detector, video: pathlib.Path, options: Options) -> results.Detection:
  """One video's scored frames, with each frame's alarm boxes in ``details["boxes"]``:
  streamed (the scorer's boxes, frame by frame), or scored whole for the ``video``
  normalisation (no boxes)."""
  if options.normalisation == "video":
    result = detector.score(video, batch_size=options.batch_size, threshold=options.threshold, normalisation="video")
    result.details["boxes"] = [()] * result.frames.size
    return result
  found = detector.stream(
    video, batch_size=options.batch_size, threshold=options.threshold, normalisation=options.normalisation
  )
  scored = [r for r in found if r.score is not None]
  if not scored:
    raise ValueError(f"{video} has fewer frames than the model's window: nothing to score")
  scores = np.array([r.score for r in scored])
  return results.Detection(
    frames=np.array([r.index for r in scored]),
    scores=scores,
    level=np.array([r.level for r in scored]),
    alarm=np.array([r.alarm for r in scored], bool),
    threshold=float("nan"),  # not reported per video
    rule="",
    details={"boxes": [r.boxes for r in scored]},
  )


def folder(detector, videos: pathlib.Path, output_dir: pathlib.Path | None, options: Options) -> None:
  """Each video of a folder: a result file per video (``frame,score,alarm,boxes``) and a
  summary (``output_dir``), and one summary line per video on the terminal."""
  rows = []
  for video in sources.video_files(videos):
    try:
      result = _whole_video(detector, video, options)
    except (ValueError, video_lib.VideoDecodeError) as error:
      print(f"{video.name}: error: {error}", file=sys.stderr)
      rows.append((video.name, 0, "error", str(error)))
      continue
    intervals = results.alarm_intervals(result.frames, result.alarm, options.min_frames)
    if output_dir is not None:
      with open(output_dir / f"{video.stem}.csv", "w", encoding="utf-8") as out:
        out.write("frame,score,alarm,boxes\n")
        lines = zip(result.frames, result.scores, result.alarm, result.details["boxes"])
        out.writelines(f"{i},{s:.6g},{int(a)},{boxes_field(b)}\n" for i, s, a, b in lines)
    spans = " ".join(f"{a}-{b}" for a, b in intervals)
    rows.append((video.name, int(result.frames.size), len(intervals), spans))
    print(f"{video.name}: {result.frames.size} frames scored, {len(intervals)} alarm intervals {spans}".rstrip())
  if output_dir is not None:
    with open(output_dir / "summary.csv", "w", encoding="utf-8") as out:
      out.write("video,frames_scored,alarm_intervals,intervals\n")
      out.writelines(f"{name},{n},{k},{spans}\n" for name, n, k, spans in rows)
    print(f"wrote {output_dir}", file=sys.stderr)
