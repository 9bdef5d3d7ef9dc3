# Two commands do all the set-up: `make repro` (run the pipeline) and `make test`.
# Both create or reuse .venv from the pinned requirements.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
# DVC stage commands call `python`: make it the project's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test bench venv lock clean-venv

venv: $(STAMP)

# Set-up output goes to stderr, so that `make bench` prints nothing but JSON on stdout.
$(STAMP): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
	@touch $@

repro: $(STAMP)
	@$(BIN)/python -m bayesunlearn.io.settings
	$(BIN)/dvc repro
	@$(BIN)/python -m bayesunlearn.experiments.report

test: $(STAMP)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

bench: $(STAMP)
	@$(BIN)/python -m bench.run

lock: $(STAMP)
	{ echo "# The whole dependency tree, pinned (pip freeze of a clean install). Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^bayesunlearn'; } > requirements.lock

clean-venv:
	rm -rf $(VENV)
