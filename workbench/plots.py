"""Pure functions from plain data to plotly figures; the UI only displays what these return.

Every word on a chart (titles, axes, legends, hovers, empty states) comes from the catalogues (`charts.*` keys):
each figure function takes `lang` (None = the environment's language, as the CLI uses).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.i18n import text

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")
X_KEYS = ("step", "epoch", "tokens")  # the x axes a training chart offers (its words: charts.x.<key>)
WIDE_SCALE_METRICS = ("bleu", "chrf")
GENERAL_METRICS = ("perplexity", "similarity")

Rows = Sequence[Mapping[str, Any]]


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=360,
        margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def warm() -> None:
    """Load plotly's figure classes and the chart template once (over a second the first time), so that the first
    chart a user asks for does not wait for it; the app calls this at start-up."""
    _layout(go.Figure(), "", "", "")


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def annotate_empty(fig: go.Figure, text: str) -> go.Figure:
    """The empty state of a chart with no data: its title and `text` in the middle, nothing else. Bare axes would
    show plotly's default range (-1 to 6) as if it meant something; subplot titles and lines go with them."""
    fig.data, fig.layout.annotations, fig.layout.shapes = (), (), ()
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#4b5563"})
    return fig


def empty_figure(title: str, text: str) -> go.Figure:
    """A chart with nothing to draw yet: its title and what would fill it."""
    return annotate_empty(_layout(go.Figure(), title, "", ""), text)


def _check_x_key(x_key: str) -> None:
    if x_key not in X_KEYS:
        raise ValueError(f"Unknown x axis {x_key!r}; choose one of: {', '.join(X_KEYS)}")


def _anchors(rows: Rows, x_key: str) -> list[tuple[float, float]]:
    """(step, x) of the training-step rows, sorted by step: what eval rows borrow their x from."""
    pairs = {r["step"]: r[x_key] for r in rows
             if r.get("train_loss") is not None and r.get("step") is not None and r.get(x_key) is not None}
    return sorted(pairs.items())


def _eval_x(row: Mapping[str, Any], x_key: str, anchors: list[tuple[float, float]]) -> float | None:
    """x of an eval row; older runs logged only the step, so epoch/tokens come from the step rows."""
    if row.get(x_key) is not None:
        return row[x_key]
    step = row.get("step")
    if step is None:
        return None
    steps = [s for s, _ in anchors]
    at = bisect.bisect_left(steps, step)
    if at < len(steps) and steps[at] == step:
        return anchors[at][1]
    if step == 0:
        return 0
    if 0 < at < len(steps):
        (s0, x0), (s1, x1) = anchors[at - 1], anchors[at]
        return x0 + (x1 - x0) * (step - s0) / (s1 - s0)
    return None  # outside the logged steps: nothing honest to place it at


def _series(rows: Rows, key: str, x_key: str) -> tuple[list, list]:
    """x and y of every row carrying `key`, with eval rows placed on the x axis of the step rows."""
    anchors = _anchors(rows, x_key)
    points = []
    for row in rows:
        if row.get(key) is None:
            continue
        x = row.get(x_key) if key == "train_loss" else _eval_x(row, x_key, anchors)
        if x is not None:
            points.append((x, row[key]))
    return [x for x, _ in points], [y for _, y in points]


def _base_value(rows: Rows, key: str) -> float | None:
    """The value logged at step 0, i.e. the base model before any training."""
    return next((r[key] for r in rows if r.get("step") == 0 and r.get(key) is not None), None)


# One run's three curves, each in a colour of its own; several runs overlaid share one colour per run instead.
SERIES_COLORS = {"train_loss": PALETTE[0], "val_loss": PALETTE[4], "general_loss": PALETTE[2]}
SERIES = {"train_loss": "train", "val_loss": "val", "general_loss": "general"}  # charts.series.<word>


def make_loss_figure(runs: Mapping[str, Rows], x_key: str = "step", log_y: bool = False,
                     show_general: bool = True, lang: str | None = None) -> go.Figure:
    """Train loss (lines), val loss (dashed) and general-set loss (dotted) of one or more runs, overlaid. One run's
    curves get three colours; overlaid runs get a colour each. The general curve is explained under the title."""
    _check_x_key(x_key)
    styles = [("train_loss", "lines", {}), ("val_loss", "lines+markers", {"dash": "dash"})]
    if show_general:
        styles.append(("general_loss", "lines+markers", {"dash": "dot"}))
    fig, single = go.Figure(), len(runs) == 1
    for index, (label, rows) in enumerate(runs.items()):
        for key, mode, line in styles:
            x, y = _series(rows, key, x_key)
            if x:
                marker = {"symbol": "diamond"} if key == "general_loss" else None
                color = SERIES_COLORS[key] if single else _color(index)
                word, hover = (text(f"charts.series.{SERIES[key]}{part}", lang) for part in ("", ".hover"))
                fig.add_trace(go.Scatter(x=x, y=y, mode=mode, name=f"{label} · {word}", marker=marker,
                                         line={"color": color, **line}, meta=key,
                                         hovertemplate=f"%{{y:.4f}} · {hover}<extra>{label}</extra>"))
    general = any(t.meta == "general_loss" for t in fig.data)
    title = text("charts.loss.title", lang)
    if general:
        title += f"<br><sup>{text('charts.loss.general_note', lang)}</sup>"
    fig = _layout(fig, title, text(f"charts.x.{x_key}", lang), text("charts.loss.y", lang))
    if log_y:
        fig.update_yaxes(type="log")
    return annotate_empty(fig, text("charts.loss.empty", lang)) if not fig.data else fig


def _change_text(values: Sequence[float], base: float | None, lang: str | None) -> list[str]:
    if not base:
        return [text("charts.forgetting.no_base", lang) for _ in values]
    return [text("charts.forgetting.change", lang, change=f"{(value - base) / base * 100:+.1f}") for value in values]


def make_forgetting_figure(runs: Mapping[str, Rows], x_key: str = "step", lang: str | None = None) -> go.Figure:
    """Loss on the general reference set over training, each run against its own base (step 0) value."""
    _check_x_key(x_key)
    fig = go.Figure()
    for index, (label, rows) in enumerate(runs.items()):
        x, y = _series(rows, "general_loss", x_key)
        if not x:
            continue
        base, color = _base_value(rows, "general_loss"), _color(index)
        name = f"{label} · {text('charts.series.general', lang)}"
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                                 line={"color": color}, marker={"symbol": "diamond"}, text=_change_text(y, base, lang),
                                 hovertemplate="%{y:.4f}<br>%{text}<extra>" + label + "</extra>"))
        if base is not None:
            fig.add_trace(go.Scatter(x=[min(x), max(x)], y=[base, base], mode="lines",
                                     name=f"{label} · {text('charts.series.base', lang)}",
                                     line={"color": color, "dash": "dot"}, hoverinfo="skip"))
    fig = _layout(fig, text("charts.forgetting.title", lang), text(f"charts.x.{x_key}", lang),
                  text("charts.forgetting.y", lang))
    if not fig.data:
        annotate_empty(fig, text("charts.forgetting.empty", lang))
    return fig


def _is_wide_scale(metric: str) -> bool:
    """Metrics far from 0–1 (BLEU, chrF 0–100; perplexity unbounded) go on their own panel."""
    return metric in WIDE_SCALE_METRICS or metric.startswith("perplexity")


def _metric_names(results: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    names: dict[str, None] = {}
    for values in results.values():
        names.update(dict.fromkeys(values))
    return list(names)


def metric_words(name: str) -> str:
    """A metric's name in words, so that a narrow header wraps between words and never inside one: "exact_match" →
    "exact match", "macro_f1[Label]" → "macro f1 [Label]" (the data's field name kept as it is)."""
    metric, bracket, field = name.partition("[")
    return metric.replace("_", " ") + (f" [{field}" if bracket else "")


def _add_bars(fig: go.Figure, results: Mapping[str, Mapping[str, float | None]], metrics: list[str],
              col: int | None, in_legend: set[str]) -> None:
    for index, (label, values) in enumerate(results.items()):
        shown = [m for m in metrics if values.get(m) is not None]
        if not shown:
            continue
        y = [values[m] for m in shown]
        bar = go.Bar(x=[metric_words(m) for m in shown], y=y, name=label, text=[f"{v:.3g}" for v in y],
                     textposition="outside", marker={"color": _color(index)}, legendgroup=label,
                     showlegend=label not in in_legend)
        in_legend.add(label)
        fig.add_trace(bar, row=col and 1, col=col)


def make_metric_bars(results: Mapping[str, Mapping[str, float | None]],
                     metrics: Sequence[str] | None = None, lang: str | None = None) -> go.Figure:
    """Grouped bars, one group per metric and one bar per model; BLEU/chrF/perplexity on a second panel."""
    names = list(metrics) if metrics is not None else _metric_names(results)
    panels = [m for m in ([n for n in names if not _is_wide_scale(n)], [n for n in names if _is_wide_scale(n)]) if m]
    in_legend: set[str] = set()
    if len(panels) == 2:
        fig = make_subplots(rows=1, cols=2, column_widths=[len(panels[0]), len(panels[1])],
                            subplot_titles=(text("charts.metrics.scores", lang), text("charts.metrics.wide", lang)))
        for col, panel in enumerate(panels, start=1):
            _add_bars(fig, results, panel, col, in_legend)
    else:
        fig = go.Figure()
        _add_bars(fig, results, panels[0] if panels else [], None, in_legend)
    fig = _layout(fig, text("charts.metrics.title", lang), "", text("charts.metrics.y", lang))
    fig.update_layout(barmode="group", uniformtext={"minsize": 8, "mode": "hide"})
    if not fig.data:
        annotate_empty(fig, text("charts.metrics.empty", lang))
    return fig


def _relative_change(base: float | None, value: float | None) -> float | None:
    if base is None or value is None or base == 0:
        return None
    return (value - base) / abs(base) * 100


def make_general_change_figure(base: Mapping[str, float], adapted: Mapping[str, Mapping[str, float]],
                               lang: str | None = None) -> go.Figure:
    """Relative change in % vs the base model on the general reference set; perplexity up = forgetting."""
    fig = go.Figure()
    for index, (label, values) in enumerate(adapted.items()):
        rows = [(m, _relative_change(base.get(m), values.get(m)), base.get(m), values.get(m)) for m in GENERAL_METRICS]
        rows = [r for r in rows if r[1] is not None]
        fig.add_trace(go.Bar(
            x=[r[0] for r in rows], y=[r[1] for r in rows], name=label, marker={"color": _color(index)},
            text=[f"{r[1]:+.1f}%" for r in rows], textposition="outside", customdata=[[r[2], r[3]] for r in rows],
            hovertemplate="%{x}: %{y:+.1f}%<br>" + text("charts.series.base", lang)
                          + " %{customdata[0]:.4g} → %{customdata[1]:.4g}<extra>" + label + "</extra>"))
    fig = _layout(fig, text("charts.general.title", lang), "", text("charts.general.y", lang))
    fig.update_layout(barmode="group")
    fig.add_hline(y=0, line={"color": "#111827", "width": 1})
    if not adapted or not any(trace.x for trace in fig.data):
        annotate_empty(fig, text("charts.general.empty", lang))
    return fig


def _sweep_trace(points: list[Mapping[str, Any]], x_key: str, metric: str, show_legend: bool) -> go.Scatter:
    ordered = sorted((p for p in points if p.get(x_key)), key=lambda p: p[x_key])
    return go.Scatter(x=[p[x_key] for p in ordered], y=[p[metric] for p in ordered], mode="lines+markers",
                      name=metric.replace("_", " "), line={"color": PALETTE[0]}, showlegend=show_legend,
                      text=[str(p.get("label") or f"r={p.get('rank')}") for p in ordered],
                      hovertemplate="%{text}<br>%{x}: %{y:.4g}<extra></extra>")


def make_rank_sweep_figure(points: Sequence[Mapping[str, Any]], metric: str = "val_loss",
                           lang: str | None = None) -> go.Figure:
    """Metric vs LoRA rank (log2 axis) and vs trainable parameters (log axis), side by side."""
    usable = [p for p in points if p.get(metric) is not None and (p.get("rank") or p.get("trainable_params"))]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(text("charts.sweep.by_rank", lang),
                                                        text("charts.sweep.by_params", lang)))
    title = f"{text('charts.sweep.title', lang)}<br><sup>{text('charts.sweep.hint', lang)}</sup>"
    fig = _layout(fig, title, "", metric.replace("_", " "))
    fig.update_layout(margin={"t": 80})
    if not usable:
        return annotate_empty(fig, text("charts.sweep.empty", lang))
    fig.add_trace(_sweep_trace(usable, "rank", metric, True), row=1, col=1)
    fig.add_trace(_sweep_trace(usable, "trainable_params", metric, False), row=1, col=2)
    ranks = sorted({p["rank"] for p in usable if p.get("rank")})
    # Ranks are powers of two in practice: a log axis spaces them evenly and the ticks name them exactly.
    fig.update_xaxes(type="log", tickvals=ranks, ticktext=[str(r) for r in ranks],
                     title_text=text("charts.sweep.rank", lang), row=1, col=1)
    fig.update_xaxes(type="log", title_text=text("charts.sweep.params", lang), row=1, col=2)
    values = [p[metric] for p in usable]
    if min(values) >= 0 and max(values) > 0:
        # From zero, so that a 0.0003 difference between ranks looks as small as it is; plotly's auto range would
        # zoom in on the points until it looked like a cliff. Every sweep metric is a loss or score ≥ 0.
        fig.update_yaxes(range=[0, max(values) * 1.1])
    return fig


def make_length_histogram(lengths: Mapping[str, Sequence[int]], max_len: int | None = None,
                          lang: str | None = None) -> go.Figure:
    """Token lengths of examples per split, with the max sequence length marked."""
    fig = go.Figure()
    for index, (label, values) in enumerate(lengths.items()):
        fig.add_trace(go.Histogram(x=list(values), name=label, opacity=0.75, marker={"color": _color(index)}))
    fig = _layout(fig, text("charts.lengths.title", lang), text("charts.lengths.x", lang),
                  text("charts.lengths.y", lang))
    if not any(len(values) for values in lengths.values()):
        return annotate_empty(fig, text("charts.lengths.empty", lang))
    fig.update_layout(barmode="overlay")
    if max_len:
        fig.add_vline(x=max_len, line={"dash": "dot", "color": "#111827"},
                      annotation_text=text("charts.lengths.max", lang, max_len=max_len))
    return fig


def _bin_value(item: Any, name: str) -> Any:
    """A reliability bin's field, whether it is a dataclass (ReliabilityBin) or a dict read back from JSON."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name)


def make_reliability_figure(reliability: Mapping[str, Sequence[Any]], ece: Mapping[str, float] | None = None,
                            lang: str | None = None) -> go.Figure:
    """A reliability diagram per model on a multiple-choice set: for each confidence bin with questions in it,
    the mean confidence (x) against the accuracy (y), the dot's size and the lower panel the questions in the
    bin; points on the diagonal are calibrated, below it over-confident. `reliability` maps a model's label to its
    bins (each with lower, upper, count, confidence, accuracy); `ece` adds each model's ECE to its legend entry."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=text("charts.mc.reliability.diagonal", lang),
                             line={"color": "#9ca3af", "dash": "dash"}, hoverinfo="skip"), row=1, col=1)
    shown = 0
    for index, (label, bins) in enumerate(reliability.items()):
        filled = [b for b in bins if _bin_value(b, "count")]
        if not filled:
            continue
        shown += 1
        color, counts = _color(index), [_bin_value(b, "count") for b in filled]
        name = (text("charts.mc.reliability.legend", lang, label=label, ece=f"{ece[label]:.3f}")
                if ece and ece.get(label) is not None else label)
        fig.add_trace(go.Scatter(
            x=[_bin_value(b, "confidence") for b in filled], y=[_bin_value(b, "accuracy") for b in filled],
            mode="lines+markers", name=name, legendgroup=label, line={"color": color},
            marker={"color": color, "size": [8 + 14 * (n / max(counts)) ** 0.5 for n in counts]},
            customdata=[[n, _bin_value(b, "lower"), _bin_value(b, "upper")] for n, b in zip(counts, filled)],
            hovertemplate=text("charts.mc.reliability.hover", lang) + "<extra>" + label + "</extra>"), row=1, col=1)
        fig.add_trace(go.Bar(
            x=[(_bin_value(b, "lower") + _bin_value(b, "upper")) / 2 for b in filled], y=counts,
            name=label, legendgroup=label, showlegend=False,
            marker={"color": color}, opacity=0.7,
            hovertemplate=text("charts.mc.reliability.count_hover", lang) + "<extra>" + label + "</extra>"),
            row=2, col=1)
    fig = _layout(fig, text("charts.mc.reliability.title", lang), "", "")
    fig.update_layout(height=460, barmode="group", bargap=0.15)
    fig.update_xaxes(range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(range=[0, 1.02], title_text=text("charts.mc.reliability.x", lang), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text=text("charts.mc.reliability.y", lang), row=1, col=1)
    fig.update_yaxes(title_text=text("charts.mc.reliability.count_y", lang), row=2, col=1)
    if not shown:
        annotate_empty(fig, text("charts.mc.reliability.empty", lang))
    return fig
