"""``hwnas train``: train one chosen candidate fully, resumably, and export it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.cli._common import (
    JsonOpt,
    UsageError,
    emit_json,
    err,
    out,
    progress_bar,
    user_arch,
    user_input,
)


def train(
    epochs: Annotated[int, typer.Option(
        help="Epochs of training (cosine learning-rate decay over all of them).",
        show_default=False)],
    arch: Annotated[str | None, typer.Argument(
        help="The architecture string to train (or a baseline name); or give --run.",
        show_default=False)] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Train the architecture of this MLflow run: a search's child (trial) "
        "run, as the Pareto front lists them. Without --config it trains under that search's "
        "saved config.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML) whose task (dataset), batch size, lr and "
        "weight decay the training uses; with an ARCH, default the built-in one.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Output folder: checkpoint every epoch, weights.pt, model.onnx. The same "
        "folder again resumes after its last checkpoint. Default final/RUN_ID, or "
        "final/NAME-HASH for an ARCH.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI (default: the config's; for --run, "
        "sqlite:///mlflow.db unless the config names another).")] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1; auto is cuda "
                                        "when there is one.")] = "auto",
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch (default: torch's own choice).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one candidate fully (cosine LR over all epochs, not the search's brief budget) with
    the config's task and data, checkpointing every epoch under --out: the same command again
    after a kill resumes from the last checkpoint in the same MLflow run. The run (tag
    hwnas.role=final, linked to its search and trial) gets every epoch's metrics, the model
    (mlflow.pytorch) and the ONNX export; 'hwnas export --weights' or '--run' exports it
    again."""
    import torch

    from nas.config import load_config
    from nas.final import Source, default_out, plan_final, source_from_run, train_final

    if (arch is None) == (run is None):
        raise UsageError("give either an ARCH or --run RUN_ID (see --help)")
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    with user_input():
        base = load_config(config) if config is not None else None
        if run is not None:
            uri = tracking_uri or (base.tracking.uri if base else "sqlite:///mlflow.db")
            source = source_from_run(uri, run, base)
        else:
            text = user_arch(arch).to_string()
            cfg = (base or load_config(None)).with_overrides(**{"tracking.uri": tracking_uri})
            source = Source(text, cfg)
        torch_device = _device(device)
        # refuses an --out that holds another training (arch, epochs or config)
        plan = plan_final(source, epochs, out_dir or default_out(source))
    if threads is not None:
        torch.set_num_threads(threads)
    err.print(f"training {source.arch} for {epochs} epoch{'s' * (epochs != 1)} on {torch_device} "
              f"(data {source.config.task.dataset}) in {plan.folder}", highlight=False,
              soft_wrap=True)
    with _progress(epochs) as on_epoch:
        result = train_final(plan, torch_device, on_epoch)
    summary = result.to_json()
    if as_json:
        emit_json(summary)
        return
    final = summary["final"]
    resumed = (" (already trained: nothing to do)" if result.start_epoch == result.epochs
               else f" (resumed after epoch {result.start_epoch})" if result.start_epoch
               else "")
    plural = "s" * (result.epochs != 1)
    out.print(f"trained {result.arch} for {result.epochs} epoch{plural}{resumed}: "
              f"{result.metric} {final.get(result.metric, float('nan')):.4f} "
              f"(best {result.best_value:.4f} at epoch {result.best_epoch})", highlight=False,
              soft_wrap=True)
    out.print(f"checkpoint {summary['checkpoint']}\nweights {summary['weights']}\n"
              f"ONNX {summary['onnx']}", highlight=False)
    from nas.tracking.store import ui_hint

    out.print(f"MLflow run {result.run_id} (experiment {result.experiment_id}, "
              f"{result.tracking_uri}). {ui_hint(result.tracking_uri, result.experiment_id)}",
              highlight=False, soft_wrap=True)


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown torch device {name!r}; use cpu, cuda, cuda:N or auto"
                         ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name} asked for, but torch sees no CUDA device")
    return device


class _progress:  # noqa: N801 - used as a context manager factory
    """A live progress bar on a terminal (or with HWNAS_PROGRESS=1); one line per epoch
    otherwise, on stderr either way."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.live = err.is_terminal or os.environ.get("HWNAS_PROGRESS") == "1"

    def __enter__(self) -> Any:
        if self.live:
            self.progress = progress_bar("train")
            self.progress.start()
            self.task = self.progress.add_task("training", total=self.total)
        return self.update

    def update(self, epoch: int, metrics: dict[str, float]) -> None:
        text = " · ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch_seconds")
        if self.live:
            self.progress.update(self.task, completed=epoch, description=text)
        else:
            err.print(f"[{epoch}/{self.total}] {text}", highlight=False, soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.progress.stop()
