# The two commands of the README. Both create and use the project's environment in .venv/
# and install what is missing (as root on Debian: postgresql and redis-server).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SPECS  := manifests/examples/local

.PHONY: demo test lint lock system crds screenshots clean down image image-local

# Every version comes from constraints.txt, so a fresh clone installs what CI tested.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## lock: pin in constraints.txt what `pip install -e '.[dev]'` resolves today
# In a throwaway environment, so nothing left over in .venv/ is pinned. setuptools and wheel
# stay out: pip builds the project with the setuptools that pyproject.toml asks for.
lock:
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	python3 -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/python" -m pip install -q --upgrade pip && \
	"$$tmp/venv/bin/python" -m pip install -q -e '.[dev]' && \
	{ echo "# What \`pip install -e '.[dev]'\` resolved; \`make lock\` regenerates this file."; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable \
	    | grep -v -E '^(setuptools|wheel|distribute)=='; } > constraints.txt
	@echo "constraints.txt: $$(grep -c '==' constraints.txt) pins"

system:
	@bash scripts/install-system.sh

## demo: the sample stack on the process runtime, the controller, and the dashboard on :8080
# A dashboard token for this run (actions need one), unless one is already set; the link
# carries it in the URL fragment, which the browser never sends to the server.
demo: system $(STAMP)
	$(VENV)/bin/driftmend validate $(SPECS)
	@token="$${DRIFTMEND_DASHBOARD_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')}"; \
	echo "dashboard: http://127.0.0.1:8080/#token=$$token   (break the app: .venv/bin/driftmend chaos app-crash)"; \
	DRIFTMEND_DASHBOARD_TOKEN="$$token" exec $(VENV)/bin/driftmend run -f $(SPECS)

## test: lint, types, import contracts, then every test (unit, integration on real servers)
test: system $(STAMP) lint
	@bash scripts/docker-engine.sh
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## crds: regenerate crds/ from the models
crds: $(STAMP)
	$(VENV)/bin/driftmend crds --write crds

## screenshots: refresh the README's dashboard screenshots (docs/screenshots/) from the browser tests
screenshots: system $(STAMP)
	DRIFTMEND_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/e2e -q

## image: the controller's image, on the Dockerfile's pinned base from your registry
# IMAGE=REGISTRY/driftmend:VERSION to name it for a push (README.md, "Build the image").
# DOCKER_BUILDKIT=1: an engine's CLI older than 23 has BuildKit built in but off by default.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= driftmend:$(VERSION)
DOCKER  ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
image:
	DOCKER_BUILDKIT=1 $(DOCKER) build -t $(IMAGE) .

## image-local: the same image where no registry is reachable, on a base debootstrapped here
image-local:
	@base="$$(bash scripts/base-image.sh)" && \
	DOCKER_BUILDKIT=1 $(DOCKER) build --network host --build-arg BASE="$$base" -t $(IMAGE) .

## down: stop the demo stack's processes
down: $(STAMP)
	$(VENV)/bin/driftmend down -f $(SPECS)

clean:
	rm -rf .driftmend .pytest_cache .mypy_cache .ruff_cache
