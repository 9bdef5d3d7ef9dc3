# Two commands do all the set-up: `make repro` (the main job) and `make test`.
# Every target creates or reuses .venv from the pinned requirements.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
READY := $(BIN)/activate
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# Prefect keeps its database and settings in the project, not in the user's home.
export PREFECT_HOME := $(CURDIR)/.prefect
# DVC stage commands call `python`: make it the project's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
PREFECT_PORT ?= 4200
# The flows find (or start) the workspace's own server; an activated environment's API address is for the CLI.
unexport PREFECT_API_URL

.PHONY: repro study test bench serve experiments venv lock clean-venv

venv: $(READY)

# Ready: the packages installed, and the activated environment's Prefect CLI pointed at the server `make serve`
# runs (added once; the venv writes the script before the packages' stamp).
$(READY): $(STAMP)
	@grep -q '^export PREFECT_API_URL=' $@ || printf '%s\n' '# make venv: the Prefect CLI uses the server of `make serve`' \
	  'export PREFECT_HOME="$(PREFECT_HOME)"' 'export PREFECT_API_URL="http://127.0.0.1:$(PREFECT_PORT)/api"' >> $@
	@touch $@

# Set-up output goes to stderr, so that `make bench` prints nothing but JSON on stdout.
$(STAMP): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
	@touch $@

# The main job: params checked, the production method's chain and its judgement, then the summary.
repro: $(READY)
	@$(BIN)/python -m bayesunlearn.io.settings
	$(BIN)/dvc repro headline
	@echo
	@$(BIN)/python -m bayesunlearn.experiments.report

# Every configured method, the comparison study, the real-data study and the sweep: hours on 2 cores (the
# real-data study's retrains dominate; docs/methods.md, "On real tables", states the measured retrain times).
study: $(READY)
	@$(BIN)/python -m bayesunlearn.io.settings
	$(BIN)/dvc repro
	$(BIN)/dvc repro study/dvc.yaml

# Two processes, one test file each at a time: end-to-end files wait on DVC, git and Prefect as much as they compute.
test: $(READY)
	$(BIN)/python -m pytest -ra -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(READY)
	@$(BIN)/python -m bench.run

# A local Prefect server (SQLite under .prefect/) and both deployments on their cron schedules.
serve: $(READY)
	$(BIN)/python -m flows.serve --port $(PREFECT_PORT)

# One row per experiment: its table, the headline figures (metrics/headline.json) and the other params that differ;
# then each experiment's unlearn and retrain seconds (not versioned: flows/experiments.py).
# SHOWN are always columns; HIDDEN are the headline's other keys and the stages' dependencies (paths, `lineage`).
SHOWN := prepare\.source|method|served|gate|forgotten|gain|indistinguishability|test_rmse|test_accuracy|mia_auc
HIDDEN := Created|.*/.*|params\.yaml|lineage|requests|retained|.*_retrained|test_ece|.*_grad_norm|unconverged
experiments: $(READY)
	$(BIN)/dvc exp show --no-pager --only-changed --drop '^($(HIDDEN))$$' --keep '^($(SHOWN))$$'
	@$(BIN)/python -m flows.experiments

lock: $(READY)
	{ echo "# The whole dependency tree, pinned (pip freeze of a clean install). Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^bayesunlearn'; } > requirements.lock

clean-venv:
	rm -rf $(VENV)
