# facetwin — make demo | make test | make bench | make lint
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
ICT_ARCHIVE := $(SHARED)/ict-facekit/FaceXModel.tar.xz
OUT ?= out

.PHONY: venv node model demo test bench lint clean chromium

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this version is the CPU build that lies on disk (any other spec pulls CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Fill the user cache with the ICT FaceKit model: from the shared archive when present, else git clone.
model: venv
	@if [ -f "$(ICT_ARCHIVE)" ]; then $(BIN)/facetwin model fetch --archive "$(ICT_ARCHIVE)"; \
	else $(BIN)/facetwin model fetch; fi
	$(BIN)/facetwin model import

demo: venv node model
	@mkdir -p $(OUT)/samples
	$(BIN)/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save('$(OUT)/samples/astronaut.png')"
	$(BIN)/facetwin reconstruct $(OUT)/samples/astronaut.png -o $(OUT)
	@echo "demo output: $(OUT)/astronaut/  (look at it: $(BIN)/facetwin view $(OUT)/astronaut)"

# Debian's Chromium drives the viewer's browser tests (no browser download).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: venv node model chromium
	FACETWIN_SHARED=$(abspath $(SHARED)) $(BIN)/python -m pytest -q -n 2

bench: venv model
	FACETWIN_SHARED=$(abspath $(SHARED)) $(BIN)/python bench/run.py --shared $(SHARED)

lint: venv
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) node_modules $(OUT) .pytest_cache
