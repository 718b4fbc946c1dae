"""Where results go: one MLflow parent run per search, one nested child run per trial.

The driver owns every run (:class:`SearchTracker`, fed by :class:`TrackingCallback`, a Ray Tune
callback): Ray kills a trial that ASHA stops, so a run opened inside a trial could stay RUNNING
forever. Here a child run is created when its trial starts, gets the per-epoch metrics as they
arrive, and is terminated when the trial completes, is stopped or errors; :meth:`close`
terminates whatever is still open (``KILLED``) and the parent, so a crashed or interrupted
search leaves no RUNNING run behind.

On the parent, after every finished trial:

- ``hypervolume`` (step = finished trials, rejected ones included, since each costs a trial):
  the area dominated by the accuracy/latency front inside the box ``accuracy in [0, 1]``,
  ``latency in [0, reference_ms]``, divided by the box area ``1 x reference_ms`` so it lies in
  [0, 1]. The reference point is (accuracy 0, latency ``reference_ms``): by default the latency
  budget (a point over budget adds nothing), else twice the space baseline's predicted latency.
  It is fixed per config, so the curves of strategies searched under one config compare
  directly in MLflow's compare view.
- ``pareto_front.json`` (the non-dominated, non-rejected candidates), ``pareto_front.png`` and
  ``pareto_front.html``, rewritten in place.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback

from nas.pareto import hypervolume_2d, pareto_mask

FRONT_KEYS = ("arch", "accuracy", "latency_ms", "params", "peak_activation_bytes", "macs",
              "epochs", "train_seconds")
RESULT_METRICS = ("accuracy", "latency_ms", "params", "peak_activation_bytes", "macs", "epochs",
                  "train_seconds", "rejected", "train_loss", "val_loss", "surrogate")
EPOCH_METRICS = ("accuracy", "train_loss", "val_loss", "train_seconds")


def experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created in the driver if missing. For a local SQLite
    store its artifacts go to ``mlartifacts/`` beside the database (not into Ray's per-trial
    temp dirs); a server chooses its own artifact location."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        location = (db.resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when the tracking store cannot be reached: an HTTP server must
    answer ``/health``; a SQLite file needs an existing folder. (MLflow's own client retries
    for minutes before giving up.)"""
    import urllib.error
    import urllib.request

    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                if response.status != 200:
                    raise ValueError(f"status {response.status}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ValueError(f"MLflow server {uri} is unreachable ({reason}); start it or "
                             f"pass another --tracking-uri") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).resolve().parent
        if not folder.is_dir():
            raise ValueError(f"tracking URI {uri}: folder {folder} does not exist")
    elif "://" not in uri:
        raise ValueError(f"tracking URI {uri!r} is not a URI; use sqlite:///FILE or "
                         f"http://HOST:PORT")


def normalized_hypervolume(points: np.ndarray, reference_ms: float) -> float:
    """Hypervolume of (accuracy, latency_ms) rows relative to the box [0,1] x [0, ref]."""
    if len(points) == 0:
        return 0.0
    area = hypervolume_2d(points, (0.0, reference_ms), (True, False))
    return area / reference_ms


def all_runs(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    """Every run matching ``filter_string``, oldest first, across MLflow's result pages."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@dataclass
class SearchTracker:
    """Owns the MLflow runs of one search (driver side only)."""

    tracking_uri: str
    experiment: str
    run_name: str
    reference_ms: float
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    budget_ms: float | None = None
    plot_every: int = 1
    resume_run_id: str | None = None  # continue this parent run (``hwnas search --resume``)

    def __post_init__(self) -> None:
        from mlflow.tracking import MlflowClient

        if not self.reference_ms > 0:
            raise ValueError(f"hypervolume reference latency must be > 0, got "
                             f"{self.reference_ms}")
        # MLflow prints a "View run ... at: URL" line per ended run to stdout (server URIs);
        # stdout belongs to the command's results (--json).
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.children: dict[str, str] = {}  # trial id -> run id of trials in flight
        self.finished: list[dict[str, Any]] = []  # last result of every finished trial
        self.done: set[str] = set()  # trial ids with a finished child run
        self.hypervolume = 0.0
        self.curve: list[float] = []  # hypervolume after each trial finished in this process
        self.curve_rejected: list[bool] = []  # whether that trial was rejected before training
        self.closed = False
        if self.resume_run_id is not None:
            self._reopen(self.resume_run_id)
            return
        self.experiment_id = experiment_id(self.client, self.experiment, self.tracking_uri)
        parent = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                        tags={"hwnas.role": "search", **self.tags})
        self.parent_id = parent.info.run_id
        self._log_params(self.parent_id, {**self.params,
                                          "hypervolume_reference_ms": self.reference_ms})

    def _reopen(self, run_id: str) -> None:
        """Continue a search's parent run after its driver died: finished children are kept
        (their trials are never run again, see :meth:`start_trial`); children that were in
        flight end ``KILLED`` (their trials restart under a new child run)."""
        from mlflow.exceptions import MlflowException

        try:
            parent = self.client.get_run(run_id)
        except MlflowException as err:
            raise ValueError(f"cannot resume: MLflow run {run_id} not found in "
                             f"{self.tracking_uri} ({err.error_code})") from None
        self.parent_id = run_id
        self.experiment_id = parent.info.experiment_id
        resumed = int(parent.data.tags.get("hwnas.resumed", "0")) + 1
        self.client.set_tag(run_id, "hwnas.resumed", str(resumed))
        self.client.update_run(run_id, status="RUNNING")
        ints = ("params", "peak_activation_bytes", "macs", "epochs", "rejected")
        for run in self._child_runs():
            trial_id = run.data.tags.get("hwnas.trial_id", "")
            outcome = run.data.tags.get("hwnas.outcome")
            if outcome in ("completed", "stopped", "rejected", "failed"):
                result: dict[str, Any] = dict(run.data.metrics)
                result.update({k: int(result[k]) for k in ints if k in result})
                result["arch"] = run.data.params.get("arch", "")
                self.finished.append({**result, "trial_id": trial_id,
                                      "run_id": run.info.run_id, "outcome": outcome})
                self.done.add(trial_id)
            elif run.info.status == "RUNNING" or outcome is None:
                self.client.set_tag(run.info.run_id, "hwnas.outcome", "killed")
                self.client.set_terminated(run.info.run_id, status="KILLED")
        points = self.candidates()
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points]).reshape(-1, 2)
        self.hypervolume = normalized_hypervolume(values, self.reference_ms)

    def forget_unknown(self, known_trial_ids: set[str]) -> None:
        """After a resume: finished children of trials the restored Tune state has no result
        for are set aside (``KILLED``, outcome ``lost``; their data stays) so every trial Tune
        counts has exactly one finished child run."""
        keep = []
        for row in self.finished:
            if row["trial_id"] in known_trial_ids:
                keep.append(row)
                continue
            self.client.set_tag(row["run_id"], "hwnas.outcome", "lost")
            self.client.update_run(row["run_id"], status="KILLED")
            self.done.discard(row["trial_id"])
        self.finished = keep
        points = self.candidates()
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points]).reshape(-1, 2)
        self.hypervolume = normalized_hypervolume(values, self.reference_ms)

    def _child_runs(self) -> list[Any]:
        return all_runs(self.client, [self.experiment_id],
                        f"tags.`mlflow.parentRunId` = '{self.parent_id}'")

    # -- runs ---------------------------------------------------------------------------------
    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def _log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and math.isfinite(float(v))]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def start_trial(self, trial_id: str, arch: str, config: Mapping[str, Any]) -> str | None:
        """Open the trial's child run; ``None`` for a trial that already has a finished one
        (Tune re-runs a trial it had not recorded as finished when its driver died)."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        if trial_id in self.done:
            return None

        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.run_name}/{trial_id}",
            tags={MLFLOW_PARENT_RUN_ID: self.parent_id, "hwnas.role": "trial",
                  "hwnas.trial_id": trial_id})
        self.children[trial_id] = run.info.run_id
        self._log_params(run.info.run_id, {"arch": arch, **config})
        return run.info.run_id

    def log_epoch(self, trial_id: str, result: Mapping[str, Any]) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None or result.get("rejected"):
            return
        step = int(result.get("epochs", 0))
        self._log_metrics(run_id, {k: result[k] for k in EPOCH_METRICS if k in result}, step)

    def finish_trial(self, trial_id: str, result: Mapping[str, Any] | None, status: str,
                     max_epochs: int, error: str | None = None) -> None:
        """Final metrics and tags of a trial; its run ends ``FINISHED`` (or ``FAILED``)."""
        run_id = self.children.pop(trial_id, None)
        if run_id is None:
            return
        result = dict(result or {})
        outcome = status.lower()
        if status == "FINISHED":
            if result.get("rejected"):
                outcome = "rejected"
                self.client.set_tag(run_id, "hwnas.reject_reason",
                                    result.get("reject_reason", ""))
            elif result.get("surrogate"):
                outcome = "completed"  # scored by the training-free proxy
            elif int(result.get("epochs", 0)) < max_epochs:
                outcome = "stopped"  # by ASHA
            else:
                outcome = "completed"
        self.client.set_tag(run_id, "hwnas.outcome", outcome)
        if result.get("node_id"):
            self.client.set_tag(run_id, "hwnas.node_id", result["node_id"])
        if error:
            self.client.set_tag(run_id, "hwnas.error", error[-4000:])
        self._log_metrics(run_id, {k: result[k] for k in RESULT_METRICS if k in result},
                          int(result.get("epochs", 0)))
        self.client.set_terminated(run_id, status=status)
        self.done.add(trial_id)
        self.finished.append({**result, "trial_id": trial_id, "run_id": run_id,
                              "outcome": outcome})
        self._update_front()

    # -- Pareto front -------------------------------------------------------------------------
    def candidates(self) -> list[dict[str, Any]]:
        """Trained (not rejected, not failed) candidates with both objectives."""
        return [r for r in self.finished if r["outcome"] in ("completed", "stopped")
                and "accuracy" in r and "latency_ms" in r]

    def front(self) -> list[dict[str, Any]]:
        points = self.candidates()
        if not points:
            return []
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points])
        mask = pareto_mask(values, (True, False))
        front = [{k: p.get(k) for k in (*FRONT_KEYS, "trial_id", "run_id")}
                 for p, keep in zip(points, mask) if keep]
        return sorted(front, key=lambda p: p["latency_ms"])

    def _update_front(self) -> None:
        points = self.candidates()
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points]).reshape(-1, 2)
        self.hypervolume = normalized_hypervolume(values, self.reference_ms)
        self.curve.append(self.hypervolume)
        self.curve_rejected.append(self.finished[-1]["outcome"] == "rejected")
        step = len(self.finished)
        self._log_metrics(self.parent_id, {"hypervolume": self.hypervolume,
                                           "trials_finished": step,
                                           "trials_rejected": self.count("rejected"),
                                           "pareto_size": len(self.front())}, step)
        if step % self.plot_every == 0:
            self.write_artifacts()

    def counted_curve(self, count_rejected: bool) -> list[float]:
        """Hypervolume after each trial of this process that counts toward ``trials``: every
        one, or (``count_rejected`` false) the ones not rejected, so curves of searches that
        rejected different numbers of candidates line up trial for trial (``hwnas compare``)."""
        return [hv for hv, rejected in zip(self.curve, self.curve_rejected)
                if count_rejected or not rejected]

    def count(self, outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in self.finished)

    def write_artifacts(self) -> None:
        from nas.plots import pareto_html, pareto_png

        front = self.front()
        points = self.candidates()
        title = (f"{self.run_name}: {len(points)} trained, {len(front)} on the front, "
                 f"hypervolume {self.hypervolume:.4f}")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "pareto_front.json").write_text(json.dumps(
                {"objectives": {"accuracy": "max", "latency_ms": "min"},
                 "reference_point": {"accuracy": 0.0, "latency_ms": self.reference_ms},
                 "hypervolume": self.hypervolume, "trials_finished": len(self.finished),
                 "front": front}, indent=2))
            if points:
                pareto_png(points, front, folder / "pareto_front.png", title, self.budget_ms)
                pareto_html(points, front, folder / "pareto_front.html", title, self.budget_ms)
            for file in sorted(folder.iterdir()):
                self.client.log_artifact(self.parent_id, str(file))

    def close(self, status: str = "FINISHED") -> None:
        """End every child still open (``KILLED``) and the parent with ``status``."""
        if self.closed:
            return
        for trial_id in list(self.children):
            run_id = self.children.pop(trial_id)
            self.client.set_tag(run_id, "hwnas.outcome", "killed")
            self.client.set_terminated(run_id, status="KILLED")
        if self.plot_every != 1 or not self.finished:
            self.write_artifacts()
        self.client.set_terminated(self.parent_id, status=status)
        self.closed = True


def _trial_error(trial: Any) -> str | None:
    path = getattr(trial, "error_file", None)
    try:
        return Path(path).read_text() if path else None
    except OSError:
        return None


_LIVE: dict[str, tuple[SearchTracker, Callable[[dict], str],
                       Callable[[SearchTracker], None] | None]] = {}


class TrackingCallback(Callback):
    """Feeds a :class:`SearchTracker` from Ray Tune's driver-side callback hooks and calls
    ``on_update(tracker)`` after every change (the CLI's progress display hangs there).

    Tune pickles its callbacks into the experiment folder and ``Tuner.restore`` unpickles them;
    the live parts (database client, progress display) never travel: they are looked up by
    ``key`` in this process, so a resumed search registers its new tracker under the same key
    (:func:`register_live`) before restoring."""

    def __init__(self, tracker: SearchTracker, arch_of: Callable[[dict], str], max_epochs: int,
                 on_update: Callable[[SearchTracker], None] | None = None) -> None:
        self.key, self.max_epochs = tracker.run_name, max_epochs
        register_live(tracker, arch_of, on_update)
        self._attach()

    def _attach(self) -> None:
        self.tracker, self.arch_of, self.on_update = _LIVE.get(self.key, (None, None, None))

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "max_epochs": self.max_epochs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach()

    def _changed(self) -> None:
        if self.on_update is not None:
            self.on_update(self.tracker)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is None:
            return
        if trial.trial_id not in self.tracker.children:
            self.tracker.start_trial(trial.trial_id, self.arch_of(trial.config), trial.config)
        self._changed()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if self.tracker is None:
            return
        self.tracker.log_epoch(trial.trial_id, result)
        self._changed()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is None:
            return
        self.tracker.finish_trial(trial.trial_id, trial.last_result, "FINISHED",
                                  self.max_epochs)
        self._changed()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial that failed and will be retried (``resources.max_failures``)."""
        if self.tracker is None:
            return
        run_id = self.tracker.children.get(trial.trial_id)
        if run_id is not None:
            error = _trial_error(trial) or ""
            self.tracker.client.set_tag(run_id, "hwnas.retried_after", error[-4000:])
        self._changed()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial Tune gave up on. It may never have started: Tune errors a trial whose
        reused actor dies while being reset for it (a node lost between two trials) without
        a retry or an ``on_trial_start``, so it gets its failed run here."""
        if self.tracker is None:
            return
        if trial.trial_id not in self.tracker.children:
            self.tracker.start_trial(trial.trial_id, self.arch_of(trial.config), trial.config)
        self.tracker.finish_trial(trial.trial_id, trial.last_result, "FAILED", self.max_epochs,
                                  error=_trial_error(trial))
        self._changed()


def register_live(tracker: SearchTracker, arch_of: Callable[[dict], str],
                  on_update: Callable[[SearchTracker], None] | None = None) -> None:
    """Make ``tracker`` the live target of every :class:`TrackingCallback` keyed by its run
    name in this process (including ones ``Tuner.restore`` unpickles)."""
    _LIVE[tracker.run_name] = (tracker, arch_of, on_update)
