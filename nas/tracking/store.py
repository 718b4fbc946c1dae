"""The MLflow side of hwnas: experiments, runs, paged reads, and how a person browses them.

Nothing here knows Ray (``python -c "import nas.tracking.store"`` loads no Ray) or what a
search is; :mod:`nas.tracking.tracker` builds the search's runs on top of it.

An experiment hwnas creates or uses is marked for MLflow 3's UI (3.17.2, read from its bundled
JavaScript and checked in a headless browser):

- tag ``mlflow.experimentKind = custom_model_development``, the value the UI's own kind selector
  writes for model training. 3.17.2 itself takes the kind from its global GenAI / Model training
  switch (browser storage ``mlflow.workflowType``, ``genai`` on a first visit) unless the URL
  says ``workflowType=machine_learning``; so the link :func:`ui_url` prints says so, and opens
  the Runs page rather than the GenAI overview (traces, judges, assistant prompts).
- a saved runs view (tag ``mlflow.sharedViewState.hwnas-trials``, listed in the runs page's
  Views menu, opened by the link's ``viewStateShareKey=hwnas-trials``). The runs table shows no
  metric column until a person picks one: its default columns are Source, Models and Dataset
  (``getDefaultSelectedColumns``), and a person's picks live in their browser's storage only. A
  saved view is the one place the UI reads columns from the server, so this one selects the
  columns that matter (accuracy, predicted latency, hypervolume, outcome, epochs, size) and
  widens the run-name column. The UI then says "You're viewing a shared view"; its "Override
  saved view" button makes it the person's own default.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI (Markdown)
VIEW_ID = "hwnas-trials"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default

# The runs table columns of the saved view, in this order (trials fill the first two and the
# outcome, the search's parent run the hypervolume).
VIEW_COLUMNS = (("metrics", "accuracy"), ("metrics", "latency_ms"), ("metrics", "hypervolume"),
                ("tags", "hwnas.outcome"), ("metrics", "epochs"), ("metrics", "params"),
                ("metrics", "peak_activation_bytes"), ("metrics", "pareto_size"))
RUN_NAME_COLUMN = ("attributes", "Run Name")
RUN_NAME_PX = 270  # "t008 ficfiff 0.267ms rejected" in full


def _column(kind: str, key: str) -> str:
    """A runs-table column id as the UI writes it (``makeCanonicalSortKey``)."""
    return f"{kind}.`{key}`"


def view_state() -> dict[str, Any]:
    """The saved view's page state: the UI's own field names (its ``ExperimentPageUIState``
    and search facets); fields left out keep the UI's defaults. The UI applies column widths
    only to the columns ``columnOrder`` names."""
    columns = [_column(kind, key) for kind, key in VIEW_COLUMNS]
    name = _column(*RUN_NAME_COLUMN)
    return {"selectedColumns": columns, "columnOrder": [name, *columns],
            "columnWidths": {name: RUN_NAME_PX},
            "runsHiddenMode": "SHOW_ALL",  # every run in the charts, not the first 10
            "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False}


def _view_envelope(now_ms: int) -> str:
    """The tag value of a saved view: MLflow 3.17's envelope ``{name, createdAt, updatedAt,
    state}`` with ``state`` the page state as a JSON string."""
    return json.dumps({"name": "hwnas: trials with metrics", "createdAt": now_ms,
                       "updatedAt": now_ms, "state": json.dumps(view_state())})


def _has_current_view(tags: Mapping[str, str]) -> bool:
    try:
        return json.loads(json.loads(tags[VIEW_TAG])["state"]) == view_state()
    except (KeyError, TypeError, ValueError):
        return False


def experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created in the driver if missing, and marked for the UI
    (see the module docstring; an experiment made by an older hwnas is marked on first use).
    For a local SQLite store its artifacts go to ``mlartifacts/`` beside the database (not into
    Ray's per-trial temp dirs); a server chooses its own artifact location."""
    existing = client.get_experiment_by_name(name)
    if existing is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            location = (db.resolve().parent / "mlartifacts").as_uri()
        return client.create_experiment(name, artifact_location=location, tags={
            EXPERIMENT_KIND_TAG: MODEL_TRAINING,
            VIEW_TAG: _view_envelope(int(time.time() * 1000))})
    tags = existing.tags or {}
    if tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if not _has_current_view(tags):
        client.set_experiment_tag(existing.experiment_id, VIEW_TAG,
                                  _view_envelope(int(time.time() * 1000)))
    return existing.experiment_id


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


@contextlib.contextmanager
def ended_run(client: Any, run_id: str) -> Iterator[None]:
    """End run ``run_id`` when the block ends: ``FINISHED``, ``KILLED`` on Ctrl-C or SIGTERM
    (a SIGTERM raises ``SystemExit(143)`` here, see :mod:`nas.signals`) and ``FAILED`` on an
    error; never left ``RUNNING``. A second SIGTERM waits until the run is ended."""
    from nas.signals import held, sigterm_raises

    status = "FAILED"
    with sigterm_raises():
        try:
            yield
            status = "FINISHED"
        except (KeyboardInterrupt, SystemExit):
            status = "KILLED"
            raise
        finally:
            with held():
                client.set_terminated(run_id, status=status)


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """``params`` as strings (MLflow's 6000-character limit), 100 per request."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def log_values(client: Any, run_id: str, metrics: Mapping[str, Any], step: int,
               tags: Mapping[str, str] | None = None) -> None:
    """The finite numbers of ``metrics`` (booleans and strings skipped) at ``step``, and
    ``tags``, in one request."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)
             and math.isfinite(float(v))]
    tag_batch = [RunTag(k, v) for k, v in (tags or {}).items()]
    if batch or tag_batch:
        client.log_batch(run_id, metrics=batch, tags=tag_batch)


def mlflow_command() -> str:
    """The ``mlflow`` executable of the Python running hwnas (a venv's ``bin/mlflow``, which a
    shell outside the venv does not find by name), else ``python -m mlflow``."""
    exe = Path(sys.executable).parent / "mlflow"  # not resolved: a venv's python is a symlink
    if exe.is_file():
        return shlex.quote(str(exe))
    return f"{shlex.quote(sys.executable)} -m mlflow"


def ui_url(base: str, experiment: str | None = None) -> str:
    """The runs page of ``experiment`` (an id) in the model-training view with hwnas's saved
    view (see the module docstring), or the UI's home."""
    base = base.rstrip("/")
    if experiment is None:
        return base
    return (f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={VIEW_ID}")


def ui_hint(tracking_uri: str, experiment: str | None = None) -> str:
    """How to see the runs in ``tracking_uri``: the page of a server, or the full command that
    serves a database (the venv's own ``mlflow``, the database by absolute path, so it works
    from any folder) and the URL it will serve."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"Browse the runs at {ui_url(tracking_uri, experiment)}"
    uri = tracking_uri
    if uri.startswith("sqlite:///"):
        uri = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return (f"Browse the runs:\n  {mlflow_command()} ui --backend-store-uri {shlex.quote(uri)} "
            f"--workers 1\n  then open {ui_url(DEFAULT_UI_URL, experiment)}")
