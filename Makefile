# Everything runs from a local virtualenv that these targets create on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# Where torch comes from. Empty: the configured pip index (PyPI), whose Linux x86-64 torch wheels are
# CUDA builds pulling ~GBs of NVIDIA libraries. For a CPU-only machine, make install/demo/test
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the ~200 MB CPU build instead.
TORCH_INDEX ?=

.PHONY: demo test install bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, from TORCH_INDEX when given (see above); the rest resolves around it.
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/cmi-study demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) reports/*.db reports/*.html reports/*-artifacts
