"""Runs tab: every stored run in a table; chosen runs' loss, forgetting, scores and data charted side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.data.view import describe_data
from workbench.evaluate.metrics import metric_help
from workbench.evaluate.scoring import read_scores
from workbench.methods.registry import get_method
from workbench.models.export import ExportError, merge_adapter, push_adapter, zip_adapter
from workbench.plots import (
    empty_figure,
    make_forgetting_figure,
    make_length_histogram,
    make_loss_figure,
    make_metric_bars,
    make_rank_sweep_figure,
    metric_words,
)
from workbench.runs.store import StoreError
from workbench.train.sweeps import list_sweeps, sweep_points

SCORES = ("rougeL", "token_f1", "chrf", "similarity", "perplexity")  # the adapter's test-split scores shown
BAR_METRICS = ("rougeL", "token_f1", "exact_match", "similarity", "bleu", "chrf", "perplexity")
SWEEP_METRICS = ("val_loss", "train_loss", "rougeL", "token_f1", "chrf", "similarity", "perplexity")
SELECTED = "selected runs"  # the sweep dropdown's choice that charts the runs picked above instead of a sweep
GENERAL_CHANGE = "general Δ %"
PICK_RUNS = "Pick one or more runs in “Chart these runs” above to draw them here."
COLUMNS = ["run_id", "name", "status", "method", "rank", "steps", "trainable_params", "seconds", "tokens",
           "train_loss", "val_loss", GENERAL_CHANGE, *(f"test {m}" for m in SCORES), "model", "error"]
# The table's headers are words, so that they wrap between words (the store's field names are not shown). Nothing
# else writes this table, so no exported file carries the field names.
HEADERS = {column: column.replace("_", " ") for column in COLUMNS}
# Each header's longest word and a run id (27 characters) fit on one line, so no word is cut in two; the table is
# still wider than most screens, so its label says it scrolls. Id and name stay pinned on the left.
WIDTHS = {"run_id": "250px", "name": "160px", "status": "115px", "method": "130px", "rank": "70px",
          "steps": "70px", "seconds": "90px", "tokens": "90px", "train_loss": "90px", "val_loss": "90px",
          "model": "150px", "error": "220px"}
COLUMN_WIDTHS = [WIDTHS.get(column, "110px") for column in COLUMNS]
TABLE_LABEL = "Runs (scroll sideways for more columns →)"
LEGEND = "  \n".join([
    "**rank**: the adapter's rank, for methods that have one. **seconds**, **tokens**: training time and tokens "
    "seen. **train loss / val loss**: the last logged values.",
    f"**{GENERAL_CHANGE}**: change of the loss on the general reference set from before training to the end "
    "(the forgetting probe; up = the model forgot some general skill).",
    "**test …**: the adapter's scores on the run's own test split, scored after training (blank = not scored). "
    + " ".join(f"*{m.replace('_', ' ')}*: {metric_help(m)}" for m in SCORES),
])


def _rank(workbench: Workbench, run_id: str) -> int | None:
    """The run's rank when its method uses one (a LoRA-family method), else None."""
    try:
        method = workbench.store.load_config(run_id).method
    except USER_ERRORS:
        return None
    return method.rank if "rank" in get_method(method.name).knobs else None


def _general_change(result: dict[str, Any]) -> float | None:
    start, end = result.get("general_loss_start"), result.get("general_loss")
    return round((end - start) / start * 100, 2) if start and end is not None else None


def runs_frame(workbench: Workbench) -> pd.DataFrame:
    rows = []
    for record in workbench.store.list_runs():
        result = workbench.store.read_json(record.run_id, "result.json") or {}
        scores = read_scores(workbench.store, record.run_id).get("adapter", {})
        rows.append({**record.to_dict(), "rank": _rank(workbench, record.run_id),
                     GENERAL_CHANGE: _general_change(result), **{f"test {m}": scores.get(m) for m in SCORES}})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.round({"train_loss": 4, "val_loss": 4, "seconds": 1, **{f"test {m}": 4 for m in SCORES}})
    return frame.rename(columns=HEADERS)


def _sweep_choices(workbench: Workbench) -> list[tuple[str, str]]:
    return [("Selected runs (above)", SELECTED), *((name, name) for name in list_sweeps(workbench.store))]


def _labels(workbench: Workbench, run_ids: list[str] | None) -> dict[str, str]:
    """{run_id: run name}, names made unique (two runs may share a name) so that chart legends stay apart."""
    try:
        return workbench.run_labels(run_ids or [], taken=())
    except StoreError as exc:
        raise gr.Error(str(exc)) from None


def _metrics_of(workbench: Workbench, run_ids: list[str] | None) -> dict[str, list[dict]]:
    return {label: workbench.store.read_metrics(run_id) for run_id, label in _labels(workbench, run_ids).items()}


def _score_results(workbench: Workbench, run_ids: list[str] | None) -> dict[str, dict[str, float]]:
    """The base once per distinct test split (usually once), then each scored run's adapter, by run name."""
    bases: dict[tuple, tuple[str, dict]] = {}
    adapters: dict[str, dict] = {}
    for run_id, label in _labels(workbench, run_ids).items():
        scores = read_scores(workbench.store, run_id)
        if not scores:
            continue
        config = workbench.store.load_config(run_id)
        split = (config.model.name_or_path, config.data.path, config.data.val_size, config.data.test_size,
                 config.data.split_seed, config.train.eval_max_new_tokens)
        bases.setdefault(split, (label, scores.get("base", {})))
        adapters[label] = scores.get("adapter", {})
    if len(bases) == 1:
        return {"base": next(iter(bases.values()))[1], **adapters}
    return {**{f"base · {label}'s test split": base for label, base in bases.values()}, **adapters}


def _lengths(workbench: Workbench, run_ids: list[str] | None) -> tuple[dict[str, list[int]], int | None]:
    """Token lengths of each run's train split, once per distinct data and split; and the common max_seq_len."""
    lengths: dict[str, list[int]] = {}
    seen: set[tuple] = set()
    max_lens = set()
    for run_id, label in _labels(workbench, run_ids).items():
        config = workbench.store.load_config(run_id)
        data = config.data
        key = (config.model.name_or_path, data.path, data.val_size, data.test_size, data.split_seed)
        if key in seen:
            continue
        seen.add(key)
        try:
            view = describe_data(data.path, data.val_size, data.test_size, data.split_seed,
                                 config.model.name_or_path, config.train.max_seq_len)
        except (ValueError, OSError) as exc:  # a deleted upload: chart the others, say which one is missing
            gr.Warning(f"{label}: its data cannot be read ({str(exc).splitlines()[0]})")
            continue
        lengths[f"{label} · train"] = view.lengths["train"]
        max_lens.add(config.train.max_seq_len)
    return lengths, (max_lens.pop() if len(max_lens) == 1 else None)


def _export(action, run_id: str | None, done: str):
    if not run_id:
        raise gr.Error("Choose a run first.")
    try:
        result = action()
    except (ExportError, ValueError, OSError) as exc:
        raise gr.Error(str(exc)) from None
    is_file = isinstance(result, Path) and result.is_file()
    return (str(result) if is_file else gr.skip()), f"✅ {done}: `{result}`"


def _trash_choices(workbench: Workbench) -> list[tuple[str, str]]:
    return [(f"{record.name} · {record.method} · {_megabytes(size)}", record.run_id)
            for record, _when, size in workbench.store.trash()]


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def build_runs_tab(workbench: Workbench, tab: gr.Tab | None = None) -> None:
    gr.Markdown("Every run stored on this machine. Runs survive page reloads and app restarts.")
    refresh_btn = gr.Button("↻ Refresh")
    # A callable value is read again on every page load, so runs trained since the app started (in the app or
    # with `python -m workbench train`) are listed after a reload; opening the tab reads them again too.
    runs_table = gr.Dataframe(lambda: runs_frame(workbench), label=TABLE_LABEL, interactive=False, wrap=True,
                              max_height=420, show_search="filter", pinned_columns=2, column_widths=COLUMN_WIDTHS)
    gr.Markdown(LEGEND)
    runs_dropdown = gr.Dropdown(workbench.run_choices(), label="Chart these runs", multiselect=True,
                                allow_custom_value=True, info="Pick one or more runs to overlay them below.")
    with gr.Row():
        x_radio = gr.Radio(["step", "epoch", "tokens"], value="step", label="x axis",
                           info="Tokens seen compares runs with different batch sizes or sequence lengths fairly.")
        log_checkbox = gr.Checkbox(False, label="Log scale", info="Spreads out the small losses late in training.")
    with gr.Row():
        overlay_plot = gr.Plot(label="Loss curves")
        forgetting_plot = gr.Plot(label="Forgetting during training")
    with gr.Row():
        scores_plot = gr.Plot(label="Test-split scores")
        lengths_plot = gr.Plot(label="Token lengths of the training data")
    with gr.Accordion("Rank sweep chart", open=True):
        with gr.Row():
            sweep_dropdown = gr.Dropdown(_sweep_choices(workbench), value=SELECTED, label="Sweep",
                                         allow_custom_value=True,
                                         info="A rank sweep queued in the Train tab, or the runs selected above.")
            metric_dropdown = gr.Dropdown([(metric_words(m), m) for m in SWEEP_METRICS], value="val_loss",
                                          label="Metric",
                                          info="Losses: lower is better. Test scores: higher is better, except "
                                               "perplexity.")
        sweep_plot = gr.Plot(label="Metric by rank")

    def on_refresh():
        return runs_frame(workbench), gr.update(choices=workbench.run_choices())

    def on_overlay(run_ids: list[str], log_y: bool, x_key: str = "step"):
        if not run_ids:
            return empty_figure("Loss", PICK_RUNS)
        return make_loss_figure(_metrics_of(workbench, run_ids), x_key=x_key or "step", log_y=bool(log_y))

    def on_forgetting(run_ids: list[str], x_key: str = "step"):
        if not run_ids:
            return empty_figure("Forgetting probe (higher = more forgetting)", PICK_RUNS)
        return make_forgetting_figure(_metrics_of(workbench, run_ids), x_key=x_key or "step")

    def on_scores(run_ids: list[str]):
        if not run_ids:
            return empty_figure("Metrics by model", PICK_RUNS)
        try:
            return make_metric_bars(_score_results(workbench, run_ids), BAR_METRICS)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None

    def on_lengths(run_ids: list[str]):
        if not run_ids:
            return empty_figure("Tokens per example", PICK_RUNS)
        try:
            lengths, max_len = _lengths(workbench, run_ids)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        return make_length_histogram(lengths, max_len)

    def on_sweep_chart(sweep: str, metric: str, run_ids: list[str] | None):
        if metric not in SWEEP_METRICS:
            raise gr.Error(f"Unknown metric {metric!r}; choose one of: {', '.join(SWEEP_METRICS)}")
        if sweep == SELECTED or not sweep:  # runs without a rank (IA3, prompt tuning, …) have no place here
            ids = [run_id for run_id in run_ids or [] if _rank(workbench, run_id) is not None]
        else:
            ids = list_sweeps(workbench.store).get(sweep)
            if ids is None:
                raise gr.Error(f"No sweep named {sweep!r}; choose one of: {', '.join(list_sweeps(workbench.store))}"
                               " or 'selected runs', and queue a sweep in the Train tab's Rank sweep section")
        try:
            return make_rank_sweep_figure(sweep_points(workbench.store, ids), metric)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None

    with gr.Accordion("Export a run", open=False):
        export_dropdown = gr.Dropdown(label="Run", choices=workbench.run_choices(trained=True),
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
        return _export(lambda: zip_adapter(workbench.store, run_id, workbench.exports), run_id, "Zipped")

    def on_merge(run_id: str):
        result = _export(lambda: merge_adapter(workbench.store, run_id), run_id, "Merged model saved")
        return gr.skip(), result[1]

    def on_push(run_id: str, repo: str):
        result = _export(lambda: push_adapter(workbench.store, run_id, repo.strip()), run_id, "Pushed")
        return result[1]

    with gr.Accordion("Rename or delete a run", open=False):
        gr.Markdown("A deleted run goes to the trash, whole (adapter, curves, scores), and **Restore** brings it "
                    "back; only **Empty the trash** frees its disk space for good. A run that is training or "
                    "waiting in the queue cannot be deleted: stop it first.")
        with gr.Row():
            manage_dropdown = gr.Dropdown(label="Run", choices=workbench.run_choices(), allow_custom_value=True,
                                          info="Any stored run.")
            new_name_box = gr.Textbox(label="New name", placeholder="e.g. lora-r16-best",
                                      info="Shown in every tab; rank sweeps group runs by name.")
            with gr.Column():
                rename_btn = gr.Button("Rename")
                delete_btn = gr.Button("Move to the trash", variant="stop")
        with gr.Row():
            trash_dropdown = gr.Dropdown(label="Trash", choices=_trash_choices(workbench), allow_custom_value=True,
                                         info="Deleted runs, the latest first, with their size on disk.")
            with gr.Column():
                restore_btn = gr.Button("Restore")
                empty_btn = gr.Button("Empty the trash", variant="stop")
        manage_md = gr.Markdown()

    def refreshed(message: str) -> tuple:  # after a change: the message, the table and every run list again
        choices = workbench.run_choices()
        return (message, runs_frame(workbench), gr.update(choices=choices), gr.update(choices=choices, value=None),
                gr.update(choices=_trash_choices(workbench), value=None))

    def managed(what: str, run_id: str | None, missing: str, action: Callable[[], str]) -> tuple:
        """One way for every change: a choice is needed, errors name the action, the lists follow."""
        if not run_id:
            raise gr.Error(f"{what}: {missing}")
        try:
            return refreshed(action())
        except (StoreError, OSError, ValueError) as exc:
            raise gr.Error(f"{what}: {exc}") from None

    def on_rename(run_id: str, name: str):
        def rename() -> str:
            old = workbench.store.get_run(run_id).name
            return f"✅ Renamed **{old}** to **{workbench.store.rename_run(run_id, name).name}**."
        return managed("Rename", run_id, "choose a run first", rename)

    def on_delete(run_id: str):
        def delete() -> str:
            name = workbench.store.get_run(run_id).name
            workbench.store.delete_run(run_id)
            return f"🗑️ Moved **{name}** (`{run_id}`) to the trash; **Restore** brings it back."
        return managed("Delete", run_id, "choose a run first", delete)

    def on_restore(run_id: str):
        def restore() -> str:
            record = workbench.store.restore_run(run_id)
            return f"✅ Restored **{record.name}** (`{record.run_id}`, {record.status})."
        return managed("Restore", run_id, "choose a run in the trash first", restore)

    def on_empty_trash():
        try:
            count, size = workbench.store.empty_trash()
        except OSError as exc:
            raise gr.Error(f"Empty the trash: {exc}") from None
        return refreshed(f"Deleted {count} run(s) for good; {_megabytes(size)} freed." if count else
                         "The trash is already empty.")

    manage_outputs = [manage_md, runs_table, runs_dropdown, manage_dropdown, trash_dropdown]
    rename_btn.click(on_rename, [manage_dropdown, new_name_box], manage_outputs, api_name="rename_run")
    delete_btn.click(on_delete, manage_dropdown, manage_outputs, api_name="delete_run")
    restore_btn.click(on_restore, trash_dropdown, manage_outputs, api_name="restore_run")
    empty_btn.click(on_empty_trash, None, manage_outputs, api_name="empty_trash")
    manage_dropdown.focus(lambda: gr.update(choices=workbench.run_choices()), None, manage_dropdown,
                          api_visibility="private")
    trash_dropdown.focus(lambda: gr.update(choices=_trash_choices(workbench)), None, trash_dropdown,
                         api_visibility="private")

    zip_btn.click(on_zip, export_dropdown, [export_file, export_md], api_name="export_zip")
    merge_btn.click(on_merge, export_dropdown, [export_file, export_md], api_name="export_merge")
    push_btn.click(on_push, [export_dropdown, repo_box], export_md, api_name="export_push")
    export_dropdown.focus(lambda: gr.update(choices=workbench.run_choices(trained=True)), None,
                          export_dropdown, api_visibility="private")
    if tab is not None:
        tab.select(on_refresh, None, [runs_table, runs_dropdown], api_visibility="private")
    refresh_btn.click(on_refresh, None, [runs_table, runs_dropdown], api_name="list_runs").then(
        lambda: gr.update(choices=_sweep_choices(workbench)), None, sweep_dropdown, api_visibility="private")
    runs_dropdown.focus(lambda: gr.update(choices=workbench.run_choices()), None, runs_dropdown,
                        api_visibility="private")
    sweep_dropdown.focus(lambda: gr.update(choices=_sweep_choices(workbench)), None, sweep_dropdown,
                         api_visibility="private")
    # Each chart has its own endpoint, so a slow one (token lengths) does not hold up the loss curves.
    runs_dropdown.change(on_overlay, [runs_dropdown, log_checkbox, x_radio], overlay_plot, api_name="overlay_runs")
    runs_dropdown.change(on_forgetting, [runs_dropdown, x_radio], forgetting_plot, api_name="forgetting_runs")
    runs_dropdown.change(on_scores, runs_dropdown, scores_plot, api_name="run_scores")
    runs_dropdown.change(on_lengths, runs_dropdown, lengths_plot, api_name="run_lengths")
    for control in (log_checkbox, x_radio):
        control.change(on_overlay, [runs_dropdown, log_checkbox, x_radio], overlay_plot, api_visibility="private")
    x_radio.change(on_forgetting, [runs_dropdown, x_radio], forgetting_plot, api_visibility="private")
    sweep_inputs = [sweep_dropdown, metric_dropdown, runs_dropdown]
    sweep_dropdown.change(on_sweep_chart, sweep_inputs, sweep_plot, api_name="sweep_chart")
    metric_dropdown.change(on_sweep_chart, sweep_inputs, sweep_plot, api_visibility="private")
    runs_dropdown.change(on_sweep_chart, sweep_inputs, sweep_plot, api_visibility="private")
