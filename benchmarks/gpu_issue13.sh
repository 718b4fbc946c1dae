#!/usr/bin/env bash
# Device check (issue 13): packed-trial throughput and the cost of a CIFAR-10 search on one
# H100/H200, in <= 6 minutes. Runs benchmarks/gpu_throughput.py (img/s of 1, 2, 4, 8 trials
# sharing the GPU) and benchmarks/search_cost.py (a 12-candidate search of configs/cifar10-gpu.yaml,
# 4 trials per GPU, projected to 500 candidates x 3 epochs), prints both, writes their JSON to
# $OUT (or --out DIR) when set, and checks the issue's goals: >= 100k img/s summed over packed
# trials, >= 4x one trial, projected cost <= 1 GPU-hour. Exit 0 when met, 1 when not, 2 when it
# cannot run (no GPU, no Python with the project's needs).
#
#   benchmarks/gpu_issue13.sh [--dry-run] [--out DIR]
#
# CIFAR_DIR=DIR uses real CIFAR-10 (the folder holding cifar-10-batches-py); otherwise 50 000
# synthetic images in CIFAR-10's format. The Python it uses, first that exists: $PYTHON;
# .venv/bin/python; python3 if it imports the needs (torch, numpy, yaml, ray, mlflow); else a new
# .venv from `make install` (about 2 minutes, needs the network).
# --dry-run: the same steps, tiny, on the CPU, no goals checked (tests the script).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)
needs="import torch, numpy, yaml, ray, mlflow"
dry=0
out="${OUT:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry=1 ;;
        --out) out="$2"; shift ;;
        *) echo "gpu_issue13: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

source benchmarks/find_python.sh
find_python "$needs" gpu_issue13
if ! "$py" -c "$needs"; then
    echo "gpu_issue13: $py cannot import torch, numpy, yaml, ray and mlflow" >&2
    exit 2
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [[ $dry -eq 0 ]] && ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_issue13: torch sees no CUDA GPU (use --dry-run to test the script on a CPU)" >&2
    exit 2
fi
echo "gpu_issue13: $py, set up in $(( $(date +%s) - started )) s" >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ $dry -eq 1 ]]; then
    throughput=(--device cpu --packs 1 2 --train-images 64 --batch-size 32)
    cost=(--trials 2 --epochs 1 --synthetic-images 100 --max-train 32 --max-val 20)
else
    throughput=(--packs 1 2 4 8)
    cost=(--trials 12 --epochs 3)
fi
[[ -n "${CIFAR_DIR:-}" ]] && cost+=(--cifar-dir "$CIFAR_DIR")

timeout 170 "$py" benchmarks/gpu_throughput.py "${throughput[@]}" --json > "$work/gpu_throughput.json"
echo "gpu_issue13: throughput done at $(( $(date +%s) - started )) s" >&2
timeout 170 "$py" benchmarks/search_cost.py "${cost[@]}" --json > "$work/search_cost.json"
echo "gpu_issue13: search cost done at $(( $(date +%s) - started )) s" >&2
if [[ -n "$out" ]]; then
    mkdir -p "$out"
    cp "$work/gpu_throughput.json" "$work/search_cost.json" "$out/"
fi

exec "$py" - "$work/gpu_throughput.json" "$work/search_cost.json" "$dry" <<'PY'
import json, sys
thr = json.load(open(sys.argv[1]))
cost = json.load(open(sys.argv[2]))
dry = sys.argv[3] == "1"
print(f"device: {thr['device']}  candidate: {thr['arch']}  batch {thr['batch_size']}")
print("packed trials | img/s in all | img/s per trial | x one trial")
for r in thr["rows"]:
    print(f"{r['trials']:>13} | {r['img_per_s']:>12.0f} | {r['per_trial_img_per_s']:>15.0f} | "
          f"{r['vs_one']:>11.2f}")
print(f"search: {cost['trained']} trained of {cost['trials']} ({cost['data']}), "
      f"{cost['epochs']} epochs of {cost['train_images']} images, {cost['wall_s']:.0f} s wall")
print(f"per candidate {cost['per_candidate_s']:.1f} {cost['unit']}; projected 500 x 3 epochs: "
      f"{cost['projected_500x3_h']:.2f} {cost['unit'].replace('-seconds', '')}-hours")
best = max(thr["rows"], key=lambda r: r["img_per_s"])
goals = {"packed img/s >= 100k": best["img_per_s"] >= 100_000,
         "packed >= 4x one trial": best["vs_one"] >= 4,
         "500 x 3 epochs <= 1 GPU-hour": cost["projected_500x3_h"] <= 1}
for name, met in goals.items():
    print(f"goal {name}: {'met' if met else 'NOT met'}{' (dry run: not checked)' if dry else ''}")
sys.exit(0 if dry or all(goals.values()) else 1)
PY
