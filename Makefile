# The two commands of the README: `make demo` (train + evaluate on the built-in synthetic
# dataset) and `make test`. Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BASE := $(VENV)/.installed
STAMP := $(VENV)/.installed-test
WORKDIR ?= workdirs/demo

.PHONY: demo test lint format benchmark device-check clean

# The demo needs the package only; the tests add pytest, scikit-image and h5py.
$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(BASE)

$(STAMP): $(BASE)
	$(PY) -m pip install -q -e ".[test]"
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

# On a machine with a GPU: install the CUDA extra, benchmark the paper-scale network
# (float32/bfloat16, batch 8/32), train and evaluate UCSD Ped2 for a fixed time, and write
# $(CHECK_DIR)/device_check.{json,md}; about 10 minutes in all (vad_jax/studies/device_check.py).
PED2 ?= ../shared/data/ucsd_ped2
CHECK_DIR ?= workdirs/device_check
device-check:
	mkdir -p $(CHECK_DIR) && date +%s > $(CHECK_DIR)/started_at
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import vad_jax, jax; assert jax.default_backend() == 'gpu'" 2>/dev/null \
	  || $(PY) -m pip install -q -e ".[cuda]"
	$(PY) -m vad_jax.studies.device_check --workdir $(CHECK_DIR) --started_at $$(cat $(CHECK_DIR)/started_at) \
	  --train_config.data.manual_dir=$(PED2)

clean:
	rm -rf $(VENV) .jax_cache workdirs
