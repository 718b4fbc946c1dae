"""Accuracy/latency scatter plots of a search: a PNG (matplotlib) and an interactive HTML page
(plotly, hover shows the architecture string). Every evaluated candidate is a grey dot, the
Pareto front is joined as a staircase, rejected candidates are left out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _staircase(front: Sequence[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """The front as a step line: latency ascending, accuracy held until the next point."""
    pts = sorted((p["latency_ms"], p["accuracy"]) for p in front)
    xs, ys = [], []
    for i, (x, y) in enumerate(pts):
        if i:
            xs.append(x)
            ys.append(pts[i - 1][1])
        xs.append(x)
        ys.append(y)
    return xs, ys


METRIC_LABELS = {"accuracy": "validation accuracy", "map50": "validation mAP@0.5",
                 "miou": "validation mean IoU"}


def pareto_figure(points: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], title: str,
                  budget_ms: float | None = None, metric: str = "accuracy") -> Any:
    """The PNG's matplotlib figure. Its legend sits below the axes, outside them (constrained
    layout makes room), so it never hides a point wherever the candidates fall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110, layout="constrained")
    ax.scatter([p["latency_ms"] for p in points], [p["accuracy"] for p in points], s=14,
               color="0.65", label=f"evaluated ({len(points)})")
    xs, ys = _staircase(front)
    ax.plot(xs, ys, color="tab:red", lw=1.2)
    ax.scatter([p["latency_ms"] for p in front], [p["accuracy"] for p in front], s=26,
               color="tab:red", zorder=3, label=f"Pareto front ({len(front)})")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="0.3", ls="--", lw=0.8, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    return fig


def pareto_png(points: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], path: Path,
               title: str, budget_ms: float | None = None, metric: str = "accuracy") -> Path:
    """The front of a search, its y axis the task's ``metric`` (held in ``accuracy``)."""
    fig = pareto_figure(points, front, title, budget_ms, metric)
    fig.savefig(path)
    import matplotlib.pyplot as plt  # after pareto_figure chose the Agg back end

    plt.close(fig)
    return path


def pareto_html(points: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], path: Path,
                title: str, budget_ms: float | None = None, metric: str = "accuracy") -> Path:
    import plotly.graph_objects as go

    def hover(p: dict[str, Any]) -> str:
        return (f"{p['arch']}<br>{metric} {p['accuracy']:.4f} · {p['latency_ms']:.4f} ms"
                f"<br>params {p['params']:,} · peak act. {p['peak_activation_bytes']:,} B"
                f"<br>epochs {p['epochs']} · trial {p.get('trial', '')} ({p.get('trial_id', '')})")

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p["latency_ms"] for p in points],
                             y=[p["accuracy"] for p in points], mode="markers",
                             name=f"evaluated ({len(points)})", marker={"color": "#aaa"},
                             hovertext=[hover(p) for p in points], hoverinfo="text"))
    xs, ys = _staircase(front)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#d62728"},
                             hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=[p["latency_ms"] for p in front],
                             y=[p["accuracy"] for p in front], mode="markers",
                             name=f"Pareto front ({len(front)})", marker={"color": "#d62728"},
                             hovertext=[hover(p) for p in front], hoverinfo="text"))
    if budget_ms is not None:
        fig.add_vline(x=budget_ms, line_dash="dash", annotation_text=f"budget {budget_ms:g} ms")
    fig.update_layout(title=title, xaxis_title="predicted latency (ms)",
                      yaxis_title=METRIC_LABELS.get(metric, metric), template="plotly_white")
    # The plotly.js bundle is inlined so the page opens from MLflow's artifact view offline.
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
