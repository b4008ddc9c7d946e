"""The installed wheel: one top-level package, no builder tests, and a shipped config
trained by name from another directory in a fresh virtual environment."""

import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  # Built from a clean copy: an in-tree build/ or *.egg-info left by an earlier build
  # would leak stale files into the wheel.
  source = out / "source"
  shutil.copytree(
    REPO,
    source,
    ignore=shutil.ignore_patterns(
      ".git", ".venv", ".jax_cache", "build", "workdirs", "runs", "*.egg-info", "__pycache__", ".pytest_cache"
    ),
  )
  subprocess.run(
    [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
    check=True,
    capture_output=True,
    text=True,
    timeout=300,
  )
  (path,) = out.glob("vad_jax-*.whl")
  return path


def test_the_wheel_claims_only_its_own_name(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
  assert top == {"vad_jax"}
  assert "vad_jax/configs/ucsd_ped2.py" in names
  assert "vad_jax/tfds_builders/ucsd_ped/ucsd_ped_dataset_builder.py" in names
  assert "vad_jax/tfds_builders/ucsd_ped/README.md" in names and "vad_jax/tfds_builders/ucsd_ped/CITATIONS.bib" in names
  assert "vad_jax/tfds_builders/own_videos/own_videos_dataset_builder.py" in names
  assert "vad_jax/tfds_builders/own_videos/labels.py" in names and "vad_jax/configs/own_videos.py" in names
  assert not [n for n in names if n.endswith("_test.py") or "/dummy_data/" in n]


def test_fresh_environment_trains_a_shipped_config_by_name(wheel, data_dir, tmp_path):
  """A new virtual environment holding only the wheel (its dependencies come from this
  environment's site-packages through a path file, without this checkout's editable
  install), run from a folder that has no ``configs/``."""
  env = tmp_path / "env"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
  site = pathlib.Path(
    subprocess.run(
      [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      check=True,
      capture_output=True,
      text=True,
    ).stdout.strip()
  )
  subprocess.run(
    [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
    check=True,
    capture_output=True,
    timeout=300,
  )
  (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  python = str(env / "bin" / "python")
  probe = subprocess.run(
    [
      python,
      "-c",
      "import vad_jax, importlib.util as u; print(vad_jax.__file__); "
      "print(u.find_spec('configs'), u.find_spec('tfds_builders'))",
    ],
    cwd=elsewhere,
    check=True,
    capture_output=True,
    text=True,
  )
  assert probe.stdout.splitlines() == [str(site / "vad_jax" / "__init__.py"), "None None"]
  result = subprocess.run(
    [
      python,
      "-m",
      "vad_jax.train",
      "--config",
      "synthetic:test",
      "--workdir",
      "run",
      f"--config.data.data_dir={data_dir}",
    ],
    cwd=elsewhere,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "fused" in result.stdout and "micro AUC" in result.stdout
  assert (elsewhere / "run" / "eval" / "metrics.json").is_file()
