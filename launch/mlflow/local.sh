#!/usr/bin/env bash
# MLflow tracking server for one machine: runs in a SQLite file, artifacts in a folder beside it,
# listening on loopback only. Healthy in ~5 s (one worker, no job runner); stop it with Ctrl-C.
#
#   launch/mlflow/local.sh                    # in the current directory: ./mlflow.db, ./mlartifacts
#   MLFLOW_DIR=~/hwnas-mlflow MLFLOW_PORT=5001 launch/mlflow/local.sh
#   hwnas search --config configs/quickstart.yaml --tracking-uri http://127.0.0.1:5000
#
# From another machine, tunnel instead of binding a public interface:
#   ssh -N -L 5000:127.0.0.1:5000 user@this-host
# For a team server (PostgreSQL + S3-compatible artifacts) see docker-compose.yaml here.
set -euo pipefail

cd "${MLFLOW_DIR:-.}"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

exec mlflow server \
    --backend-store-uri sqlite:///mlflow.db \
    --artifacts-destination ./mlartifacts \
    --host 127.0.0.1 \
    --port "${MLFLOW_PORT:-5000}" \
    --workers 1
