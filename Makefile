# The two commands of the quickstart: `make serve` and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Optional extra index for torch, e.g. https://download.pytorch.org/whl/cpu on a machine whose
# default index would serve a CUDA build.
TORCH_INDEX ?=

.PHONY: serve test lint install

install: $(STAMP)

# torch is installed first and pinned, so no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

# Headless Chromium for the dashboard's browser test (tests/api/test_dashboard_browser.py), from
# Debian's packages, as root where apt-get exists. Tried once (stamp); a failure only makes that
# test skip, never `make test`.
BROWSER_STAMP := $(VENV)/.browser-stamp
$(BROWSER_STAMP): $(STAMP)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: the dashboard browser test will skip"; \
	else echo "not root or no apt-get: the dashboard browser test will skip"; fi
	touch $@

serve: $(STAMP)
	$(VENV)/bin/argus serve --host $(HOST) --port $(PORT)

test: $(STAMP) $(BROWSER_STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check argus tests benchmarks scripts
