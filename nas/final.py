"""Final training: the chosen candidate trained fully, checkpointed every epoch, resumable.

A search ends with architectures and brief-training scores; :func:`train_final` turns one of them
into a model to take away. It trains with the search config's task, batch size, learning rate
and weight decay, for ``epochs`` epochs under a cosine learning-rate decay over all of them (the
normal schedule, not the search's brief one), reusing the task's own ``train_epoch`` and
``evaluate`` (:mod:`nas.tasks`), so a detection or segmentation task trains here as soon as it
is a :class:`~nas.tasks.Task`.

The output folder holds everything a restart needs:

- ``final.json``: what is being trained (arch, epochs, config) and the MLflow run it logs to;
- ``checkpoint.pt``: after every epoch, the model, optimizer and scheduler state, the RNG
  states (torch's global one and, on a GPU, CUDA's: dropout; the data loader's: shuffling), the
  per-epoch history and the best metric, written atomically
  (:func:`~searchspaces.files.atomic_write`): a kill at any moment leaves the previous epoch's
  checkpoint intact;
- at the end ``weights.pt`` (the model's weights and what rebuilds it: no optimizer) and
  ``model.onnx``.

Started again on the same folder, training continues after the checkpoint's epoch in the same
MLflow run, and ends with the same weights an uninterrupted run would have had. An epoch's
metrics are logged after its checkpoint is written; a resume logs the checkpoint's epochs that
MLflow lacks (a kill between the two), so every epoch has exactly one point per metric.

Checkpoints are ``torch.save`` dicts of tensors and numbers, read back with
``torch.load(weights_only=True)``: no model object is ever pickled. The MLflow model is logged
through ``mlflow.pytorch.log_model`` in its ``pt2`` format (``torch.export``), not pickle.

The final run goes to the search's experiment, tagged ``hwnas.role = final`` with the search's
parent run id (``hwnas.search_run_id``) and the trial's run id (``hwnas.source_run_id``). It is
deliberately not nested under the search (``mlflow.parentRunId``): a resumed search treats
every child run as one of its trials.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.config import SearchConfig, load_config, validate_config
from nas.tasks import make_task, stream_loaders
from searchspaces.files import atomic_write
from searchspaces.genome import TASK_HEADS, Architecture

MANIFEST = "final.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
ONNX = "model.onnx"
WEIGHTS_FORMAT = "hwnas-weights-1"  # checkpoints and weights files carry it


@dataclass(frozen=True)
class Source:
    """What to train: an architecture, the search config whose task and training settings it
    trains under, and the runs it came from (``None`` for an architecture given by hand)."""

    arch: str
    config: SearchConfig
    search_run_id: str | None = None
    source_run_id: str | None = None
    experiment_id: str | None = None  # the source run's experiment: the final run goes there


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    # MLflow prints a "View run" line per ended run to stdout, which belongs to --json.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per download
    return MlflowClient(tracking_uri=tracking_uri)


def get_run(client: Any, run_id: str) -> Any:
    """The MLflow run ``run_id``; an unknown id is a one-line ``ValueError``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ValueError(f"no MLflow run {run_id!r} in {client.tracking_uri}") from None


def search_run_of(run: Any) -> str | None:
    """The search parent run of a trial's run (or of a final-training run)."""
    tags = run.data.tags
    return tags.get("mlflow.parentRunId") or tags.get("hwnas.search_run_id")


def run_arch(run: Any) -> str:
    """The architecture a trial or final-training run trained (its ``arch`` param)."""
    arch = run.data.params.get("arch", "")
    if not arch:
        role = run.data.tags.get("hwnas.role", "")
        hint = ("it is a search's parent run; pass one of its child runs (the Pareto front "
                "lists their run ids)" if role == "search" else "it is not an hwnas trial")
        raise ValueError(f"MLflow run {run.info.run_id} has no arch param: {hint}")
    return arch


def source_from_run(tracking_uri: str, run_id: str, config: SearchConfig | None) -> Source:
    """The architecture of run ``run_id`` and the config to train it under: ``config``, else the
    search's own (its parent run's ``search_config.yaml``)."""
    from nas.tracking.store import check_tracking_uri
    from nas.tracking.tracker import CONFIG_ARTIFACT

    check_tracking_uri(tracking_uri)
    client = _client(tracking_uri)
    run = get_run(client, run_id)
    arch = run_arch(run)
    search_id = search_run_of(run)
    if config is None:
        if search_id is None:
            raise ValueError(f"MLflow run {run_id} belongs to no search; pass --config")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = client.download_artifacts(search_id, CONFIG_ARTIFACT, tmp)
            except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing file
                raise ValueError(f"search run {search_id} has no {CONFIG_ARTIFACT}; pass "
                                 f"--config") from None
            config = load_config(path)
    # the final run goes beside its source run, whatever store the config names
    config = config.with_overrides(**{"tracking.uri": tracking_uri})
    return Source(arch, config, search_id, run_id, run.info.experiment_id)


# -- checkpoints and weights ------------------------------------------------------------------
def _save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def load_weights(path: str | Path) -> dict[str, Any]:
    """A checkpoint or weights file of :func:`train_final` (tensors and numbers only:
    ``weights_only``); anything else is a one-line ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint file {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a foreign file
        raise ValueError(f"{path} is not an hwnas checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not an hwnas checkpoint or weights file (written by "
                         f"hwnas train)")
    return state


@dataclass(frozen=True)
class Exportable:
    """A model to export and what its example input needs."""

    model: nn.Module
    arch: Architecture
    in_channels: int
    trained: bool

    def example(self) -> torch.Tensor:
        """One all-zero image at the architecture's resolution (batch 1)."""
        return torch.zeros(1, self.in_channels, self.arch.resolution, self.arch.resolution)


def model_from_weights(state: dict[str, Any]) -> Exportable:
    """The trained model a checkpoint or weights file holds, in eval mode, built by the task it
    was trained for."""
    config = validate_config(state["config"], "in the checkpoint")
    arch = Architecture.from_string(state["arch"])
    model = build(make_task(config.task, config.seed), arch, state["num_classes"],
                  state["in_channels"])
    model.load_state_dict(state["model"])
    return Exportable(model.eval(), arch, state["in_channels"], True)


@dataclass(frozen=True)
class _Shape:
    """What a task's ``model(arch, data)`` reads of its data split: no data need be loaded."""

    num_classes: int
    in_channels: int


def build(task: Any, arch: Architecture, num_classes: int, in_channels: int) -> nn.Module:
    """``task``'s model of ``arch`` in eval mode, without loading data."""
    return task.model(arch, _Shape(num_classes, in_channels)).eval()


def model_from_run(tracking_uri: str, run_id: str, num_classes: int | None = None,
                   in_channels: int | None = None) -> Exportable:
    """The model of MLflow run ``run_id``: a final-training run's
    weights (its ``weights/weights.pt`` artifact), else a trial's architecture with fresh
    weights, its classes and channels from the search's data unless given."""
    client = _client(tracking_uri)
    run = get_run(client, run_id)
    if run.data.tags.get("hwnas.role") == "final":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = client.download_artifacts(run_id, f"weights/{WEIGHTS}", tmp)
            except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing file
                raise ValueError(f"final-training run {run_id} has no weights yet (it did not "
                                 f"finish); resume it with hwnas train, or export its "
                                 f"checkpoint with --weights") from None
            return model_from_weights(load_weights(path))
    source = source_from_run(tracking_uri, run_id, None)
    arch = Architecture.from_string(source.arch)
    task = make_task(source.config.task, source.config.seed)
    if num_classes is None or in_channels is None:
        data = task.data(arch.resolution)
        num_classes = num_classes or data.num_classes
        in_channels = in_channels or data.in_channels
    return Exportable(build(task, arch, num_classes, in_channels), arch, in_channels, False)


# -- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinalResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    arch: str
    metric: str
    epochs: int
    start_epoch: int  # the checkpoint's epoch it resumed after (0: a fresh start)
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float
    out: str
    seconds: float
    search_run_id: str | None
    source_run_id: str | None

    def to_json(self) -> dict[str, Any]:
        folder = Path(self.out)
        return {"run_id": self.run_id, "experiment_id": self.experiment_id,
                "tracking_uri": self.tracking_uri, "arch": self.arch, "metric": self.metric,
                "epochs": self.epochs, "start_epoch": self.start_epoch,
                "final": self.history[-1] if self.history else {},
                "best": {"epoch": self.best_epoch, self.metric: self.best_value},
                "history": self.history, "out": self.out,
                "checkpoint": str(folder / CHECKPOINT), "weights": str(folder / WEIGHTS),
                "onnx": str(folder / ONNX), "seconds": round(self.seconds, 2),
                "search_run_id": self.search_run_id, "source_run_id": self.source_run_id}


def default_out(source: Source) -> Path:
    """A folder named for what is trained, so running the same command again resumes."""
    if source.source_run_id:
        return Path("final") / source.source_run_id
    return Path("final") / f"{source.config.name}-{zlib.crc32(source.arch.encode()):08x}"


def _manifest(source: Source, epochs: int) -> dict[str, Any]:
    return {"arch": source.arch, "epochs": epochs, "config": source.config.model_dump(),
            "search_run_id": source.search_run_id, "source_run_id": source.source_run_id}


def _check_same(folder: Path, saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    for key in ("arch", "epochs", "config"):
        if saved.get(key) != wanted[key]:
            raise ValueError(f"{folder} holds a training with another {key} "
                             f"({json.dumps(saved.get(key))[:80]}); pass the same arguments "
                             f"to resume it, or another --out")


def _open_run(client: Any, folder: Path, source: Source, epochs: int
              ) -> tuple[str, str, bool]:
    """The final run's (run id, experiment id, whether it already ended ``FINISHED``): the one
    ``folder`` records (a resume: it runs again unless finished), else a new one, recorded in
    ``folder`` before any epoch is trained."""
    from nas.tracking.store import experiment_id, log_params

    wanted = _manifest(source, epochs)
    path = folder / MANIFEST
    if path.is_file():
        saved = json.loads(path.read_text())
        _check_same(folder, saved, wanted)
        finished = get_run(client, saved["run_id"]).info.status == "FINISHED"
        if not finished:
            client.update_run(saved["run_id"], status="RUNNING")
        return saved["run_id"], saved["experiment_id"], finished
    config = source.config
    exp = source.experiment_id or experiment_id(client, config.tracking.experiment,
                                                config.tracking.uri)
    tags = {"hwnas.role": "final", "mlflow.note.content":
            f"Final training of `{source.arch}` for {epochs} epochs (hwnas train)."}
    if source.search_run_id:
        tags["hwnas.search_run_id"] = source.search_run_id
    if source.source_run_id:
        tags["hwnas.source_run_id"] = source.source_run_id
    run = client.create_run(exp, run_name=f"final {source.arch[:40]}", tags=tags)
    training = config.training
    log_params(client, run.info.run_id, {
        "arch": source.arch, "epochs": epochs, "task": config.task.kind,
        "dataset": config.task.dataset, "batch_size": training.batch_size, "lr": training.lr,
        "weight_decay": training.weight_decay, "seed": config.seed, "out": str(folder)})
    atomic_write(path, json.dumps({**wanted, "run_id": run.info.run_id, "experiment_id": exp,
                                   "tracking_uri": client.tracking_uri}, indent=2))
    return run.info.run_id, exp, False


def _backfill(client: Any, run_id: str, history: list[dict[str, float]]) -> None:
    """Log the checkpoint's epochs MLflow has no point for (killed between the two writes)."""
    from nas.tracking.store import log_values

    if not history:
        return
    key = next(iter(history[0]))
    logged = {m.step for m in client.get_metric_history(run_id, key)}
    for epoch, row in enumerate(history, start=1):
        if epoch not in logged:
            log_values(client, run_id, row, epoch)


@dataclass(frozen=True)
class FinalPlan:
    """A checked final training: what to train, its task with the data loaded, and a folder
    that is empty or holds this same training (to resume)."""

    source: Source
    epochs: int
    folder: Path
    task: Any
    data: Any


def plan_final(source: Source, epochs: int, out: str | Path) -> FinalPlan:
    """Check everything the user gave before anything is trained or logged: the epochs, the
    architecture (its head must be the task's), the tracking store, the data, and that ``out``
    can be resumed (it holds no other training). Each problem is a one-line ``ValueError``."""
    from nas.tracking.store import check_tracking_uri

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    arch = Architecture.from_string(source.arch)
    kind, head = source.config.task.kind, TASK_HEADS[source.config.task.kind]
    if arch.head_kind != head:
        raise ValueError(f"a {kind} task trains architectures ending in a {head!r} head, but "
                         f"this one ends in {arch.head_string()!r}")
    check_tracking_uri(source.config.tracking.uri)
    folder = Path(out).expanduser().resolve()
    if (folder / MANIFEST).is_file():
        saved = json.loads((folder / MANIFEST).read_text())
        _check_same(folder, saved, _manifest(source, epochs))
        get_run(_client(source.config.tracking.uri), saved["run_id"])  # deleted since?
    elif folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file, not a folder")
    task = make_task(source.config.task, source.config.seed)  # the search's split
    return FinalPlan(source, epochs, folder, task, task.data(arch.resolution))


def train_final(plan: FinalPlan, device: torch.device | None = None,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> FinalResult:
    """Train ``plan.source.arch`` for ``plan.epochs`` epochs in ``plan.folder`` (resuming what
    is there), log it to MLflow and write the weights and the ONNX export; ``on_epoch(epoch,
    metrics)`` after every epoch. A ``SIGTERM`` ends the run ``KILLED`` (exit status 143), an
    error ``FAILED``; either way the checkpoint of the last whole epoch stays."""
    from nas.signals import held, sigterm_raises
    from nas.tracking.store import log_values
    from nas.trial import trial_seed

    source, epochs, folder, task, data = (plan.source, plan.epochs, plan.folder, plan.task,
                                          plan.data)
    arch = Architecture.from_string(source.arch)
    config = source.config
    device = device or torch.device("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    client = _client(config.tracking.uri)
    run_id, exp, finished = _open_run(client, folder, source, epochs)

    seed = trial_seed(config.seed, source.arch)  # the search trial's initial weights
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = task.model(arch, data).to(device)
    train_loader, val_loader = stream_loaders(data, config.training.batch_size, generator,
                                              getattr(task, "collate", None))
    training = config.training
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr,
                                  weight_decay=training.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * max(len(train_loader), 1))
    history: list[dict[str, float]] = []
    best_epoch, best = 0, float("-inf")
    if (folder / CHECKPOINT).is_file():
        state = load_weights(folder / CHECKPOINT)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        generator.set_state(state["generator"])
        history, best_epoch, best = state["history"], state["best_epoch"], state["best"]
        _backfill(client, run_id, history)
    start_epoch = len(history)
    meta = {"format": WEIGHTS_FORMAT, "arch": source.arch, "num_classes": data.num_classes,
            "in_channels": data.in_channels, "task": config.task.kind, "metric": task.metric,
            "config": config.model_dump()}
    started = time.perf_counter()
    status = "FAILED"
    try:
        with sigterm_raises():
            for epoch in range(start_epoch + 1, epochs + 1):
                tick = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                row = task.train_epoch(model, train_loader, optimizer, device, schedule)
                row.update(task.evaluate(model, val_loader, device))
                row.update(lr=lr, epoch_seconds=time.perf_counter() - tick)
                history.append(row)
                if row[task.metric] > best:
                    best_epoch, best = epoch, row[task.metric]
                _save(folder / CHECKPOINT, {
                    **meta, "epoch": epoch, "epochs": epochs, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                    "rng": torch.get_rng_state(), "generator": generator.get_state(),
                    "cuda_rng": (torch.cuda.get_rng_state(device) if device.type == "cuda"
                                 else None),
                    "history": history, "best_epoch": best_epoch, "best": best})
                with held():  # a SIGTERM here waits for the epoch's metrics
                    log_values(client, run_id, row, epoch)
                if on_epoch is not None:
                    on_epoch(epoch, row)
            if not finished:
                with held():
                    _finish(client, run_id, model.cpu().eval(), meta, folder, data, epochs,
                            {f"best_{task.metric}": best, "best_epoch": best_epoch})
            status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        if status != "FINISHED":
            with sigterm_raises(), held():  # a second SIGTERM waits until the run is ended
                client.set_terminated(run_id, status=status)
    return FinalResult(run_id, exp, config.tracking.uri, source.arch, task.metric, epochs,
                       start_epoch, history, best_epoch, best, str(folder),
                       time.perf_counter() - started, source.search_run_id,
                       source.source_run_id)


def _finish(client: Any, run_id: str, model: nn.Module, meta: dict[str, Any], folder: Path,
            data: Any, epochs: int, best: dict[str, float]) -> None:
    """Weights file, ONNX export, the MLflow model and the best metric; the run ends
    ``FINISHED``. Idempotent: a kill in here is finished by the next start."""
    import mlflow
    import mlflow.pytorch

    from nas.tracking.store import log_values
    from searchspaces.export import export_model

    _save(folder / WEIGHTS, {**meta, "epoch": epochs, "model": model.state_dict()})
    example = torch.stack([data.val[i][0] for i in range(min(2, len(data.val)))])
    export_model(model, example[:1], folder / ONNX, "onnx")
    client.log_artifact(run_id, str(folder / WEIGHTS), "weights")
    client.log_artifact(run_id, str(folder / ONNX), "onnx")
    log_values(client, run_id, best, epochs)
    mlflow.set_tracking_uri(client.tracking_uri)
    # pt2 needs a tensor signature, which MLflow infers only for one output tensor: a
    # detector's tuple of per-scale maps gets the input's alone
    with torch.no_grad():
        output = model(example)
    signature = mlflow.models.infer_signature(
        example.numpy(), output.numpy() if isinstance(output, torch.Tensor) else None)
    with mlflow.start_run(run_id=run_id):  # ends the run FINISHED
        # pt2 (torch.export), never pickle; explicit requirements skip MLflow's inference,
        # which would load the model again in a subprocess
        mlflow.pytorch.log_model(model, name="model", input_example=example.numpy(),
                                 signature=signature,
                                 pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
                                 serialization_format="pt2")
