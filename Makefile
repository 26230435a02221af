# Two commands do everything on a fresh machine:  make demo  |  make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/wechat-avatar
STAMP  := $(VENV)/.installed
DEMO   ?= demo

.PHONY: setup test lint demo bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, so pip takes the local CPU build instead of gigabytes of CUDA
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q

demo: setup
	rm -rf $(DEMO)
	$(CLI) synth $(DEMO)/export --messages 3000 --seed 7
	$(CLI) ingest $(DEMO)/export --workspace $(DEMO)/workspace
	$(CLI) stats --workspace $(DEMO)/workspace
	$(CLI) messages --workspace $(DEMO)/workspace --limit 12
	$(CLI) dataset --workspace $(DEMO)/workspace
	head -n 3 $(DEMO)/workspace/dataset/firefly/train.jsonl

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/dataset.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
