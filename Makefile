# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
export BENTOML_HOME ?= $(CURDIR)/bentoml_home

.PHONY: install browser demo test test-fast serve ui lint clean bench

# Headless Chromium + ChromeDriver for the MLflow UI browser test (tests/e2e/test_mlflow_ui.py).
# Installed only when missing and only as root (CI on Debian); otherwise that test skips.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  else \
	    echo "note: no /usr/bin/chromium or /usr/bin/chromedriver and not root: the browser test will skip"; \
	  fi; \
	fi

$(STAMP): pyproject.toml | browser
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/leadscore demo

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# Unit tests only (no training, no server): a couple of minutes, for the edit-test loop.
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

# Every benchmark side by side, with its comparator and the ratio (benchmarks/run_all.py):
# simulates BENCH_LEADS leads, trains and promotes a champion in a scratch MLflow store under
# BENCH_DIR, runs the scripts one at a time, writes BENCH_DIR/summary.md. An estimated 10-15 min
# at the default 1M leads on 2 cores; `make bench BENCH_LEADS=20000 BENCH_SECONDS=3` is a smoke run.
BENCH_LEADS ?= 1000000
BENCH_SECONDS ?= 20
BENCH_DIR ?= $(CURDIR)/data/bench
BENCH_ARGS ?=
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all.py --leads $(BENCH_LEADS) \
	  --seconds $(BENCH_SECONDS) --work $(BENCH_DIR) $(BENCH_ARGS)

serve: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/leadscore serve --port 3000

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data mlruns/mlflow.db mlruns/artifacts bentoml_home
