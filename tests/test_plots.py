"""Figures from hand-built metric rows: the traces they carry, not how they look."""

from __future__ import annotations

import pytest

from workbench.plots import (
    PALETTE,
    make_forgetting_figure,
    make_general_change_figure,
    make_length_histogram,
    make_loss_figure,
    make_metric_bars,
    make_rank_sweep_figure,
)

# Every chart with nothing to draw, as the app asks for it before any data exists.
EMPTY_FIGURES = {
    "loss": lambda: make_loss_figure({}),
    "loss of a run with no rows, log scale": lambda: make_loss_figure({"run-a": []}, log_y=True),
    "forgetting": lambda: make_forgetting_figure({"run-a": []}),
    "metric bars": lambda: make_metric_bars({}),
    "metric bars of a model with no scores": lambda: make_metric_bars({"base": {}}, ["rougeL"]),
    "general change": lambda: make_general_change_figure({"perplexity": 10.0}, {}),
    "general change without a shared metric": lambda: make_general_change_figure({}, {"lora": {"bleu": 1.0}}),
    "rank sweep": lambda: make_rank_sweep_figure([]),
    "token lengths": lambda: make_length_histogram({}, 256),
    "token lengths of empty splits": lambda: make_length_histogram({"train": [], "val": []}),
}


def _step(step: int, loss: float) -> dict:
    return {"step": step, "train_loss": loss, "lr": 1e-4, "tokens": step * 100, "epoch": step / 4,
            "elapsed": step * 0.5, "tokens_per_s": 200.0}


NEW_RUN = [
    {"step": 0, "general_loss": 2.0, "val_loss": 3.0, "epoch": 0, "tokens": 0},
    _step(1, 2.9), _step(2, 2.5),
    {"step": 2, "val_loss": 2.6, "general_loss": 2.2, "epoch": 0.5, "tokens": 200},
    _step(3, 2.3), _step(4, 2.1),
    {"step": 4, "val_loss": 2.4, "general_loss": 2.5, "epoch": 1.0, "tokens": 400},
]
# Older runs logged eval rows with the step only, and evaluated between logged steps.
OLD_RUN = [
    {"step": 0, "general_loss": 2.0},
    _step(2, 2.5), _step(4, 2.1),
    {"step": 3, "val_loss": 2.4},
    {"step": 9, "val_loss": 2.0},
]


def _trace(fig, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


def _annotations(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_loss_figure_by_step_has_train_val_and_general_styles():
    fig = make_loss_figure({"run-a": NEW_RUN})
    train, val, general = (_trace(fig, f"run-a · {s}") for s in ("train", "val", "general"))
    assert list(train.x) == [1, 2, 3, 4] and list(train.y) == [2.9, 2.5, 2.3, 2.1]
    assert list(val.x) == [0, 2, 4] and val.line.dash == "dash"
    assert list(general.y) == [2.0, 2.2, 2.5] and general.line.dash == "dot" and general.marker.symbol == "diamond"
    assert len({train.line.color, val.line.color, general.line.color}) == 3  # one run: a colour per curve
    assert "forgetting" in fig.layout.title.text and "rising = forgetting" in general.hovertemplate
    assert fig.layout.xaxis.title.text == "step"


def test_loss_figure_runs_get_their_own_colours_and_general_can_be_hidden():
    fig = make_loss_figure({"a": NEW_RUN, "b": OLD_RUN}, show_general=False)
    assert not [t for t in fig.data if t.name.endswith("general")]
    assert _trace(fig, "b · train").line.color == _trace(fig, "b · val").line.color == PALETTE[1]  # a colour a run
    assert _trace(fig, "a · train").line.color == PALETTE[0] and fig.layout.title.text == "Loss"


def test_loss_figure_by_tokens_places_eval_rows_at_the_tokens_of_their_step():
    rows = [_step(1, 2.9), _step(2, 2.5), {"step": 2, "val_loss": 2.6}]
    fig = make_loss_figure({"run-a": rows}, x_key="tokens")
    assert list(_trace(fig, "run-a · val").x) == [200]
    assert fig.layout.xaxis.title.text == "tokens seen"


def test_loss_figure_interpolates_old_eval_rows_and_drops_those_past_the_last_step():
    fig = make_loss_figure({"old": OLD_RUN}, x_key="epoch")
    val = _trace(fig, "old · val")
    assert list(val.x) == [pytest.approx(0.75)] and list(val.y) == [2.4]  # step 3 between epochs 0.5 and 1.0
    assert list(_trace(fig, "old · general").x) == [0]  # the base value sits at epoch 0


def test_loss_figure_log_scale():
    assert make_loss_figure({"run-a": NEW_RUN}, log_y=True).layout.yaxis.type == "log"
    assert make_loss_figure({"run-a": NEW_RUN}).layout.yaxis.type != "log"


def test_loss_figure_rejects_an_unknown_x_key_naming_it():
    with pytest.raises(ValueError, match=r"'steps'.*step, epoch, tokens"):
        make_loss_figure({"run-a": NEW_RUN}, x_key="steps")


@pytest.mark.parametrize("runs", [{}, {"run-a": []}])
def test_loss_figure_empty(runs):
    fig = make_loss_figure(runs)
    assert not fig.data and _annotations(fig) == ["No steps logged yet"]


def test_forgetting_figure_has_the_base_line_and_change_in_hover():
    fig = make_forgetting_figure({"run-a": NEW_RUN})
    general, base = _trace(fig, "run-a · general"), _trace(fig, "run-a · base")
    assert list(base.y) == [2.0, 2.0] and list(base.x) == [0, 4] and base.line.dash == "dot"
    assert list(general.text) == ["+0.0% vs base", "+10.0% vs base", "+25.0% vs base"]
    assert "%{text}" in general.hovertemplate
    assert fig.layout.yaxis.title.text == "loss on the general reference set"
    assert "higher = more forgetting" in fig.layout.title.text


def test_forgetting_figure_without_base_has_no_base_line():
    rows = [_step(2, 2.5), {"step": 2, "general_loss": 2.3}]
    fig = make_forgetting_figure({"run-a": rows}, x_key="tokens")
    assert [t.name for t in fig.data] == ["run-a · general"] and list(fig.data[0].x) == [200]


def test_forgetting_figure_empty_says_where_to_turn_the_probe_on_in_the_apps_words():
    fig = make_forgetting_figure({"run-a": [_step(1, 2.0)]})
    [text] = _annotations(fig)
    assert not fig.data and "Probe every N steps" in text and "Train tab" in text
    assert "Forgetting: probe and mitigations" in text and "general_every" not in text
    with pytest.raises(ValueError, match="'time'"):
        make_forgetting_figure({}, x_key="time")


def test_metric_bars_put_wide_scale_metrics_on_a_second_panel():
    results = {"base": {"exact_match": 0.2, "bleu": 12.345, "perplexity": 8.0},
               "lora": {"exact_match": 0.61234, "bleu": 30.0, "rouge_l": None}}
    fig = make_metric_bars(results)
    by_panel = {(t.name, t.xaxis): list(t.x) for t in fig.data}
    # Metric names in words on the axis (a narrow bar group wraps between words).
    assert by_panel[("base", "x")] == ["exact match"] and by_panel[("base", "x2")] == ["bleu", "perplexity"]
    assert by_panel[("lora", "x")] == ["exact match"] and by_panel[("lora", "x2")] == ["bleu"]  # None skipped
    lora_scores = next(t for t in fig.data if t.name == "lora" and t.xaxis == "x")
    assert list(lora_scores.text) == ["0.612"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]


def test_metric_bars_single_panel_and_chosen_metrics():
    fig = make_metric_bars({"a": {"exact_match": 0.5, "f1": 0.7}}, metrics=["f1"])
    assert len(fig.data) == 1 and list(fig.data[0].x) == ["f1"] and fig.data[0].xaxis in (None, "x")
    assert "xaxis2" not in fig.layout


def test_metric_bars_empty():
    assert _annotations(make_metric_bars({})) == ["No metrics to compare yet"]


def test_general_change_figure_shows_percent_change_with_absolute_values():
    fig = make_general_change_figure({"perplexity": 10.0, "similarity": 0.8},
                                     {"lora": {"perplexity": 12.0, "similarity": 0.6}})
    bar = _trace(fig, "lora")
    assert list(bar.x) == ["perplexity", "similarity"]
    assert list(bar.y) == [pytest.approx(20.0), pytest.approx(-25.0)]
    assert [list(c) for c in bar.customdata] == [[10.0, 12.0], [0.8, 0.6]]
    assert "customdata[0]" in bar.hovertemplate


def test_general_change_figure_empty():
    fig = make_general_change_figure({"perplexity": 10.0}, {})
    assert not fig.data and len(_annotations(fig)) == 1


def test_rank_sweep_is_sorted_on_log_axes_with_rank_ticks():
    points = [{"rank": 16, "trainable_params": 1600, "val_loss": 1.8, "label": "r16"},
              {"rank": 4, "trainable_params": 400, "val_loss": 2.0},
              {"rank": 8, "trainable_params": 800},  # not evaluated: skipped
              {"rank": 2, "trainable_params": 200, "val_loss": 2.4}]
    fig = make_rank_sweep_figure(points)
    by_rank, by_params = fig.data
    assert list(by_rank.x) == [2, 4, 16] and list(by_rank.y) == [2.4, 2.0, 1.8]
    assert list(by_params.x) == [200, 400, 1600] and by_params.xaxis == "x2"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [2, 4, 16] and list(fig.layout.xaxis.ticktext) == ["2", "4", "16"]
    assert list(by_rank.text) == ["r=2", "r=4", "r16"]
    assert "stops improving" in fig.layout.title.text


def test_rank_sweep_value_axis_starts_at_zero_so_a_tiny_difference_looks_tiny():
    points = [{"rank": 4, "trainable_params": 400, "val_loss": 2.0003},
              {"rank": 8, "trainable_params": 800, "val_loss": 2.0}]
    fig = make_rank_sweep_figure(points)
    low, high = fig.layout.yaxis.range
    assert low == 0 and high >= 2.0003  # 0.0003 apart: a hair on this axis, not a cliff
    assert (high - low) > 1000 * 0.0003
    assert fig.layout.yaxis2.range == fig.layout.yaxis.range  # both panels on the same honest scale


def test_rank_sweep_other_metric_and_empty():
    fig = make_rank_sweep_figure([{"rank": 4, "trainable_params": 400, "val_loss": 2.0}], metric="general_loss")
    assert not fig.data and "No rank sweep points yet" in _annotations(fig)


@pytest.mark.parametrize("build", EMPTY_FIGURES.values(), ids=EMPTY_FIGURES.keys())
def test_empty_figures_show_only_their_empty_state_text(build):
    """No bare -1…6 axes, grid or ticks: the title and one line of text in the middle, nothing else."""
    fig = build()
    assert not fig.data and not fig.layout.shapes
    [note] = fig.layout.annotations
    assert note.text and note.xref == note.yref == "paper" and (note.x, note.y) == (0.5, 0.5)
    axes = [fig.layout[name] for name in fig.layout if name.startswith(("xaxis", "yaxis"))]
    assert axes and all(axis.visible is False for axis in axes)


def test_length_histogram_keeps_labels_and_marks_max_length():
    fig = make_length_histogram({"run-a · train": [10, 20, 30], "run-a · val": [15]}, 256)
    assert [t.name for t in fig.data] == ["run-a · train", "run-a · val"]
    assert fig.layout.shapes[0].x0 == 256
    assert not make_length_histogram({"train": [1]}).layout.shapes


def test_every_chart_speaks_korean_when_asked():
    runs = {"run-a": NEW_RUN}
    loss = make_loss_figure(runs, lang="ko")
    assert loss.layout.title.text.startswith("손실") and loss.layout.xaxis.title.text == "스텝"
    assert any(trace.name.endswith("· 검증") for trace in loss.data) and "망각" in loss.layout.title.text
    assert make_loss_figure(runs, x_key="tokens", lang="ko").layout.xaxis.title.text == "학습한 토큰 수"
    assert "망각 측정 주기 (스텝)" in make_forgetting_figure({}, lang="ko").layout.annotations[0].text
    bars = make_metric_bars({"base": {"rougeL": 0.2, "bleu": 10.0}}, lang="ko")
    assert bars.layout.title.text == "모델별 지표" and bars.layout.annotations[0].text == "점수"
    assert make_general_change_figure({}, {}, lang="ko").layout.yaxis.title.text == "베이스 대비 변화 (%)"
    assert make_rank_sweep_figure([], lang="ko").layout.annotations[-1].text == "아직 랭크 스윕 결과가 없습니다"
    hist = make_length_histogram({"train": [10, 20]}, max_len=16, lang="ko")
    assert hist.layout.title.text == "예제당 토큰 수" and hist.layout.annotations[0].text == "최대 길이 16"
    english = make_loss_figure(runs)  # the environment's language by default: English here
    assert english.layout.title.text.startswith("Loss") and english.layout.xaxis.title.text == "step"
