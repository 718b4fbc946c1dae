"""Servers the tests start on 127.0.0.1: a free port, and a real ``mlflow server`` (SQLite
backend, local artifact root) that only the test that started it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
# MLflow's job runner is not needed by the tests; without it the server is up in ~5 s, not ~16.
SERVER_ENV = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """``mlflow server`` on a free loopback port over ``tmp/server.db`` (``db`` to serve an
    existing database), healthy when the constructor returns."""

    def __init__(self, tmp: Path, db: Path | None = None) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri",
             f"sqlite:///{db or tmp / 'server.db'}", "--artifacts-destination",
             str(tmp / "server-artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"], env=SERVER_ENV, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail("mlflow server did not become healthy within 90 s")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
