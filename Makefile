# The two commands of the README: `make demo` (train + evaluate on the built-in synthetic
# dataset) and `make test`. Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= workdirs/demo

.PHONY: demo test benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m vad_jax.train --config configs/synthetic.py --workdir $(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

benchmark: $(STAMP)
	$(PY) -m vad_jax.benchmark --config configs/default.py:cpu --batch 8

clean:
	rm -rf $(VENV) .jax_cache workdirs
