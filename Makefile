# smpp: make demo | make test | make up
SHELL := /bin/bash
PYTHON ?= python3.11
ROOT := $(abspath .)
# The venv lives in a cache keyed by the lock's hash, so CI and other clones reuse it.
SMPP_CACHE_DIR ?= $(HOME)/.cache/smpp
# comments in the lock ("via ...") do not change the environment: hash only the pins
LOCK_HASH := $(shell grep -v '^ *\#' requirements.lock | sha256sum | cut -c1-16)
VISUAL_HASH := $(shell sha256sum scripts/install_visualized_bge.py | cut -c1-12)
VENV_DIR := $(SMPP_CACHE_DIR)/venv-$(LOCK_HASH)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
export AIRFLOW_HOME ?= $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(ROOT)/src
# airflow standalone starts its components as `airflow` from PATH
export PATH := $(VENV)/bin:$(PATH)

.PHONY: venv demo test lint format up lock models airflow-db backfill clean-venv chromium prune-venvs

venv: $(VENV_DIR)/.complete $(VENV_DIR)/.visual-$(VISUAL_HASH)
	@if [ "$$(readlink $(VENV) 2>/dev/null)" != "$(VENV_DIR)" ]; then rm -rf $(VENV); ln -s $(VENV_DIR) $(VENV); fi

# No file prerequisites: the directory name is the lock's hash, and a fresh clone's files are
# always newer than the stamp, which would rebuild (and delete) a venv other clones are using.
$(VENV_DIR)/.complete:
	@echo ">> building venv in $(VENV_DIR) (first time only: several GB)"
	rm -rf $(VENV_DIR).tmp && mkdir -p $(SMPP_CACHE_DIR)
	$(PYTHON) -m venv $(VENV_DIR).tmp
	$(VENV_DIR).tmp/bin/pip install -q uv==0.13.9
	$(VENV_DIR).tmp/bin/uv pip install --python $(VENV_DIR).tmp/bin/python -r requirements.lock
	# a venv is not relocatable: rebuild script shebangs for the final path
	rm -rf $(VENV_DIR) && mv $(VENV_DIR).tmp $(VENV_DIR)
	sed -i "1s|^#!.*$(notdir $(VENV_DIR)).tmp/bin/python.*|#!$(VENV_DIR)/bin/python|" $(VENV_DIR)/bin/* 2>/dev/null || true
	sed -i "s|$(VENV_DIR).tmp|$(VENV_DIR)|g" $(VENV_DIR)/bin/activate $(VENV_DIR)/pyvenv.cfg
	touch $@

# Visualized BGE ships only in flagembedding 1.2.x sdists, without its data files (see script)
$(VENV_DIR)/.visual-$(VISUAL_HASH): | $(VENV_DIR)/.complete
	$(VENV_DIR)/bin/python scripts/install_visualized_bge.py
	touch $@

lock:
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 -o requirements.lock --no-header

AIRFLOW := $(VENV)/bin/airflow
DEMO_PORT ?= 8765

# Airflow metadata DB (SQLite under AIRFLOW_HOME) and the pool the Reddit tasks share.
airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME)
	@if [ ! -f $(AIRFLOW_HOME)/.migrated-$(LOCK_HASH) ]; then \
		$(AIRFLOW) db migrate >$(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -30 $(AIRFLOW_HOME)/migrate.log; exit 1; }; \
		$(AIRFLOW) pools set "$$($(PY) -c 'from smpp.settings import get_settings; print(get_settings().reddit_pool)')" \
			1 "one slot per Reddit OAuth client" >/dev/null; \
		touch $(AIRFLOW_HOME)/.migrated-$(LOCK_HASH); \
	fi
	@echo ">> airflow metadata db ready in $(AIRFLOW_HOME)"

models: venv
	$(PY) -m smpp prepare-models

demo: airflow-db models
	bash scripts/demo.sh $(DEMO_PORT)

# Debian's chromium + chromedriver for the UI browser test (tests/ui/test_browser.py), only when missing;
# if apt-get cannot install them the test is skipped with that reason, not failed.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo ">> installing Debian chromium and chromium-driver for the UI browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); mkdir -p $(SMPP_CACHE_DIR); \
		( $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver ) \
			>$(SMPP_CACHE_DIR)/apt-chromium.log 2>&1 \
			|| echo ">> could not install chromium (see $(SMPP_CACHE_DIR)/apt-chromium.log): the browser test will skip"; \
	fi

# Style and the walls between rooms (pyproject.toml [tool.importlinter]); seconds, so test runs it first.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint airflow-db chromium
	$(PY) -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS)

# UI_HOST=0.0.0.0 opens the UI to the network (default: this machine only); Ctrl-C stops every process.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 8080
up: airflow-db
	@echo ">> user: admin  password: in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated (written on first start)"
	@(sleep 20; cat $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated 2>/dev/null && echo) &
	# 4 worker processes instead of 32: a laptop runs the model tasks one or two at a time anyway
	AIRFLOW=$(AIRFLOW) UI_HOST=$(UI_HOST) UI_PORT=$(UI_PORT) AIRFLOW__CORE__PARALLELISM=4 \
		AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin bash scripts/up.sh

# Backfill FROM..TO (days, inclusive) through the running scheduler (`make up`).
# --max-active-runs 1: the CLI does not inherit the DAG's max_active_runs.
# SQLite answers "database is locked" while the scheduler writes: retried.
# No ARCHIVE: no conf, so each run uses source auto and the workers' SMPP_ARCHIVE_PATH (days older than
# SMPP_LIVE_REACH_DAYS come from it). ARCHIVE (a dump file, a folder of dumps or a quoted glob): these runs
# read that dump (source archive). SUBREDDITS (comma-separated, or '*' for every subreddit of the dump)
# overrides SMPP_SUBREDDITS for these runs.
ARCHIVE ?=
SUBREDDITS ?=
comma := ,
space := $(subst ,, )
BACKFILL_ARCHIVE = $(if $(ARCHIVE),"source": "archive"$(comma) "archive_path": "$(abspath $(ARCHIVE))")
BACKFILL_SUBS = $(if $(SUBREDDITS),"subreddits": [$(subst $(space),$(comma)$(space),$(strip $(patsubst %,"%",$(subst $(comma), ,$(SUBREDDITS)))))])
BACKFILL_CONF = {$(BACKFILL_ARCHIVE)$(if $(ARCHIVE),$(if $(SUBREDDITS),$(comma) ))$(BACKFILL_SUBS)}
backfill: airflow-db
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=2013-07-24 TO=2013-07-26 [ARCHIVE=tests/data/backfill_3days.ndjson.zst] [SUBREDDITS='*' | SUBREDDITS=pics,aww]"; exit 2; }
	@test -z "$(ARCHIVE)" || ls -d $(ARCHIVE) >/dev/null 2>&1 || { echo "no archive dump at $(ARCHIVE)"; exit 2; }
	@test -n "$(ARCHIVE)" || echo "no ARCHIVE: source auto, old days read the workers' SMPP_ARCHIVE_PATH (here: $${SMPP_ARCHIVE_PATH:-unset})"
	@retry() { for i in 1 2 3 4 5; do \
		out=$$("$$@" 2>&1) && { echo "$$out" | tail -5; return 0; }; \
		echo "$$out" | grep -q "database is locked" && [ $$i -lt 5 ] || { echo "$$out" | tail -20; return 1; }; \
		sleep 3; done; }; \
	retry $(AIRFLOW) dags unpause smpp_pipeline && \
	retry $(AIRFLOW) backfill create --dag-id smpp_pipeline --from-date $(FROM) --to-date $(TO) --max-active-runs 1 \
		$(if $(ARCHIVE)$(SUBREDDITS),--dag-run-conf '$(BACKFILL_CONF)')

clean-venv:
	rm -rf $(VENV) $(VENV_DIR)

# Venvs of older locks stay in the cache (other clones may still use them): list or delete them.
prune-venvs:
	@for d in $(SMPP_CACHE_DIR)/venv-*; do \
		[ "$$d" = "$(VENV_DIR)" ] || [ ! -d "$$d" ] && continue; \
		if [ "$(YES)" = 1 ]; then echo "removing $$d"; rm -rf "$$d"; else echo "stale: $$d ($$(du -sh "$$d" | cut -f1)); make prune-venvs YES=1 removes it"; fi; \
	done
