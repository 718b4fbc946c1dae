"""``hwnas search``: run (or resume) one search and print its Pareto front."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from nas.cli._common import JsonOpt, emit_json, err, mib, out, progress_bar, si, user_input
from nas.strategies.registry import strategy_names


def search(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Search config (YAML); see configs/quickstart.yaml. Without it, "
        "the built-in defaults (the quickstart's space, estimator and data).")] = None,
    strategy: Annotated[str | None, typer.Option(
        help=f"Override the strategy: {', '.join(strategy_names())}.")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Override the number of trials.")
                      ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the training epochs (the "
                                               "most any trial trains; ASHA stops weak ones "
                                               "earlier).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override the seed (strategy, data "
                                             "split, weight init).")] = None,
    name: Annotated[str | None, typer.Option(help="Override the search name (MLflow run "
                                             "name prefix).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db in the working "
        "directory; http://HOST:PORT for a server).")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (e.g. 127.0.0.1:6379); default: start a local Ray.")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Continue an interrupted search: its run name (NAME-YYYYmmdd-HHMMSS), its search "
        "name (the latest run of that name) or its Ray Tune folder. It keeps its saved config "
        "(--config only says where storage_path is); finished trials are not run again.")
                      ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search architectures: propose with a strategy, reject over-budget candidates with the
    latency estimator and memory model, train the rest briefly (ASHA stops weak ones), and log
    every trial and the accuracy/latency Pareto front to MLflow."""
    from nas.config import load_config
    from nas.search import STATE_FILE, find_search, load_search_state, prepare, run_search

    with user_input():
        base = load_config(config)
    if resume is not None:
        given = [flag for flag, value in (("--strategy", strategy), ("--trials", trials),
                 ("--epochs", epochs), ("--seed", seed), ("--name", name),
                 ("--tracking-uri", tracking_uri)) if value is not None]
        with user_input():
            if given:
                raise ValueError(f"--resume continues a search with its saved config; drop "
                                 f"{', '.join(given)}")
            folder = Path(resume)
            if not (folder / STATE_FILE).is_file():
                folder = find_search(base.storage_path, resume)
            state = load_search_state(folder)
        err.print(f"resuming [bold]{state['run_name']}[/] from {folder} (MLflow parent run "
                  f"{state['parent_run_id']})", highlight=False, soft_wrap=True)
        total = int(state["config"]["trials"])
        counted = bool(state["config"].get("count_rejected", True))
        with _search_progress(total, counted) as on_update, open(os.devnull, "w") as quiet:
            summary = run_search(address=address, on_update=on_update, tune_output=quiet,
                                 resume=folder)
        _print_summary(summary, as_json)
        return
    other = strategy is not None and strategy != base.strategy.name
    with user_input():  # every config problem is reported before anything starts
        cfg = base.with_overrides(**{
            "strategy.name": strategy, "strategy.params": {} if other else None,
            "trials": trials, "training.epochs": epochs, "seed": seed, "name": name,
            "tracking.uri": tracking_uri})
        prepared = prepare(cfg)
    counted = (f"{cfg.trials} trials" if cfg.count_rejected
               else f"{cfg.trials} trained candidates (rejected ones extra)")
    err.print(f"[bold]{cfg.name}[/]: {cfg.strategy.name}, {counted}, on "
              f"{cfg.space.name} ({cfg.hardware.profile}, estimator {cfg.hardware.estimator}), "
              f"data {cfg.task.dataset}; MLflow {cfg.tracking.uri} "
              f"(experiment {cfg.tracking.experiment})", highlight=False, soft_wrap=True)
    with _search_progress(cfg.trials, cfg.count_rejected) as on_update:
        with open(os.devnull, "w") as quiet:  # Tune's banners; its state and logs stay on disk
            summary = run_search(cfg, address=address, on_update=on_update, prepared=prepared,
                                 tune_output=quiet)
    _print_summary(summary, as_json)


def _print_summary(summary: Any, as_json: bool) -> None:
    from nas.tracking.store import ui_hint

    if as_json:
        emit_json(summary.to_json())
        return
    table = Table("latency ms", summary.metric, "params", "peak act.", "MACs", "epochs",
                  box=box.SIMPLE, title=f"Pareto front: {len(summary.pareto)} of "
                  f"{summary.completed + summary.stopped} trained candidates")
    table.add_column("arch", overflow="fold")
    for p in summary.pareto:
        table.add_row(f"{p['latency_ms']:.4f}", f"{p['accuracy']:.4f}", si(p["params"]),
                      mib(p["peak_activation_bytes"]), si(p["macs"]), str(p["epochs"]),
                      p["arch"])
    if summary.pareto:
        out.print(table)
    else:
        out.print("No trained candidate: every trial was rejected or failed (loosen the budgets "
                  "or add trials).")
    out.print(f"{summary.trials} trials: {summary.completed} completed, {summary.stopped} "
              f"stopped early by ASHA, {summary.rejected} rejected before training, "
              f"{summary.failed} failed; hypervolume {summary.hypervolume:.4f} (reference "
              f"latency {summary.reference_ms:g} ms) in {summary.seconds:.0f} s", highlight=False)
    hint = rejection_hint(summary.trials, summary.rejected) if summary.count_rejected else None
    if hint:
        out.print(hint, highlight=False)
    out.print(f"MLflow parent run {summary.parent_run_id} (experiment {summary.experiment}, "
              f"{summary.tracking_uri}). {ui_hint(summary.tracking_uri, summary.experiment_id)}",
              highlight=False, soft_wrap=True)
    out.print(f"Ray Tune trial state and logs: {summary.tune_path}", highlight=False)
    if summary.pareto:
        best = max(summary.pareto, key=lambda p: p["accuracy"])
        out.print(f"Train the best-scoring one fully and export it: hwnas train --run "
                  f"{best['run_id']} --epochs 30 --tracking-uri {summary.tracking_uri}",
                  highlight=False, soft_wrap=True)


def rejection_hint(trials: int, rejected: int) -> str | None:
    """A note when at least half the trials were rejected before training: they cost
    milliseconds, but each used up one of the ``trials`` the search was given."""
    if not trials or rejected * 2 < trials:
        return None
    return (f"Note: {rejected} of {trials} trials were over a budget and never trained; each "
            f"still counts toward trials: raise trials, loosen the budgets, or set "
            f"count_rejected: false to train more candidates.")


class _search_progress:  # noqa: N801 - used as a context manager factory
    """A live progress bar on a terminal; one line per finished trial otherwise."""

    def __init__(self, total: int, count_rejected: bool = True) -> None:
        self.total, self.seen, self.count_rejected = total, 0, count_rejected
        self.live = err.is_terminal or os.environ.get("HWNAS_PROGRESS") == "1"

    def __enter__(self) -> Any:
        if self.live:
            self.progress = progress_bar("search")
            self.progress.start()
            self.task = self.progress.add_task("starting Ray", total=self.total)
        return self.update

    def update(self, tracker: Any) -> None:
        finished = len(tracker.finished)
        rejected = tracker.count("rejected")
        # with count_rejected false, trials counts the candidates within the budgets only
        done = finished if self.count_rejected else finished - rejected
        text = (f"running {len(tracker.children)} · rejected {rejected} · "
                f"front {len(tracker.front())} · HV {tracker.hypervolume:.3f}")
        if self.live:
            self.progress.update(self.task, completed=done, description=text)
        for row in tracker.finished[self.seen:]:
            if not self.live:
                # a rejected or failed candidate was never scored: no accuracy, not 0
                trained = row["outcome"] in ("completed", "stopped")
                name = {"accuracy": "acc"}.get(tracker.metric, tracker.metric)
                score = f"{row.get('accuracy', float('nan')):.3f}" if trained else "  -  "
                acc = f"{name} {score}"
                err.print(f"[{done}/{self.total}] {row['outcome']:>9} "
                          f"{acc} · {row.get('latency_ms', float('nan')):.3f} ms · "
                          f"{row.get('arch', '?')}", highlight=False, soft_wrap=True)
        self.seen = finished

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.progress.stop()
