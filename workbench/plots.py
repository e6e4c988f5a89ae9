"""Pure functions from plain data to plotly figures; the UI only displays what these return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=360,
        margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def make_loss_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], x_key: str = "step",
                     log_y: bool = False) -> go.Figure:
    """Train loss (lines) and val loss (dashed, markers) of one or more runs, overlaid, by step."""
    fig = go.Figure()
    for index, (label, rows) in enumerate(runs.items()):
        color = PALETTE[index % len(PALETTE)]
        train = [r for r in rows if r.get("train_loss") is not None and x_key in r]
        val = [r for r in rows if r.get("val_loss") is not None and x_key in r]
        if train:
            fig.add_trace(go.Scatter(x=[r[x_key] for r in train], y=[r["train_loss"] for r in train],
                                     mode="lines", name=f"{label} · train", line={"color": color}))
        if val:
            fig.add_trace(go.Scatter(x=[r[x_key] for r in val], y=[r["val_loss"] for r in val],
                                     mode="lines+markers", name=f"{label} · val",
                                     line={"color": color, "dash": "dash"}))
    fig = _layout(fig, "Loss", x_key.replace("_", " "), "loss (answer tokens)")
    if log_y:
        fig.update_yaxes(type="log")
    if not runs or not fig.data:
        fig.add_annotation(text="No steps logged yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def make_length_histogram(lengths: Mapping[str, Sequence[int]], max_len: int | None = None) -> go.Figure:
    """Token lengths of examples per split, with the max sequence length marked."""
    fig = go.Figure()
    for index, (label, values) in enumerate(lengths.items()):
        fig.add_trace(go.Histogram(x=list(values), name=label, opacity=0.75,
                                   marker={"color": PALETTE[index % len(PALETTE)]}))
    fig.update_layout(barmode="overlay")
    if max_len:
        fig.add_vline(x=max_len, line={"dash": "dot", "color": "#111827"},
                      annotation_text=f"max length {max_len}")
    return _layout(fig, "Tokens per example", "tokens (prompt + answer)", "examples")
