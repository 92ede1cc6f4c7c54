# biogate: every target sets itself up from nothing and is quick when already set up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
BIOGATE := $(VENV)/bin/biogate
SETUP_STAMP  := $(VENV)/.biogate-setup
MODELS_STAMP := models/artifacts/.built

.PHONY: setup setup-postgres models console-assets browser run fleet test bench soak soak-env train-tools clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(PY) -e '.[dev]'
	# face_recognition declares the source-only `dlib`; dlib-bin (a dependency above) provides it.
	$(UV) pip install --quiet --python $(PY) --no-deps face_recognition==1.3.0
	touch $@

# The PostgreSQL server binaries the fleet tests and `biogate demo --fleet` start throwaway servers from
# (Debian's postgresql package; the tests start and remove the server themselves).
setup-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing the PostgreSQL server (apt)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

models: $(MODELS_STAMP)

$(MODELS_STAMP): $(SETUP_STAMP) models/manifest.json $(wildcard models/build/*.py) models/pad/weights.json models/restored/weights.npz
	$(PY) -m models.build
	touch $@

# The console's browser assets come from npm at set-up, each with its licence, into ignored folders (no CDN, never
# committed): htmx is served by biogate at /console/static/vendor/; axe-core is for the browser tests only.
NPM_DIR      := build/npm
HTMX_VERSION := 2.0.11
AXE_VERSION  := 4.14.1
VENDOR_DIR   := edge/service/console/static/vendor
ASSETS_STAMP := $(VENDOR_DIR)/.vendored-htmx-$(HTMX_VERSION)-axe-$(AXE_VERSION)

console-assets: $(ASSETS_STAMP)

$(ASSETS_STAMP):
	command -v npm >/dev/null || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm)
	npm install --silent --no-audit --no-fund --prefix $(NPM_DIR) htmx.org@$(HTMX_VERSION) axe-core@$(AXE_VERSION)
	rm -rf $(VENDOR_DIR) && mkdir -p $(VENDOR_DIR)
	cp $(NPM_DIR)/node_modules/htmx.org/dist/htmx.min.js $(VENDOR_DIR)/htmx.min.js
	cp $(NPM_DIR)/node_modules/htmx.org/LICENSE $(VENDOR_DIR)/htmx.LICENSE.txt
	touch $@

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver)

run: models console-assets
	$(BIOGATE) demo

# The fleet demo: a throwaway PostgreSQL, the registry, a branch and an ATM on the simulator.
fleet: models setup-postgres
	$(BIOGATE) demo --fleet

test: models setup-postgres console-assets browser
	$(VENV)/bin/lint-imports
	BIOGATE_TEST_REQUIRE_POSTGRES=1 BIOGATE_TEST_REQUIRE_BROWSER=1 $(PY) -m pytest -q

bench: models setup-postgres
	$(BIOGATE) bench face
	$(BIOGATE) bench detector
	$(BIOGATE) bench finger
	$(BIOGATE) bench registry --terminals 50 --customers 100000
	nice -n 10 $(BIOGATE) bench search --templates 1000000 --json

# The test-suite switches of the long runs (BIOGATE_TEST_*: never read as configuration). One variable, so the
# CI test that runs the CLI under this environment (tests/cli/test_environment.py) sees what soak really sets.
SOAK_ENV := BIOGATE_TEST_SOAK=1

soak: models setup-postgres train-tools
	$(SOAK_ENV) $(PY) -m pytest -q -m slow

# torch for models.restored.train and its tests (training only: the product runs ONNX). The CPU build of 2.13.0,
# which pip takes from this machine's disk (uv does not look there; an unpinned torch would be a CUDA build).
train-tools: $(SETUP_STAMP)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0 "setuptools<81"

soak-env:
	@echo $(SOAK_ENV)

clean:
	rm -rf $(VENV) models/artifacts .pytest_cache $(NPM_DIR) $(VENDOR_DIR)
