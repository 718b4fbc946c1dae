# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned to the builds served on the project's machines.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast install lint clean expert-rules

# PYTHONWARNINGS: setuptools' editable build warns "Editable installation ... folders in your
# working directory" on every install (about the mechanism, not this project): filtered out.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	PYTHONWARNINGS='ignore:Editable installation' \
		$(BIN)/python -m pip install --quiet -e '.[dev]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

# The quickstart search: local Ray, MLflow in ./mlflow.db, scikit-learn's digits (see README).
demo: $(STAMP)
	$(BIN)/hwnas estimator list
	$(BIN)/hwnas space sample mbv2-small -n 3 --seed 0 --parallelism-factor 32 \
		--estimator npu32-mbv2-small
	$(BIN)/hwnas search --config configs/quickstart.yaml

# Regenerates configs/expert_rules_npu32.yaml (+ .md): real quickstart searches (4 strategies x
# 2 seeds x 16 trials, about 30 min on 2 cores) in rules.db, then the rules mined from them.
expert-rules: $(STAMP)
	$(BIN)/hwnas compare --config configs/quickstart.yaml \
		--strategies evolution,optuna-nsga2,optuna-tpe,random --seeds 2 --trials 16 \
		--tracking-uri sqlite:///rules.db --out comparisons
	$(BIN)/hwnas expert mine --experiments quickstart --tracking-uri sqlite:///rules.db \
		--out configs/expert_rules_npu32.yaml

# --durations: the 15 slowest tests, to keep the suite near its ~20 minutes on 2 cores
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests

# The inner loop: everything but the tests marked slow (Ray, MLflow servers, subprocesses);
# a few minutes on 2 cores. `make test` (what CI runs) still runs them all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check nas searchspaces estimators tests

clean:
	rm -rf $(VENV) build *.egg-info
