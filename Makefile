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

serve: $(STAMP)
	$(VENV)/bin/argus serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check argus tests benchmarks scripts
