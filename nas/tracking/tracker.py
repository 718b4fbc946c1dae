"""Where results go: one MLflow parent run per search, one nested child run per trial.

The driver owns every run (:class:`SearchTracker`, fed by
:class:`~nas.tracking.callback.TrackingCallback`, a Ray Tune callback): Ray kills a trial that
ASHA stops, so a run opened inside a trial could stay RUNNING forever. Here a child run is
created when its trial starts, gets the per-epoch metrics as they arrive, and is terminated
when the trial completes, is stopped or errors; :meth:`close` terminates whatever is still open
(``KILLED``) and the parent, so a crashed or interrupted search leaves no RUNNING run behind.
This module needs no Ray.

A child run is named for the runs table (:func:`~nas.tracking.text.trial_run_name`). A
candidate rejected before training gets tag ``hwnas.outcome = rejected`` and every metric but
``accuracy``: it has none (the strategy is still told it failed, through Tune's result). A
trial that ran out of memory and was retried at half the batch (:mod:`nas.packing`) gets a
nested ``FAILED`` run for its first attempt (``hwnas.role = attempt``, ``hwnas.failure_reason =
out of memory at batch 16``) and tag ``hwnas.retried``; one out of memory at both batch sizes
ends ``FAILED`` with ``hwnas.outcome = failed`` and its ``hwnas.failure_reason``.

On the parent, after every finished trial:

- ``hypervolume`` (step = finished trials, rejected ones included, since each costs a trial):
  the area dominated by the accuracy/latency front inside the box ``accuracy in [0, 1]``,
  ``latency in [0, reference_ms]``, divided by the box area ``1 x reference_ms`` so it lies in
  [0, 1]. The reference point is (accuracy 0, latency ``reference_ms``): by default the latency
  budget (a point over budget adds nothing), else twice the space baseline's predicted latency.
  It is fixed per config, so the curves of strategies searched under one config compare
  directly in MLflow's compare view.
- ``pareto_front.json`` (the non-dominated, non-rejected candidates) and ``pareto_front.png``,
  rewritten in place; ``pareto_front.html`` (4-5 MB: it inlines plotly.js so it opens offline)
  only when the front changed, and at the end.

The parent's description (tag ``mlflow.note.content``) is the search's summary
(:func:`~nas.tracking.text.search_note`), written when the search starts and when it ends.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.packing import oom_reason
from nas.pareto import hypervolume_2d, pareto_mask
from nas.tracking.store import NOTE_TAG, all_runs, experiment_id, log_params, log_values
from nas.tracking.text import search_note, trial_label, trial_run_name

logger = logging.getLogger(__name__)

FRONT_KEYS = ("arch", "accuracy", "latency_ms", "params", "peak_activation_bytes", "macs",
              "epochs", "train_seconds")
TASK_SCORES = ("map50", "miou", "pixel_accuracy")
"""What detection and segmentation trials report besides ``accuracy`` (their metric's copy)."""
RESULT_METRICS = ("accuracy", "latency_ms", "params", "peak_activation_bytes", "macs", "epochs",
                  "train_seconds", "rejected", "train_loss", "val_loss", "surrogate",
                  "batch_size", "images_per_second", *TASK_SCORES)
EPOCH_METRICS = ("accuracy", "train_loss", "val_loss", "train_seconds", "epoch_seconds",
                 "images_per_second", *TASK_SCORES)
CONFIG_ARTIFACT = "search_config.yaml"


def normalized_hypervolume(points: np.ndarray, reference_ms: float) -> float:
    """Hypervolume of (accuracy, latency_ms) rows relative to the box [0,1] x [0, ref]."""
    if len(points) == 0:
        return 0.0
    area = hypervolume_2d(points, (0.0, reference_ms), (True, False))
    return area / reference_ms


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
    resume_run_id: str | None = None  # continue this parent run (``hwnas search --resume``)
    # seconds the search spent outside trials so far (the zero-shot strategies' proxy scoring
    # on the driver), charged to its compute
    overhead_seconds: Callable[[], float] | None = None
    metric: str = "accuracy"  # the task's metric (``accuracy`` holds its value): plot labels

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
        self.attempts: dict[str, str] = {}  # trial id -> run id of its failed first attempt
        self.finished: list[dict[str, Any]] = []  # last result of every finished trial
        self.done: set[str] = set()  # trial ids with a finished child run
        self.hypervolume = 0.0
        self.curve: list[float] = []  # hypervolume after each trial finished in this process
        self.curve_rejected: list[bool] = []  # whether that trial was rejected before training
        # compute spent when each trial finished: train_seconds of the trials finished in this
        # process plus the overhead so far (CPU- or GPU-seconds, as the trials ran)
        self.compute: list[float] = []
        self._train_seconds = 0.0
        self.open_trials: dict[str, tuple[str, str]] = {}  # trial id -> (label, arch), in flight
        self.started = 0  # child runs created (their labels are t001, t002, ...)
        self.settings = {k: str(v) for k, v in self.params.items()}  # for the description
        self._html_front: tuple[str, ...] | None = None  # front in the last pareto_front.html
        self._html_trials = -1  # finished trials when it was written
        self._png_points: tuple[str, ...] | None = None  # trained candidates in the last PNG
        # Plots are drawn and uploaded by one background thread, in order, so Tune's event
        # loop (and the next trial) does not wait for them; close() waits for every one.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hwnas-plots")
        self._writes: list[Future[None]] = []
        self.closed = False
        if self.resume_run_id is not None:
            self._reopen(self.resume_run_id)
            return
        self.experiment_id = experiment_id(self.client, self.experiment, self.tracking_uri)
        parent = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                        tags={"hwnas.role": "search", **self.tags,
                                              NOTE_TAG: self.note("RUNNING")})
        self.parent_id = parent.info.run_id
        log_params(self.client, self.parent_id,
                   {**self.params, "hypervolume_reference_ms": self.reference_ms})

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The search's whole config as the parent's artifact ``search_config.yaml``, which
        ``hwnas search --config`` reads back (the description says so)."""
        import yaml

        self.client.log_text(self.parent_id, yaml.safe_dump(dict(config), sort_keys=False),
                             CONFIG_ARTIFACT)

    def _reopen(self, run_id: str) -> None:
        """Continue a search's parent run after its driver died: finished children are kept
        (their trials are never run again, see :meth:`start_trial`; one the kill caught between
        its final tags and its end is ended now); children that were in flight end ``KILLED``
        (their trials restart under a new child run)."""
        from mlflow.exceptions import MlflowException

        try:
            parent = self.client.get_run(run_id)
        except MlflowException as err:
            raise ValueError(f"cannot resume: MLflow run {run_id} not found in "
                             f"{self.tracking_uri} ({err.error_code})") from None
        self.parent_id = run_id
        self.experiment_id = parent.info.experiment_id
        self.settings = dict(parent.data.params)
        resumed = int(parent.data.tags.get("hwnas.resumed", "0")) + 1
        self.client.set_tag(run_id, "hwnas.resumed", str(resumed))
        self.client.update_run(run_id, status="RUNNING")
        ints = ("params", "peak_activation_bytes", "macs", "epochs", "rejected")
        children = self._child_runs()
        self.started = len(children)
        for run in children:
            trial_id = run.data.tags.get("hwnas.trial_id", "")
            label = run.data.tags.get("hwnas.trial", "")
            outcome = run.data.tags.get("hwnas.outcome")
            if outcome in ("completed", "stopped", "rejected", "failed"):
                result: dict[str, Any] = dict(run.data.metrics)
                result.update({k: int(result[k]) for k in ints if k in result})
                result["arch"] = run.data.params.get("arch", "")
                self.finished.append({**result, "trial_id": trial_id, "trial": label,
                                      "run_id": run.info.run_id, "outcome": outcome})
                self.done.add(trial_id)
                if run.info.status == "RUNNING":  # killed between its final tags and its end
                    self.client.set_terminated(
                        run.info.run_id, status="FAILED" if outcome == "failed" else "FINISHED")
            elif run.info.status == "RUNNING" or outcome is None:
                self._end(run.info.run_id, label, run.data.params.get("arch", ""), "killed",
                          "KILLED")
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
            name = trial_run_name(row.get("trial", ""), row.get("arch", ""),
                                  row.get("latency_ms"), "lost")
            log_values(self.client, row["run_id"], {}, 0,
                       {"hwnas.outcome": "lost", "mlflow.runName": name})
            self.client.update_run(row["run_id"], status="KILLED")  # keeps its end time
            self.done.discard(row["trial_id"])
        self.finished = keep
        points = self.candidates()
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points]).reshape(-1, 2)
        self.hypervolume = normalized_hypervolume(values, self.reference_ms)

    def _child_runs(self) -> list[Any]:
        return all_runs(self.client, [self.experiment_id],
                        f"tags.`mlflow.parentRunId` = '{self.parent_id}'")

    # -- runs ---------------------------------------------------------------------------------
    def start_trial(self, trial_id: str, arch: str, config: Mapping[str, Any]) -> str | None:
        """Open the trial's child run; ``None`` for a trial that already has a finished one
        (Tune re-runs a trial it had not recorded as finished when its driver died)."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        if trial_id in self.done:
            return None

        self.started += 1
        label = trial_label(self.started)
        run = self.client.create_run(
            self.experiment_id, run_name=trial_run_name(label, arch),
            tags={MLFLOW_PARENT_RUN_ID: self.parent_id, "hwnas.role": "trial",
                  "hwnas.trial_id": trial_id, "hwnas.trial": label})
        self.children[trial_id] = run.info.run_id
        self.open_trials[trial_id] = (label, arch)
        log_params(self.client, run.info.run_id, {"arch": arch, **config})
        return run.info.run_id

    def log_epoch(self, trial_id: str, result: Mapping[str, Any]) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None or result.get("rejected"):
            return
        if result.get("oom_batch") and trial_id not in self.attempts:
            self._record_oom_attempt(trial_id, run_id, result)
        if result.get("failed"):
            return  # no epoch: it never trained
        step = int(result.get("epochs", 0))
        log_values(self.client, run_id, {k: result[k] for k in EPOCH_METRICS if k in result},
                   step)

    def _record_oom_attempt(self, trial_id: str, run_id: str, result: Mapping[str, Any]
                            ) -> None:
        """A trial's first attempt ran out of memory and it was retried at half the batch
        (:mod:`nas.packing`): the attempt becomes a ``FAILED`` run nested under the trial's
        (tag ``hwnas.role = attempt``, so it is never counted as a trial), with its reason in
        ``hwnas.failure_reason``; the trial's run says ``hwnas.retried = ...``."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        label, arch = self.open_trials.get(trial_id, ("", ""))
        batch = int(result["oom_batch"])
        reason = oom_reason(batch)
        run = self.client.create_run(
            self.experiment_id,
            run_name=trial_run_name(f"{label}/1", arch, result.get("latency_ms"), "failed"),
            tags={MLFLOW_PARENT_RUN_ID: run_id, "hwnas.role": "attempt",
                  "hwnas.trial_id": trial_id, "hwnas.trial": label, "hwnas.outcome": "failed",
                  "hwnas.failure_reason": reason})
        log_params(self.client, run.info.run_id, {"arch": arch, "batch_size": batch})
        self.client.set_terminated(run.info.run_id, status="FAILED")
        self.attempts[trial_id] = run.info.run_id
        self.client.set_tag(run_id, "hwnas.retried",
                            f"{reason}; retried at batch {result.get('batch_size')}")

    def finish_trial(self, trial_id: str, result: Mapping[str, Any] | None, status: str,
                     max_epochs: int, error: str | None = None) -> None:
        """Final metrics, tags and name of a trial; its run ends ``FINISHED`` (or ``FAILED``).
        A rejected candidate logs no ``accuracy``: its 0 only tells the strategy it failed."""
        run_id = self.children.pop(trial_id, None)
        if run_id is None:
            return
        label, arch = self.open_trials.pop(trial_id, ("", ""))
        result = dict(result or {})
        outcome = status.lower()
        tags = {}
        if status == "FINISHED" and result.get("failed"):  # out of memory at every batch
            status, outcome = "FAILED", "failed"
            tags["hwnas.failure_reason"] = str(result.get("failure_reason", ""))
        elif status == "FINISHED":
            if result.get("rejected"):
                outcome = "rejected"
                tags["hwnas.reject_reason"] = str(result.get("reject_reason", ""))
            elif result.get("surrogate"):
                outcome = "completed"  # scored by the training-free proxy
            elif int(result.get("epochs", 0)) < max_epochs:
                outcome = "stopped"  # by ASHA
            else:
                outcome = "completed"
        if result.get("node_id"):
            tags["hwnas.node_id"] = str(result["node_id"])
        if error:
            tags["hwnas.error"] = error[-4000:]
        tags["hwnas.outcome"] = outcome
        tags["mlflow.runName"] = trial_run_name(label, result.get("arch", arch),
                                                result.get("latency_ms"), outcome)
        metrics = {k: result[k] for k in RESULT_METRICS if k in result
                   and not (k in ("accuracy", *TASK_SCORES)
                            and outcome in ("rejected", "failed"))}
        log_values(self.client, run_id, metrics, int(result.get("epochs", 0)), tags)
        self.client.set_terminated(run_id, status=status)
        self.done.add(trial_id)
        self.finished.append({**result, "trial_id": trial_id, "trial": label, "run_id": run_id,
                              "outcome": outcome})
        self._update_front()

    def _end(self, run_id: str, label: str, arch: str, outcome: str, status: str) -> None:
        """End a child run that never finished its trial (``killed``)."""
        log_values(self.client, run_id, {}, 0, {
            "hwnas.outcome": outcome,
            "mlflow.runName": trial_run_name(label, arch, outcome=outcome)})
        self.client.set_terminated(run_id, status=status)

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
        front = [{k: p.get(k) for k in (*FRONT_KEYS, "trial_id", "trial", "run_id")}
                 for p, keep in zip(points, mask) if keep]
        return sorted(front, key=lambda p: p["latency_ms"])

    def _update_front(self) -> None:
        points = self.candidates()
        values = np.array([[p["accuracy"], p["latency_ms"]] for p in points]).reshape(-1, 2)
        self.hypervolume = normalized_hypervolume(values, self.reference_ms)
        self.curve.append(self.hypervolume)
        self.curve_rejected.append(self.finished[-1]["outcome"] == "rejected")
        self._train_seconds += float(self.finished[-1].get("train_seconds") or 0.0)
        overhead = self.overhead_seconds() if self.overhead_seconds is not None else 0.0
        self.compute.append(self._train_seconds + overhead)
        step = len(self.finished)
        front = self.front()
        log_values(self.client, self.parent_id,
                   {"hypervolume": self.hypervolume, "compute_seconds": self.compute[-1],
                    "trials_finished": step,
                    "trials_rejected": self.count("rejected"), "pareto_size": len(front)}, step)
        self.write_artifacts(html=self._front_key(front) != self._html_front)

    @staticmethod
    def _front_key(front: list[dict[str, Any]]) -> tuple[str, ...]:
        return tuple(str(p["run_id"]) for p in front)

    def counted_curve(self, count_rejected: bool) -> list[float]:
        """Hypervolume after each trial of this process that counts toward ``trials``: every
        one, or (``count_rejected`` false) the ones not rejected, so curves of searches that
        rejected different numbers of candidates line up trial for trial (``hwnas compare``)."""
        return [hv for hv, rejected in zip(self.curve, self.curve_rejected)
                if count_rejected or not rejected]

    def counted_compute(self, count_rejected: bool) -> list[float]:
        """:attr:`compute` at the same trials as :meth:`counted_curve`."""
        return [c for c, rejected in zip(self.compute, self.curve_rejected)
                if count_rejected or not rejected]

    def count(self, outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in self.finished)

    def write_artifacts(self, html: bool = True) -> None:
        """``pareto_front.json``, ``pareto_front.png`` and (``html``) ``pareto_front.html`` on
        the parent, replacing the previous ones: what to write is decided here, the drawing
        and uploading is queued for the background thread (its errors come back on the next
        call or at :meth:`close`). The PNG is drawn only when the trained candidates changed:
        a rejected or failed trial leaves it as it was. Drawing both plots on Tune's event loop
        held the next trial back 0.5-3 s after every trained one on 2 cores."""
        self._raise_write_errors()
        front = self.front()
        points = self.candidates()
        png_key = self._front_key(points)
        png = bool(points) and png_key != self._png_points
        html = bool(points) and html
        if png:
            self._png_points = png_key
        if html:
            self._html_front, self._html_trials = self._front_key(front), len(self.finished)
        title = (f"{self.run_name}: {len(points)} trained, {len(front)} on the front, "
                 f"hypervolume {self.hypervolume:.4f}")
        summary = {"objectives": {"accuracy": "max", "latency_ms": "min"},
                   "accuracy_is": self.metric,
                   "reference_point": {"accuracy": 0.0, "latency_ms": self.reference_ms},
                   "hypervolume": self.hypervolume, "trials_finished": len(self.finished),
                   "front": front}
        self._writes.append(self._writer.submit(self._upload_plots, summary, list(points),
                                                title, png, html))

    def _upload_plots(self, summary: dict[str, Any], points: list[dict[str, Any]],
                      title: str, png: bool, html: bool) -> None:
        """Runs on the background thread: draw and upload one snapshot of the front."""
        from nas.plots import pareto_html, pareto_png

        front = summary["front"]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "pareto_front.json").write_text(json.dumps(summary, indent=2))
            if png:
                pareto_png(points, front, folder / "pareto_front.png", title, self.budget_ms,
                           self.metric)
            if html:
                pareto_html(points, front, folder / "pareto_front.html", title, self.budget_ms,
                            self.metric)
            for file in sorted(folder.iterdir()):
                self.client.log_artifact(self.parent_id, str(file))

    def _raise_write_errors(self) -> None:
        """Re-raise, on the caller's thread, the first error of a finished background write."""
        done = [f for f in self._writes if f.done()]
        self._writes = [f for f in self._writes if f not in done]
        for future in done:
            future.result()

    def note(self, status: str) -> str:
        """The parent run's description: the search's summary (see :mod:`nas.tracking.text`)."""
        counts = {"finished": len(self.finished),
                  **{k: self.count(k) for k in ("completed", "stopped", "rejected", "failed")}}
        return search_note(self.run_name, status, self.settings, counts, self.front(),
                           self.hypervolume, self.reference_ms)

    def close(self, status: str = "FINISHED") -> None:
        """End every child still open (``KILLED``); write the final plots (the HTML one too,
        unless no trial finished since it was written) and the description; end the parent
        with ``status``.

        The plots are the one optional part: a search killed while one of them was being drawn
        (a SIGTERM in the middle of matplotlib's first import leaves it half-imported) still
        ends its runs with the right status, and says the plots are missing; a finished
        search whose plot failed ends its runs, then raises."""
        if self.closed:
            return
        for trial_id in list(self.children):
            self._end(self.children.pop(trial_id), *self.open_trials.pop(trial_id, ("", "")),
                      "killed", "KILLED")
        try:
            if not self.finished or self._html_trials != len(self.finished):
                self.write_artifacts()
            self._writer.shutdown(wait=True)  # every queued plot is uploaded before the run ends
            self._raise_write_errors()
        except Exception as err:  # noqa: BLE001 - the runs' status matters more than a plot
            if status == "FINISHED":
                raise  # after the finally below has ended the parent
            logger.warning("search %s ended %s without its final plots: %s: %s",
                           self.run_name, status, type(err).__name__, err)
        finally:
            self._writer.shutdown(wait=True)
            self.client.set_tag(self.parent_id, NOTE_TAG, self.note(status))
            self.client.set_terminated(self.parent_id, status=status)
            self.closed = True
