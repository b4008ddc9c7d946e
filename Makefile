# The two commands of the README: `make demo` (train + evaluate on the built-in synthetic
# dataset) and `make test`. Both create .venv and install what they need on first use, at
# the exact versions of constraints.txt (pyproject.toml holds the tested ranges).
#
# JAX 0.11 and later need Python 3.12 or newer: the first interpreter found that is one
# (python3.12, python3.13, python3, then pyenv's installed versions), or PYTHON=... .
PYTHON ?= $(shell for p in python3.12 python3.13 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
BASE := $(VENV)/.installed
STAMP := $(VENV)/.installed-test
WORKDIR ?= workdirs/demo

.PHONY: demo test lint format benchmark device-check clean

# The demo needs the package only; the tests add pytest, scikit-image and h5py.
# A .venv made with an older Python is made anew.
$(BASE): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (JAX 0.11+ needs it); set PYTHON=/path/to/python3.12"; exit 1; }
	$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) -e .
	touch $(BASE)

$(STAMP): $(BASE)
	$(PIP) -e ".[test]"
	touch $(STAMP)

# Two XLA host devices: on a 2-core CPU the data-parallel step is ~25 % faster than one
# device using both cores (docs/RESULTS.md).
demo: $(BASE)
	XLA_FLAGS="--xla_force_host_platform_device_count=2 $$XLA_FLAGS" \
	  $(VENV)/bin/vad-jax train --config synthetic --workdir $(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

# Formatting and lint (ruff, configured in pyproject.toml); .ci/run runs this before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

benchmark: $(STAMP)
	$(VENV)/bin/vad-jax benchmark --config default:cpu --batch 8

# On a machine with a GPU or TPU: install its extra (cuda12 where nvidia-smi lists a GPU,
# ACCEL=cuda13 for a CUDA 13 driver; tpu where /dev/accel* or /dev/vfio exist), benchmark
# the paper-scale network (float32/bfloat16, batch 8/32), compile its AOT report for the
# local devices, train and evaluate UCSD Ped2 for a fixed time, and write
# $(CHECK_DIR)/device_check.{json,md}; about 10 minutes in all (vad_jax/studies/device_check.py).
PED2 ?= ../shared/data/ucsd_ped2
CHECK_DIR ?= workdirs/device_check
ACCEL ?= $(shell if nvidia-smi -L >/dev/null 2>&1; then echo cuda12; \
  elif ls /dev/accel0 /dev/vfio/0 >/dev/null 2>&1; then echo tpu; else echo cuda12; fi)
device-check:
	mkdir -p $(CHECK_DIR) && date +%s > $(CHECK_DIR)/started_at
	$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -c "import vad_jax, jax; assert jax.default_backend() != 'cpu'" 2>/dev/null \
	  || $(PIP) -e ".[$(ACCEL)]"
	$(PY) -m vad_jax.studies.device_check --workdir $(CHECK_DIR) --started_at $$(cat $(CHECK_DIR)/started_at) \
	  --train_config.data.manual_dir=$(PED2)

clean:
	rm -rf $(VENV) .jax_cache workdirs
