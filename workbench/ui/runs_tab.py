"""Runs tab: every stored run in a table, and the loss curves of chosen runs overlaid."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from workbench.context import Workbench
from workbench.plots import make_loss_figure

COLUMNS = ["run_id", "name", "status", "method", "model", "steps", "train_loss", "val_loss", "seconds", "tokens",
           "trainable_params", "error"]


def runs_frame(workbench: Workbench) -> pd.DataFrame:
    rows = [r.to_dict() for r in workbench.store.list_runs()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.round({"train_loss": 4, "val_loss": 4, "seconds": 1})


def build_runs_tab(workbench: Workbench) -> None:
    gr.Markdown("Every run stored on this machine. Runs survive page reloads and app restarts.")
    refresh_btn = gr.Button("↻ Refresh")
    runs_table = gr.Dataframe(runs_frame(workbench), interactive=False, wrap=True, max_height=420)
    runs_dropdown = gr.Dropdown(label="Overlay loss curves of", multiselect=True,
                                choices=[r.run_id for r in workbench.store.list_runs()])
    log_checkbox = gr.Checkbox(False, label="Log scale")
    overlay_plot = gr.Plot(label="Loss curves")

    def on_refresh():
        return runs_frame(workbench), gr.update(choices=[r.run_id for r in workbench.store.list_runs()])

    def on_overlay(run_ids: list[str], log_y: bool):
        return make_loss_figure({run_id: workbench.store.read_metrics(run_id) for run_id in run_ids or []},
                                log_y=log_y)

    refresh_btn.click(on_refresh, None, [runs_table, runs_dropdown], api_name="list_runs")
    runs_dropdown.change(on_overlay, [runs_dropdown, log_checkbox], overlay_plot, api_name="overlay_runs")
    log_checkbox.change(on_overlay, [runs_dropdown, log_checkbox], overlay_plot, api_visibility="private")
