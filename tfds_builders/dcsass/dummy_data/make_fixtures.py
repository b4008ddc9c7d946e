"""Writes the DCSASS fixtures: `official/DCSASS Dataset/`, a miniature archive with every known
label-file defect, and `gap_typo/DCSASS Dataset/`.

Run from the repository root: `python tfds_builders/dcsass/dummy_data/make_fixtures.py`.

Layout as in the Kaggle archive: `DCSASS Dataset/<Class>/<Video>_x264.mp4/` FOLDERS
holding `<Video>_x264_<k>.mp4` clips (32x24 H.264, a few frames, some with an AAC
audio stream like the real clips), `DCSASS Dataset/Labels/<Class>.csv` without a header,
and a byte-identical nested copy `DCSASS Dataset/DCSASS Dataset/`.

Defects reproduced:
* `Labels/Abuse.csv` has LF line ends, `Labels/Shoplifting.csv` CRLF;
* a blank label (`Abuse001_x264_2,Abuse,`), whose mp4 exists;
* a duplicated row (`Abuse001_x264_1,Abuse,1` twice);
* a `-` before the clip number (`Abuse018_x264-0`);
* a row whose mp4 is missing (`Abuse002_x264_0`, no folder at all);
* an mp4 without a row (`Shoplifting001_x264_2`).

With the default split (by source video, stratified per class, 20 % test), Abuse018 and
Shoplifting016 are test videos, Abuse001, Shoplifting001 and Shoplifting002 train ones.

`gap_typo/DCSASS Dataset/` (no nested copy) holds the clip-id defects that contradict
their place in the label file:
* `Robbery046_x264_2` sits among Robbery047's rows and fills Robbery047's missing clip 2;
  its file is `Robbery046_x264.mp4/Robbery046_x264_2.mp4` (read as is, a one-clip
  phantom source video Robbery046);
* `Stealing019_x264_1` sits among Stealing036's rows and fills its missing clip 1; the
  file is named correctly, `Stealing036_x264.mp4/Stealing036_x264_1.mp4` (read as is,
  a positive clip lost: a row without file and a file without row);
* `Stealing079_x264_0` sits among Stealing058's rows, which already have a clip 0;
* `Stealing062_x264_1.mp4` lies in Stealing058's folder.

Run: `python tfds_builders/dcsass/dummy_data/make_fixtures.py [official|gap_typo]` (both by
default).
"""

import fractions
import pathlib
import shutil
import sys

import av
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

ROOT = HERE / "official" / "DCSASS Dataset"

# clip file -> (frames, with audio)
CLIPS = {
  "Abuse/Abuse001_x264.mp4/Abuse001_x264_0.mp4": (4, True),
  "Abuse/Abuse001_x264.mp4/Abuse001_x264_1.mp4": (5, True),
  "Abuse/Abuse001_x264.mp4/Abuse001_x264_2.mp4": (4, True),
  "Abuse/Abuse018_x264.mp4/Abuse018_x264_0.mp4": (6, False),
  "Abuse/Abuse018_x264.mp4/Abuse018_x264_1.mp4": (4, False),
  "Shoplifting/Shoplifting001_x264.mp4/Shoplifting001_x264_0.mp4": (5, False),
  "Shoplifting/Shoplifting001_x264.mp4/Shoplifting001_x264_1.mp4": (4, False),
  "Shoplifting/Shoplifting001_x264.mp4/Shoplifting001_x264_2.mp4": (4, False),
  "Shoplifting/Shoplifting002_x264.mp4/Shoplifting002_x264_0.mp4": (6, False),
  "Shoplifting/Shoplifting016_x264.mp4/Shoplifting016_x264_0.mp4": (4, True),
  "Shoplifting/Shoplifting016_x264.mp4/Shoplifting016_x264_1.mp4": (5, True),
}

ABUSE_CSV = [  # LF.
  "Abuse001_x264_0,Abuse,0",
  "Abuse001_x264_1,Abuse,1",
  "Abuse001_x264_1,Abuse,1",
  "Abuse001_x264_2,Abuse,",
  "Abuse002_x264_0,Abuse,1",
  "Abuse018_x264-0,Abuse,0",
  "Abuse018_x264_1,Abuse,1",
]
SHOPLIFTING_CSV = [  # CRLF; no row for Shoplifting001_x264_2.
  "Shoplifting001_x264_0,Shoplifting,0",
  "Shoplifting001_x264_1,Shoplifting,1",
  "Shoplifting002_x264_0,Shoplifting,0",
  "Shoplifting016_x264_0,Shoplifting,1",
  "Shoplifting016_x264_1,Shoplifting,0",
]


def frames_for(name: str, count: int) -> np.ndarray:
  rng = np.random.default_rng(sum(map(ord, name)))
  yy, xx = np.mgrid[0:24, 0:32]
  base = rng.uniform(40, 200, size=3)
  out = np.empty((count, 24, 32, 3), np.uint8)
  for t in range(count):
    wave = 40 * np.sin((xx - 2 * t) / 4.0) + 25 * np.cos((yy + t) / 3.0)
    out[t] = np.clip(base[None, None, :] + wave[..., None], 0, 255).astype(np.uint8)
  return out


def write_clip(path: pathlib.Path, frames: np.ndarray, audio: bool, fps: int = 30) -> None:
  """H.264 video (yuv420p) plus, optionally, a short silent-ish AAC audio stream."""
  with av.open(str(path), mode="w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "18"}
    sound = None
    if audio:
      sound = container.add_stream("aac", rate=8000)
      sound.layout = "mono"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
    if sound is not None:
      samples = int(8000 * len(frames) / fps)
      tone = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 8000)).astype(np.float32)
      chunk = 1024
      for start in range(0, samples, chunk):
        piece = tone[None, start : start + chunk]
        aframe = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
        aframe.sample_rate = 8000
        aframe.pts = start
        aframe.time_base = fractions.Fraction(1, 8000)
        for packet in sound.encode(aframe):
          container.mux(packet)
      for packet in sound.encode():
        container.mux(packet)


GAP_ROOT = HERE / "gap_typo" / "DCSASS Dataset"
GAP_CLIPS = {  # clip file -> frames
  "Robbery/Robbery047_x264.mp4/Robbery047_x264_0.mp4": 4,
  "Robbery/Robbery047_x264.mp4/Robbery047_x264_1.mp4": 3,
  "Robbery/Robbery046_x264.mp4/Robbery046_x264_2.mp4": 5,
  "Robbery/Robbery047_x264.mp4/Robbery047_x264_3.mp4": 3,
  "Robbery/Robbery050_x264.mp4/Robbery050_x264_0.mp4": 3,
  "Robbery/Robbery050_x264.mp4/Robbery050_x264_1.mp4": 4,
  "Robbery/Robbery102_x264.mp4/Robbery102_x264_0.mp4": 3,
  "Robbery/Robbery102_x264.mp4/Robbery102_x264_1.mp4": 3,
  "Robbery/Robbery137_x264.mp4/Robbery137_x264_0.mp4": 4,
  "Robbery/Robbery137_x264.mp4/Robbery137_x264_1.mp4": 3,
  "Stealing/Stealing036_x264.mp4/Stealing036_x264_0.mp4": 3,
  "Stealing/Stealing036_x264.mp4/Stealing036_x264_1.mp4": 4,
  "Stealing/Stealing036_x264.mp4/Stealing036_x264_2.mp4": 3,
  "Stealing/Stealing058_x264.mp4/Stealing058_x264_0.mp4": 3,
  "Stealing/Stealing079_x264.mp4/Stealing079_x264_0.mp4": 3,
  "Stealing/Stealing058_x264.mp4/Stealing058_x264_1.mp4": 4,
  "Stealing/Stealing062_x264.mp4/Stealing062_x264_0.mp4": 3,
  "Stealing/Stealing058_x264.mp4/Stealing062_x264_1.mp4": 3,
}
ROBBERY_CSV = [  # LF
  "Robbery047_x264_0,Robbery,0",
  "Robbery047_x264_1,Robbery,1",
  "Robbery046_x264_2,Robbery,1",
  "Robbery047_x264_3,Robbery,1",
  "Robbery050_x264_0,Robbery,0",
  "Robbery050_x264_1,Robbery,1",
  "Robbery102_x264_0,Robbery,1",
  "Robbery102_x264_1,Robbery,0",
  "Robbery137_x264_0,Robbery,0",
  "Robbery137_x264_1,Robbery,1",
]
STEALING_CSV = [  # CRLF
  "Stealing036_x264_0,Stealing,0",
  "Stealing019_x264_1,Stealing,1",
  "Stealing036_x264_2,Stealing,0",
  "Stealing058_x264_0,Stealing,1",
  "Stealing079_x264_0,Stealing,0",
  "Stealing058_x264_1,Stealing,0",
  "Stealing062_x264_0,Stealing,1",
  "Stealing062_x264_1,Stealing,0",
]


def write_gap_typo():
  if GAP_ROOT.parent.exists():
    shutil.rmtree(GAP_ROOT.parent)
  for relative, count in GAP_CLIPS.items():
    path = GAP_ROOT / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, frames_for(path.stem, count), audio=False)
  labels = GAP_ROOT / "Labels"
  labels.mkdir()
  (labels / "Robbery.csv").write_bytes("".join(f"{r}\n" for r in ROBBERY_CSV).encode())
  (labels / "Stealing.csv").write_bytes("".join(f"{r}\r\n" for r in STEALING_CSV).encode())


def write_official():
  if ROOT.exists():
    shutil.rmtree(ROOT)
  for relative, (count, audio) in CLIPS.items():
    path = ROOT / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, frames_for(path.stem, count), audio)
  labels = ROOT / "Labels"
  labels.mkdir()
  (labels / "Abuse.csv").write_bytes("".join(f"{r}\n" for r in ABUSE_CSV).encode())
  (labels / "Shoplifting.csv").write_bytes("".join(f"{r}\r\n" for r in SHOPLIFTING_CSV).encode())
  # The archive's byte-identical nested copy.
  staging = ROOT.parent / "_nested_copy"
  shutil.copytree(ROOT, staging)
  shutil.move(str(staging), str(ROOT / "DCSASS Dataset"))


def main(names):
  fixtures = {"official": write_official, "gap_typo": write_gap_typo}
  for name in names or fixtures:
    fixtures[name]()


if __name__ == "__main__":
  main(sys.argv[1:])
