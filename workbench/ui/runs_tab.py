"""Runs tab: every stored run in a table, and the loss curves of chosen runs overlaid."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from workbench.context import Workbench
from workbench.export import ExportError, merge_adapter, push_adapter, zip_adapter
from workbench.plots import make_loss_figure
from workbench.store import StoreError

COLUMNS = ["run_id", "name", "status", "method", "model", "steps", "train_loss", "val_loss", "seconds", "tokens",
           "trainable_params", "error"]


def runs_frame(workbench: Workbench) -> pd.DataFrame:
    rows = [r.to_dict() for r in workbench.store.list_runs()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.round({"train_loss": 4, "val_loss": 4, "seconds": 1})


def _export(action, run_id: str | None, done: str):
    if not run_id:
        raise gr.Error("Choose a run first.")
    try:
        result = action()
    except (ExportError, ValueError, OSError) as exc:
        raise gr.Error(str(exc)) from None
    is_file = isinstance(result, Path) and result.is_file()
    return (str(result) if is_file else gr.skip()), f"✅ {done}: `{result}`"


def build_runs_tab(workbench: Workbench) -> None:
    gr.Markdown("Every run stored on this machine. Runs survive page reloads and app restarts.")
    refresh_btn = gr.Button("↻ Refresh")
    runs_table = gr.Dataframe(runs_frame(workbench), interactive=False, wrap=True, max_height=420)
    runs_dropdown = gr.Dropdown(label="Overlay loss curves of", multiselect=True, allow_custom_value=True,
                                choices=[r.run_id for r in workbench.store.list_runs()])
    log_checkbox = gr.Checkbox(False, label="Log scale")
    overlay_plot = gr.Plot(label="Loss curves")

    def on_refresh():
        return runs_frame(workbench), gr.update(choices=[r.run_id for r in workbench.store.list_runs()])

    def on_overlay(run_ids: list[str], log_y: bool):
        try:
            runs = {run_id: workbench.store.read_metrics(run_id) for run_id in run_ids or []}
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        return make_loss_figure(runs, log_y=log_y)

    with gr.Accordion("Export a run", open=False):
        export_dropdown = gr.Dropdown(label="Run", choices=[r.run_id for r in workbench.adapters()],
                                      info="A run with a saved adapter.", allow_custom_value=True)
        with gr.Row():
            zip_btn = gr.Button("Download adapter (.zip)")
            merge_btn = gr.Button("Merge into the base model")
        with gr.Row():
            repo_box = gr.Textbox(label="Hub repository", placeholder="your-name/my-adapter",
                                  info="Needs internet and a Hugging Face token (HF_TOKEN or huggingface-cli login).")
            push_btn = gr.Button("Push adapter to the Hub")
        export_file = gr.File(label="Download", interactive=False)
        export_md = gr.Markdown()

    def on_zip(run_id: str):
        return _export(lambda: zip_adapter(workbench.store, run_id), run_id, "Zipped")

    def on_merge(run_id: str):
        result = _export(lambda: merge_adapter(workbench.store, run_id), run_id, "Merged model saved")
        return gr.skip(), result[1]

    def on_push(run_id: str, repo: str):
        result = _export(lambda: push_adapter(workbench.store, run_id, repo.strip()), run_id, "Pushed")
        return result[1]

    zip_btn.click(on_zip, export_dropdown, [export_file, export_md], api_name="export_zip")
    merge_btn.click(on_merge, export_dropdown, [export_file, export_md], api_name="export_merge")
    push_btn.click(on_push, [export_dropdown, repo_box], export_md, api_name="export_push")
    export_dropdown.focus(lambda: gr.update(choices=[r.run_id for r in workbench.adapters()]), None,
                          export_dropdown, api_visibility="private")
    refresh_btn.click(on_refresh, None, [runs_table, runs_dropdown], api_name="list_runs")
    runs_dropdown.change(on_overlay, [runs_dropdown, log_checkbox], overlay_plot, api_name="overlay_runs")
    log_checkbox.change(on_overlay, [runs_dropdown, log_checkbox], overlay_plot, api_visibility="private")
