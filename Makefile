# Two entry points: `make run` (the main job: `lbmm run` on the built-in default study,
# written to runs/default, replacing an earlier run there) and `make test` (the test suite).
# Each builds .venv on first use.
# ArviZ 1.x needs Python >= 3.12: the first interpreter found that is new enough (on
# PATH, else one that pyenv installed)
PYTHON ?= $(shell for p in python3 python3.13 python3.12 \
            $$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
            $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "lbmm needs Python >= 3.12 (none found; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
# Taweret for the adapter's tests, without its openbt requirement (see pyproject.toml)
	$(PY) -m pip install --quiet --no-deps 'taweret>=1.3'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lbmm run default --overwrite

# the test files are shared among one worker per core (at most 4); each file runs whole on
# one worker, so its module fixtures are built once
test: $(STAMP)
	$(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile --durations=15

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
