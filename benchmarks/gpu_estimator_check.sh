#!/usr/bin/env bash
# Device check (issue 12): build the h200-fp16 estimator (400 blocks, 16 networks) on this
# machine's GPU and evaluate it on 30 held-out networks, in <= 6 minutes on one H100/H200.
# Prints the figures as one line of JSON and a table; writes them to $OUT (or --out DIR) when
# set; exits 0 when the issue's goals are met, 1 when not, 2 when it cannot run.
#
#   benchmarks/gpu_estimator_check.sh [--dry-run] [--profile h200-fp16-b32] [...]
#
# Runs from a fresh copy of the repository. The Python it uses, first that exists:
#   $PYTHON; .venv/bin/python; python3 if it imports the check's needs (torch, numpy, scipy,
#   yaml, lightgbm); else a new .venv from `make install` (about 2 minutes, needs the network).
# WHEELS=DIR first installs the wheels in DIR into a temporary folder on the path (a machine
# with PyTorch but no network and no lightgbm: carry lightgbm's wheel there).
# --dry-run: the same steps, small, on the roofline model, no GPU (tests the script).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)
needs="import torch, numpy, scipy, yaml, lightgbm"

if [[ -n "${WHEELS:-}" ]]; then
    site="$(mktemp -d)"
    "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
        "$WHEELS"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

source benchmarks/find_python.sh
find_python "$needs" gpu_estimator_check
if ! "$py" -c "$needs"; then
    echo "gpu_estimator_check: $py cannot import torch, numpy, scipy, yaml and lightgbm;" \
         "set PYTHON, run 'make install', or pass wheels in WHEELS=DIR" >&2
    exit 2
fi

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "gpu_estimator_check: $py ($("$py" --version 2>&1)), set up in $(( $(date +%s) - started )) s" >&2
exec "$py" benchmarks/gpu_estimator_check.py --setup-s "$(( $(date +%s) - started ))" "$@"
