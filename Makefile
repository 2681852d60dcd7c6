# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and skip the install when requirements are unchanged.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: install demo test lint format notebooks benchmarks results clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# synth -> prepare -> train -> vector -> evaluate -> pictures, on the synthetic
# faces by default or on a CelebA folder with `make demo DATA=path/to/celeba`.
demo: $(STAMP)
	$(BIN)/python -m dealwithit demo $(if $(DATA),--data $(DATA),)

# The whole suite: lint, unit tests, training tests and the four notebooks.
test: $(STAMP)
	$(BIN)/ruff check dealwithit tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check dealwithit tests benchmarks
	$(BIN)/ruff format --check dealwithit tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format dealwithit tests benchmarks
	$(BIN)/ruff check --fix dealwithit tests benchmarks

# Full-size run of every notebook; executed copies land in outputs/notebooks/.
notebooks: $(STAMP)
	$(BIN)/python -m dealwithit notebooks --out outputs/notebooks

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# RESULTS.md's tables from the committed records in results/ (see results/README.md).
results: $(STAMP)
	$(BIN)/python -m dealwithit.results tables

clean:
	rm -rf outputs/* .pytest_cache
