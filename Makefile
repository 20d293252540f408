# pgolf: two commands set up a fresh machine (see README.md):
#   make submit SEEDS="1 2 3"   the main job on the embedded default (CPU, synthetic data)
#   make test                   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
RUN ?=
ARGS ?=
SEEDS ?= 42 314 999
PROFILE ?= cpu-smoke
SUBMISSION ?=

.PHONY: install test submit check bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[train,test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q -ra $(ARGS)

submit: install
	$(VENV)/bin/pgolf submit --seeds "$(SEEDS)" --profile $(PROFILE) $(if $(SUBMISSION),--script $(SUBMISSION)) $(ARGS)

check: install
	@test -n "$(RUN)" || { echo "usage: make check RUN=records/<track>/<folder>"; exit 2; }
	$(VENV)/bin/pgolf-check $(RUN) $(ARGS)

bench: install
	$(PY) tests/bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
