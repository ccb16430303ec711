# Everything runs from a local virtualenv that these targets create on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pin the CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
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
	rm -rf $(VENV) reports/*.db reports/*.html
