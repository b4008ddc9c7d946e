"""The whole builder path works in a process where ``import tensorflow`` fails.

A child interpreter gets a stub ``tensorflow`` package first on ``sys.path`` whose
``__init__`` records the attempt (with the importing stack) and raises ``ImportError``,
so ``import tensorflow`` fails even where TF is installed. The child prepares the UCSD,
Avenue, ShanghaiTech and own-footage builders from their dummy data with ``download_and_prepare``
(UCSD also in two worker processes, which inherit the stub and its log) and reads every
record back with ``as_data_source()``. ``TFDS_DISABLE_TF`` is removed
from the child's environment so that TFDS is not told to avoid TF: it must simply
never need it. The child also shrinks TFDS's in-memory shuffle buffer to one byte, which
would force the spill-to-disk path that uses ``tf.io.gfile`` in TFDS (replaced by
``common.install_tf_free_spill``; the frame builders write through their own spool and
no longer reach it), and checks that records keep their order.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent(
  """
    import json, sys

    try:
      import tensorflow  # noqa: F401
      raise SystemExit("tensorflow imported despite the stub")
    except ImportError:
      pass

    import pathlib
    from tensorflow_datasets.core import shuffle
    from vad_jax.tfds_builders import common, testing
    from vad_jax.tfds_builders.avenue import avenue_dataset_builder as avenue
    from vad_jax.tfds_builders.own_videos import own_videos_dataset_builder as own_videos
    from vad_jax.tfds_builders.shanghaitech import shanghaitech_dataset_builder as shanghaitech
    from vad_jax.tfds_builders.ucsd_ped import ucsd_ped_dataset_builder as ucsd

    shuffle.MAX_MEM_BUFFER_SIZE = 1  # spill every split to bucket files

    data_dir, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    cases = {
        "ucsd_ped/ped2": (ucsd.Builder, root / "ucsd_ped/dummy_data/official", "ped2"),
        "ucsd_ped/ped2 (2 workers)": (ucsd.Builder, root / "ucsd_ped/dummy_data/official", "ped2"),
        "avenue/official": (avenue.Builder, root / "avenue/dummy_data/official", "official"),
        "shanghaitech": (shanghaitech.Builder, root / "shanghaitech/dummy_data", None),
        "own_videos": (own_videos.Builder, root / "own_videos/dummy_data", "default"),
    }
    report = {}
    for name, (builder_cls, manual_dir, config) in cases.items():
      workers = 2 if "workers" in name else 1
      builder = testing.prepare(builder_cls, data_dir / name, manual_dir, config, num_workers=workers)
      reloaded = builder_cls(data_dir=str(data_dir / name), config=config)
      counts = {}
      for split, source in reloaded.as_data_source().items():
        records = [source[i] for i in range(len(source))]
        order = [(int(r["video_index"]), int(r["frame_index"])) for r in records]
        assert order == sorted(order), (name, split, order)
        assert all(isinstance(r["frame"], bytes) for r in records)
        counts[split] = len(records)
      report[name] = counts
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
    print("REPORT" + json.dumps(report))
    """
)


_STUB = textwrap.dedent(
  """
    import json, os, traceback
    with open(os.environ["TF_IMPORT_LOG"], "a") as log:
      log.write(json.dumps("".join(traceback.format_stack(limit=15))) + "\\n")
    raise ImportError("tensorflow is not available in this test")
    """
)


def test_prepare_and_read_without_tensorflow(tmp_path):
  stub = tmp_path / "stub" / "tensorflow"
  stub.mkdir(parents=True)
  (stub / "__init__.py").write_text(_STUB)
  log = tmp_path / "tf_imports.log"
  log.write_text("")
  env = {k: v for k, v in os.environ.items() if k != "TFDS_DISABLE_TF"}
  paths = [str(tmp_path / "stub"), str(REPO), env.get("PYTHONPATH", "")]
  env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
  env["TF_IMPORT_LOG"] = str(log)
  result = subprocess.run(
    [sys.executable, "-c", _CHILD, str(tmp_path / "data"), str(REPO / "tfds_builders")],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
  attempts = [json.loads(line) for line in log.read_text().splitlines()]
  assert len(attempts) >= 1  # the child's own check above
  assert len(attempts) == 1, "code tried to import tensorflow:\n" + attempts[1][-3000:]
  line = next(x for x in result.stdout.splitlines() if x.startswith("REPORT"))
  assert json.loads(line[len("REPORT") :]) == {
    "ucsd_ped/ped2": {"train": 7, "test": 9},
    "ucsd_ped/ped2 (2 workers)": {"train": 7, "test": 9},
    "avenue/official": {"train": 9, "test": 9},
    "shanghaitech": {"train": 7, "test": 9},
    "own_videos": {"train": 15, "test": 15},
  }
