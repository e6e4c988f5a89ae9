"""Builds the tabbed app around a Workbench; handlers stay thin and call the core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from workbench.context import Workbench
from workbench.ui.arena_tab import build_arena_tab
from workbench.ui.compare_tab import build_compare_tab
from workbench.ui.data_tab import build_data_tab
from workbench.ui.eval_tab import build_eval_tab
from workbench.ui.runs_tab import build_runs_tab
from workbench.ui.train_tab import build_train_tab

INTRO = """# PEFT Workbench
Fine-tune a small language model on your own instructions, watch it learn, chat with the base model and the
fine-tuned one side by side, then score both on held-out examples and check what the model forgot.
**1 · Data** → **2 · Train** → **3 · Compare** → **4 · Evaluate** → **5 · Arena** (blind votes, a leaderboard and
preference data). Everything runs on this machine."""

# The steps again in Korean, for the many students whose first language it is (kept as Markdown beside this file).
KOREAN_GUIDE = (Path(__file__).with_name("guide_ko.md")).read_text(encoding="utf-8")


def name_range_errors(demo: gr.Blocks) -> None:
    """Out-of-range numbers are refused by Gradio itself before any handler runs, as "Value 4 is less than minimum
    value 8." — no field named. Give every slider and number box an error that names its field, the value and
    the valid range (instance by instance: the component classes stay as they are)."""
    for block in demo.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)) and (block.minimum is not None or block.maximum is not None):
            block.preprocess = _named_preprocess(block, block.preprocess)


def _named_preprocess(block: gr.Slider | gr.Number, preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(payload: Any) -> Any:
        lo, hi = block.minimum, block.maximum
        number = isinstance(payload, (int, float)) and not isinstance(payload, bool)
        if number and ((lo is not None and payload < lo) or (hi is not None and payload > hi)):
            allowed = (f"from {lo:g} to {hi:g}" if lo is not None and hi is not None
                       else f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
            raise gr.Error(f"{block.label or 'A number'}: {payload:g} is out of range; choose a value {allowed}.")
        return preprocess(payload)

    return checked


def build_app(workbench: Workbench) -> gr.Blocks:
    """The whole UI. Per-browser state lives in gr.State; the Workbench is the only shared state."""
    # Gradio serves returned files only from the cwd, the temp dir or allowed paths; the workbench home is none of
    # these. Serve its exports folder (download zips and CSVs), nothing else of it.
    workbench.exports.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([workbench.exports])
    # transformers loads its modules lazily, and two threads doing it at once can fail ("cannot import name
    # AutoModelForCausalLM"): the first page load runs several handlers together. Load them here, once.
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    with gr.Blocks(title="PEFT Workbench") as demo:
        gr.Markdown(INTRO)
        with gr.Accordion("한국어 안내 · A guide in Korean", open=False):
            gr.Markdown(KOREAN_GUIDE)
        with gr.Tabs():
            with gr.Tab("1 · Data", id="data"):
                data = build_data_tab(workbench)
            with gr.Tab("2 · Train", id="train"):
                train = build_train_tab(workbench, data)
            with gr.Tab("3 · Compare", id="compare"):
                build_compare_tab(workbench, data, train)
            with gr.Tab("4 · Evaluate", id="evaluate"):
                build_eval_tab(workbench, data, train)
            with gr.Tab("5 · Arena", id="arena") as arena_tab:
                arena = build_arena_tab(workbench, data, train)
            with gr.Tab("Runs", id="runs") as runs_tab:
                build_runs_tab(workbench, runs_tab)
        # Open ready to train: the default sample checked and the parameter count shown.
        demo.load(data.on_check, data.inputs, data.outputs, api_visibility="private")
        demo.load(train.on_form_change, train.form, train.params_md, api_visibility="private")
        demo.load(train.on_page_load, None, train.run_dropdown, api_visibility="private")
        arena_tab.select(arena.on_leaderboard, arena.leaderboard_inputs, arena.leaderboard_outputs,
                         api_visibility="private")
    name_range_errors(demo)
    return demo
