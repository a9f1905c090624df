# DyGenePT: the two commands README.md promises, and a few helpers.
#   make demo   set up, then run the whole pipeline on the embedded default (CPU, minutes)
#   make test   set up, then run the whole test suite (what CI runs)
#   make test-fast   set up, then every test not marked slow (under 3 minutes on two cores)

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(abspath $(VENV))/bin
# Stages call `python -m dygenept`: the venv's python must come first on PATH.
RUN := PATH="$(BIN):$$PATH"
DEMO_OUT := results/demo

.PHONY: setup demo test test-fast lint bench clean-demo

setup: $(VENV)/.installed

# Versions are pinned by requirements.lock; torch==2.13.0 takes the CPU wheel where pip is set up
# to find one, else PyPI's default build.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

demo: setup
	$(RUN) snakemake --configfile config/demo.yaml --cores $(CORES)
	@echo
	@echo "DyGenePT demo finished. Results: $(DEMO_OUT)/ (report: $(DEMO_OUT)/report/report.html)"
	@echo "Held-out perturbations, model beside baselines:"
	@cat $(DEMO_OUT)/report/metrics_table.txt

test: setup
	$(RUN) python -m pytest -q

test-fast: setup
	$(RUN) python -m pytest -q -m "not slow"

lint: setup
	$(RUN) snakemake --configfile config/demo.yaml --lint
	$(RUN) snakefmt --check .
	$(RUN) ruff check workflow tests benchmarks
	$(RUN) ruff format --check workflow tests benchmarks

bench: setup
	for script in benchmarks/bench_*.py; do $(RUN) python $$script || exit 1; done

clean-demo:
	rm -rf $(DEMO_OUT)
