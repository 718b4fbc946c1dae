# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned to the builds served on the project's machines.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hwnas space show mbv2 --parallelism-factor 32
	$(BIN)/hwnas estimator list
	$(BIN)/hwnas space sample mbv2 -n 5 --seed 0 --parallelism-factor 32 --estimator npu32-mbv2
	$(BIN)/hwnas latency mobilenetv2 --estimator npu32-mbv2 --per-layer
	$(BIN)/hwnas arch info mobilenetv2 --summary

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check nas searchspaces estimators tests

clean:
	rm -rf $(VENV) build *.egg-info
