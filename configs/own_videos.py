"""Your own camera (``tfds_builders/own_videos``): the dual-stream network trained on a
folder of your footage, ``train/`` normal videos and optional ``test/`` (README: "Train
on your own camera").

  python -m vad_jax.train --config own_videos:cpu --workdir runs/cam \\
      --config.data.manual_dir=/path/to/footage

Variants:

* ``''``: the paper's network and settings at 256x256, 20 epochs (between the paper's 50
  on Avenue, 15 k training frames, and 10 on ShanghaiTech, 275 k); for a GPU.
* ``cpu``: the CPU-sized network at 128x128 with Adam 1e-3 for 3,000 steps (as the
  other datasets' ``cpu`` variants). Cost: 9.6-10.0 s per step of batch 8 on a 2-core
  CPU shared with other jobs (``vad-jax benchmark --config own_videos:cpu --batch 8
  --steps 3``), so about 8 hours for the 3,000 steps there; training prints the time per
  step and the time left after its third step.
* ``test``: the tiny network of ``default:test`` on 16x16 frames, for the test suite.

Colour frames (3 channels). The frames are prepared at the network's input size
(builder configs ``256x256`` / ``128x128``; ``test`` keeps the native size), so the
prepared data stay small even for hours of HD footage, and each frame is resized once,
by the same Pillow filter as ``detect``'s. A camera at 50/60 fps: add
``--config.data.builder_config=128x128_s2`` (every second frame).

Without ``test/``, add ``--config.eval_at_end=False --config.data.eval_split=''``.
"""

import ml_collections

from vad_jax.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "cpu", "test"):
    raise ValueError(f"unknown variant {variant!r} of configs/own_videos.py; expected '', 'cpu' or 'test'")
  if variant == "test":
    config = default.get_config("test")
    config.data.name = "own_videos"
    config.data.builder_config = "default"
    return config
  config = default.video_dataset_config("own_videos", num_epochs=20, checkpoint_every_steps=2000, variant=variant)
  height, width = config.data.image_size
  config.data.builder_config = f"{height}x{width}"
  if variant == "cpu":
    config.checkpoint_every_steps = 500
  return config
