# Everything runs from a project-local virtual environment, created on first use,
# so a fresh machine needs nothing but python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install bench paper clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/privagg demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/run.py

# The paper: every number, table and figure regenerated from the code, then compiled (Typst, no TeX).
# `make paper PAPER_ARGS=--small` runs the same pipeline at the test suite's toy sizes.
paper: install
	$(BIN)/python -m pip install --quiet -e ".[dev,paper,bench]"
	$(BIN)/python paper/build.py --pages $(PAPER_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
