"""The wide tables of the Runs and Evaluate tabs, as built for the page: headers in words, each column wide enough
for the longest word of its header (so no header is cut inside a word), and a hint that the Runs table scrolls.

The tabs are built over a Workbench of their own (real store, no model loaded); nothing is launched.
"""

from __future__ import annotations

import re

import gradio as gr
import pytest

from workbench.app import Workbench
from workbench.data.language import is_hangul
from workbench.evaluate.metrics import METRIC_INFO
from workbench.i18n import text
from workbench.plots import metric_words
from workbench.ui.data_tab import build_data_tab
from workbench.ui.eval_tab import build_eval_tab, column_words
from workbench.ui.runs_tab import COLUMN_WIDTHS, build_runs_tab, runs_frame
from workbench.ui.train_tab import build_train_tab

# Table cells use the theme's monospace font at 14 px (~8.4 px a character, measured in chromium) with 8 px of
# padding on each side; 9 px a character leaves a margin.
CHAR_PX, PADDING_PX = 9, 16


@pytest.fixture()
def workbench(tmp_path):
    workbench = Workbench(tmp_path / "home")
    yield workbench
    workbench.close()


def _tables(demo: gr.Blocks) -> dict[str, gr.Dataframe]:
    """The page's tables by their English label (a label from the catalogues is its key)."""
    return {_english(block.label): block for block in demo.blocks.values() if isinstance(block, gr.Dataframe)}


def _english(label) -> str:
    key = getattr(label, "key", None)
    return text(key, "en") if key else str(label or "")


def _pixels(width: str | int) -> float:
    return float(str(width).removesuffix("px"))


def _fits(header: str, width: str | int) -> bool:
    # A Hangul syllable is drawn about twice as wide as a Latin letter: counted as two characters.
    longest = max(sum(2 if is_hangul(char) else 1 for char in word) for word in header.split())
    return longest * CHAR_PX + PADDING_PX <= _pixels(width)


def test_runs_table_has_word_headers_that_fit_their_columns_and_says_it_scrolls(workbench):
    with gr.Blocks() as demo:
        build_runs_tab(workbench)
    [(label, table)] = [(label, t) for label, t in _tables(demo).items() if t.pinned_columns]
    assert re.search(r"scroll sideways.*→", label or ""), label  # the columns past the screen's edge are found
    headers = table.value["headers"]
    assert headers[:2] == ["run id", "name"] and "train loss" in headers and "test token f1" in headers
    assert not [header for header in headers if "_" in header]
    assert len(table.column_widths) == len(headers)
    assert [h for h, width in zip(headers, table.column_widths) if not _fits(h, width)] == []


def test_evaluate_summary_headers_are_words_that_fit_their_columns(workbench):
    with gr.Blocks() as demo:
        data = build_data_tab(workbench)
        build_eval_tab(workbench, data, build_train_tab(workbench, data))
    [summary] = [table for label, table in _tables(demo).items()
                 if (label or "").startswith("Summary (one row per model")]
    assert "scroll sideways" in _english(summary.label)  # a wide table says that it scrolls
    assert not [header for header in summary.value["headers"] if "_" in header]
    # Every column an evaluation can show (16 and more with label fields): words, each fitting its column.
    names = ["model", *METRIC_INFO, "accuracy[Category]", "macro_f1[Category]", "seconds", "new_tokens"]
    headers = [metric_words(name) for name in names]
    assert "exact match" in headers and "macro f1 [Category]" in headers
    assert not [header for header in headers if "_" in header]
    assert len(summary.column_widths) >= len(headers)
    assert [h for h, width in zip(headers, summary.column_widths) if not _fits(h, width)] == []


def test_the_korean_headers_fit_their_columns_too(workbench):
    runs = list(runs_frame(workbench, "ko").columns)
    assert "랭크" in runs and not [header for header in runs if "_" in header]
    assert [h for h, width in zip(runs, COLUMN_WIDTHS) if not _fits(h, width)] == []
    names = ["model", *METRIC_INFO, "accuracy[Category]", "macro_f1[Category]", "seconds", "new_tokens"]
    headers = [column_words(name, "ko") for name in names]
    assert "정확 일치" in headers and "매크로 F1 [Category]" in headers
    with gr.Blocks() as demo:
        data = build_data_tab(workbench)
        build_eval_tab(workbench, data, build_train_tab(workbench, data))
    [summary] = [table for label, table in _tables(demo).items() if label.startswith("Summary (one row per model")]
    assert [h for h, width in zip(headers, summary.column_widths) if not _fits(h, width)] == []
