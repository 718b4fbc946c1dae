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

# TEST_WORKERS pytest processes (pytest-xdist; 0: one process). Most of a slow test is a
# search's Ray, MLflow and trial-worker start-up, which leaves a core idle, so 2 on 2 cores took
# the suite from 30:22 to 19:32 (2026-12-02). --dist loadscope keeps a module's tests in one
# process: its module fixtures (a 2-node Ray cluster, a mined search) start once.
# --durations: the 15 slowest tests, to bring the suite back to its ~20 minutes (a clean-clone
# .ci/run, back to back on 2026-12-04: pytest 31:07 before the slow tests were trimmed, 25:59
# after; 20:28 for the same tests later that evening on a quieter machine).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

test: $(STAMP)
	$(PYTEST) --durations=15 tests

# The inner loop: everything but the tests marked slow (Ray, MLflow servers, subprocesses);
# a few minutes on 2 cores. `make test` (what CI runs) still runs them all.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check nas searchspaces estimators tests

clean:
	rm -rf $(VENV) build *.egg-info
