"""Runs tab: every stored run in a table; chosen runs' loss, forgetting, scores and data charted side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.classroom.access import Viewer
from workbench.data.view import describe_data
from workbench.evaluate.metrics import metric_help
from workbench.evaluate.multiple_choice import mc_change
from workbench.evaluate.scoring import read_scores
from workbench.i18n import say, text
from workbench.methods.registry import get_method
from workbench.models.export import ExportError, merge_adapter, push_adapter, zip_adapter
from workbench.plots import (
    empty_figure,
    make_forgetting_figure,
    make_length_histogram,
    make_loss_figure,
    make_metric_bars,
    make_rank_sweep_figure,
)
from workbench.runs.scoped import ScopedStore
from workbench.runs.store import StoreError
from workbench.train.sweeps import list_sweeps, sweep_points
from workbench.ui.eval_tab import column_words
from workbench.ui.i18n import T, derived, lang_of
from workbench.ui.train_lines import status_words
from workbench.ui.who import store_of, viewer_of

SCORES = ("rougeL", "token_f1", "chrf", "similarity", "perplexity")  # the adapter's test-split scores shown
MC_COLUMNS = ("mc_accuracy", "mc_ece", "mc_change")  # multiple choice after training (train.eval_mc): mc_change()
BAR_METRICS = ("rougeL", "token_f1", "exact_match", "similarity", "bleu", "chrf", "perplexity")
SWEEP_METRICS = ("val_loss", "train_loss", "rougeL", "token_f1", "chrf", "similarity", "perplexity")
SELECTED = "selected runs"  # the sweep dropdown's choice that charts the runs picked above instead of a sweep
GENERAL_CHANGE = "general Δ %"
COLUMNS = ["run_id", "name", "status", "method", "rank", "steps", "trainable_params", "seconds", "tokens",
           "train_loss", "val_loss", GENERAL_CHANGE, *(f"test {m}" for m in SCORES), *MC_COLUMNS, "model", "error"]
# Each header's longest word and a run id (27 characters) fit on one line, so no word is cut in two; the table is
# still wider than most screens, so its label says it scrolls. Id and name stay pinned on the left.
WIDTHS = {"run_id": "250px", "name": "160px", "status": "115px", "method": "130px", "rank": "70px",
          "steps": "70px", "seconds": "90px", "tokens": "90px", "train_loss": "90px", "val_loss": "90px",
          "model": "150px", "error": "220px"}
COLUMN_WIDTHS = [WIDTHS.get(column, "110px") for column in COLUMNS]
SCORE_COLUMNS = (GENERAL_CHANGE, *(f"test {m}" for m in SCORES))


def headers(lang: str) -> dict[str, str]:
    """The table's headers in `lang`: words, so that they wrap between words (the store's field names are not shown).
    Nothing else writes this table, so no exported file carries the field names."""
    named = {column: text(f"runs.column.{column}", lang) for column in COLUMNS if column not in SCORE_COLUMNS}
    return {**named, GENERAL_CHANGE: text("runs.column.general", lang),
            **{f"test {m}": text("runs.column.test", lang, metric=column_words(m, lang)) for m in SCORES}}


def legend(lang: str) -> str:
    """What the table's columns mean, under it."""
    scores = " ".join(f"*{column_words(m, lang)}*: {metric_help(m, lang)}" for m in SCORES)
    return "  \n".join([text("runs.legend.columns", lang),
                        text("runs.legend.general", lang, column=text("runs.column.general", lang)),
                        text("runs.legend.mc", lang),
                        f"{text('runs.legend.test', lang)} {scores}"])


def _rank(store: ScopedStore, run_id: str) -> int | None:
    """The run's rank when its method uses one (a LoRA-family method), else None."""
    try:
        method = store.load_config(run_id).method
    except USER_ERRORS:
        return None
    return method.rank if "rank" in get_method(method.name).knobs else None


def _general_change(result: dict[str, Any]) -> float | None:
    start, end = result.get("general_loss_start"), result.get("general_loss")
    return round((end - start) / start * 100, 2) if start and end is not None else None


def runs_frame(workbench: Workbench, lang: str = "en", viewer: Viewer | None = None) -> pd.DataFrame:
    """The runs the viewer may see, one row each, headed in `lang`."""
    store = workbench.store_for(workbench.who(viewer))
    rows = []
    for record in store.list_runs():
        result = store.read_json(record.run_id, "result.json") or {}
        scores = read_scores(store, record.run_id).get("adapter", {})
        rows.append({**record.to_dict(), "rank": _rank(store, record.run_id),
                     GENERAL_CHANGE: _general_change(result), **{f"test {m}": scores.get(m) for m in SCORES},
                     **mc_change(store.read_json(record.run_id, "mc.json") or {})})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["status"] = [status_words(status, lang) for status in frame["status"]]  # in words, as beside Start
    frame = frame.round({"train_loss": 4, "val_loss": 4, "seconds": 1, **{f"test {m}": 4 for m in SCORES}})
    return frame.rename(columns=headers(lang))


def _sweep_choices(store: ScopedStore) -> list[tuple[Any, str]]:
    return [(T("runs.sweep.selected"), SELECTED), *((name, name) for name in list_sweeps(store))]


def _labels(workbench: Workbench, run_ids: list[str] | None, viewer: Viewer | None = None,
            lang: str = "en") -> dict[str, str]:
    """{run_id: run name} of runs the viewer may see, names made unique (two runs may share a name) so that chart
    legends stay apart."""
    try:
        return workbench.run_labels(run_ids or [], taken=(), viewer=viewer)
    except (StoreError, ValueError) as exc:
        raise gr.Error(say(exc, lang)) from None


def _metrics_of(workbench: Workbench, run_ids: list[str] | None, viewer: Viewer | None = None,
                lang: str = "en") -> dict[str, list[dict]]:
    return {label: workbench.store.read_metrics(run_id)
            for run_id, label in _labels(workbench, run_ids, viewer, lang).items()}


def _score_results(workbench: Workbench, run_ids: list[str] | None, lang: str = "en",
                   viewer: Viewer | None = None) -> dict[str, dict[str, float]]:
    """The base once per distinct test split (usually once), then each scored run's adapter, by run name."""
    bases: dict[tuple, tuple[str, dict]] = {}
    adapters: dict[str, dict] = {}
    for run_id, label in _labels(workbench, run_ids, viewer, lang).items():
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
    return {**{text("runs.base_split", lang, run=label): base for label, base in bases.values()}, **adapters}


def _lengths(workbench: Workbench, run_ids: list[str] | None, lang: str = "en",
             viewer: Viewer | None = None) -> tuple[dict[str, list[int]], int | None]:
    """Token lengths of each run's train split, once per distinct data and split; and the common max_seq_len."""
    lengths: dict[str, list[int]] = {}
    seen: set[tuple] = set()
    max_lens = set()
    for run_id, label in _labels(workbench, run_ids, viewer, lang).items():
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
            gr.Warning(text("runs.unreadable_data", lang, run=label, error=say(exc, lang).splitlines()[0]))
            continue
        lengths[f"{label} · {text('charts.series.train', lang)}"] = view.lengths["train"]
        max_lens.add(config.train.max_seq_len)
    return lengths, (max_lens.pop() if len(max_lens) == 1 else None)


def _export(action, run_id: str | None, done: str, lang: str):
    if not run_id:
        raise gr.Error(text("runs.error.no_run", lang))
    try:
        result = action()
    except (ExportError, ValueError, OSError) as exc:
        raise gr.Error(say(exc, lang)) from None
    is_file = isinstance(result, Path) and result.is_file()
    return (str(result) if is_file else gr.skip()), f"✅ {done}: `{result}`"


def _trash_choices(store: ScopedStore) -> list[tuple[str, str]]:
    return [(f"{record.name} · {record.method} · {_megabytes(size)}", record.run_id)
            for record, _when, size in store.trash()]


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def build_runs_tab(workbench: Workbench, tab: gr.Tab | None = None) -> None:
    gr.Markdown(T("runs.intro"))
    refresh_btn = gr.Button(T("runs.refresh"))

    def listed(request: gr.Request = None) -> pd.DataFrame:  # the table, its headers in the browser's language
        return runs_frame(workbench, lang_of(request), viewer_of(workbench, request))

    page = workbench.store_for(workbench.page_viewer())  # what the page opens with, before any request

    # A callable value is read again on every page load, so runs trained since the app started (in the app or
    # with `python -m workbench train`) are listed after a reload; opening the tab reads them again too.
    runs_table = gr.Dataframe(listed, label=T("runs.table.label"), interactive=False, wrap=True, max_height=420,
                              show_search="filter", pinned_columns=2, column_widths=COLUMN_WIDTHS)
    gr.Markdown(derived("runs.legend+scores", legend))
    runs_dropdown = gr.Dropdown(workbench.run_choices(viewer=page.viewer), label=T("runs.chart.label"),
                                multiselect=True, allow_custom_value=True, info=T("runs.chart.info"))
    with gr.Row():
        x_radio = gr.Radio([(T(f"runs.x.{x}"), x) for x in ("step", "epoch", "tokens")], value="step",
                           label=T("runs.x.label"), info=T("runs.x.info"))
        log_checkbox = gr.Checkbox(False, label=T("runs.log.label"), info=T("runs.log.info"))
    with gr.Row():
        overlay_plot = gr.Plot(label=T("runs.loss.label"))
        forgetting_plot = gr.Plot(label=T("runs.forgetting.label"))
    with gr.Row():
        scores_plot = gr.Plot(label=T("runs.scores.label"))
        lengths_plot = gr.Plot(label=T("runs.lengths.label"))
    with gr.Accordion(T("runs.sweep"), open=True):
        with gr.Row():
            sweep_dropdown = gr.Dropdown(_sweep_choices(page), value=SELECTED, label=T("runs.sweep.label"),
                                         allow_custom_value=True, info=T("runs.sweep.info"))
            metric_dropdown = gr.Dropdown([(T(f"metric.{m}.name"), m) for m in SWEEP_METRICS], value="val_loss",
                                          label=T("runs.metric.label"), info=T("runs.metric.info"))
        sweep_plot = gr.Plot(label=T("runs.sweep_plot.label"))

    def on_refresh(request: gr.Request = None):
        viewer = viewer_of(workbench, request)
        return runs_frame(workbench, lang_of(request), viewer), gr.update(choices=workbench.run_choices(viewer=viewer))

    def on_list_focus(request: gr.Request = None):  # runs made since, the account's own and shared ones
        return gr.update(choices=workbench.run_choices(viewer=viewer_of(workbench, request)))

    def on_trained_focus(request: gr.Request = None):
        return gr.update(choices=workbench.run_choices(True, viewer_of(workbench, request)))

    def on_trash_focus(request: gr.Request = None):
        return gr.update(choices=_trash_choices(store_of(workbench, request)))

    def on_sweeps_focus(request: gr.Request = None):
        return gr.update(choices=_sweep_choices(store_of(workbench, request)))

    def nothing_picked(title_key: str, request: gr.Request | None):
        """A chart with no run picked: its title and how to fill it."""
        lang = lang_of(request)
        return empty_figure(text(title_key, lang), text("runs.pick", lang))

    def on_overlay(run_ids: list[str], log_y: bool, x_key: str = "step", request: gr.Request = None):
        if not run_ids:
            return nothing_picked("runs.empty.loss", request)
        return make_loss_figure(_metrics_of(workbench, run_ids, viewer_of(workbench, request), lang_of(request)),
                                x_key=x_key or "step", log_y=bool(log_y),
                                lang=lang_of(request))

    def on_forgetting(run_ids: list[str], x_key: str = "step", request: gr.Request = None):
        if not run_ids:
            return nothing_picked("runs.empty.forgetting", request)
        return make_forgetting_figure(_metrics_of(workbench, run_ids, viewer_of(workbench, request), lang_of(request)),
                                      x_key=x_key or "step", lang=lang_of(request))

    def on_scores(run_ids: list[str], request: gr.Request = None):
        if not run_ids:
            return nothing_picked("runs.empty.scores", request)
        try:
            lang = lang_of(request)
            return make_metric_bars(_score_results(workbench, run_ids, lang, viewer_of(workbench, request)),
                                    BAR_METRICS, lang)
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang_of(request))) from None

    def on_lengths(run_ids: list[str], request: gr.Request = None):
        if not run_ids:
            return nothing_picked("runs.empty.lengths", request)
        try:
            lengths, max_len = _lengths(workbench, run_ids, lang_of(request), viewer_of(workbench, request))
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang_of(request))) from None
        return make_length_histogram(lengths, max_len, lang_of(request))

    def on_sweep_chart(sweep: str, metric: str, run_ids: list[str] | None, request: gr.Request = None):
        lang, store = lang_of(request), store_of(workbench, request)
        if metric not in SWEEP_METRICS:
            raise gr.Error(text("runs.error.metric", lang, metric=metric, choices=", ".join(SWEEP_METRICS)))
        if sweep == SELECTED or not sweep:  # runs without a rank (IA3, prompt tuning, …) have no place here
            ids = [run_id for run_id in run_ids or [] if _rank(store, run_id) is not None]
        else:
            ids = list_sweeps(store).get(sweep)
            if ids is None:
                raise gr.Error(text("runs.error.sweep", lang, sweep=sweep, choices=", ".join(list_sweeps(store))))
        try:
            return make_rank_sweep_figure(sweep_points(store, ids), metric, lang)
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None

    with gr.Accordion(T("runs.export"), open=False):
        export_dropdown = gr.Dropdown(label=T("runs.run.label"), choices=workbench.run_choices(True, page.viewer),
                                      info=T("runs.export.run.info"), allow_custom_value=True)
        with gr.Row():
            zip_btn = gr.Button(T("runs.zip"))
            merge_btn = gr.Button(T("runs.merge"))
        with gr.Row():
            repo_box = gr.Textbox(label=T("runs.repo.label"), placeholder="your-name/my-adapter",
                                  info=T("runs.repo.info"))
            push_btn = gr.Button(T("runs.push"))
        export_file = gr.File(label=T("runs.download.label"), interactive=False)
        export_md = gr.Markdown()

    # Each export first checks the run is the account's (or shared with the class: zip and push read it; merging
    # writes into its folder, so only its owner merges).
    def on_zip(run_id: str, request: gr.Request = None):
        lang, store = lang_of(request), store_of(workbench, request)
        return _export(lambda: zip_adapter(workbench.store, store.run(run_id).run_id, workbench.exports), run_id,
                       text("runs.zipped", lang), lang)

    def on_merge(run_id: str, request: gr.Request = None):
        lang, store = lang_of(request), store_of(workbench, request)
        result = _export(lambda: merge_adapter(workbench.store, store.run(run_id, change=True).run_id), run_id,
                         text("runs.merged", lang), lang)
        return gr.skip(), result[1]

    def on_push(run_id: str, repo: str, request: gr.Request = None):
        lang, store = lang_of(request), store_of(workbench, request)
        result = _export(lambda: push_adapter(workbench.store, store.run(run_id).run_id, repo.strip()), run_id,
                         text("runs.pushed", lang), lang)
        return result[1]

    with gr.Accordion(T("runs.manage"), open=False):
        gr.Markdown(T("runs.manage.help"))
        with gr.Row():
            manage_dropdown = gr.Dropdown(label=T("runs.run.label"), choices=workbench.run_choices(viewer=page.viewer),
                                          allow_custom_value=True, info=T("runs.manage.run.info"))
            new_name_box = gr.Textbox(label=T("runs.new_name.label"), placeholder=T("runs.new_name.placeholder"),
                                      info=T("runs.new_name.info"))
            with gr.Column():
                rename_btn = gr.Button(T("runs.rename"))
                delete_btn = gr.Button(T("runs.delete"), variant="stop")
        with gr.Row():
            trash_dropdown = gr.Dropdown(label=T("runs.trash.label"), choices=_trash_choices(page),
                                         allow_custom_value=True, info=T("runs.trash.info"))
            with gr.Column():
                restore_btn = gr.Button(T("runs.restore"))
                empty_btn = gr.Button(T("runs.empty_trash"), variant="stop")
        manage_md = gr.Markdown()

    def refreshed(message: str, lang: str, store: ScopedStore) -> tuple:  # after a change: the message, the table
        choices = workbench.run_choices(viewer=store.viewer)  # and every run list
        return (message, runs_frame(workbench, lang, store.viewer), gr.update(choices=choices),
                gr.update(choices=choices, value=None), gr.update(choices=_trash_choices(store), value=None))

    def managed(what: str, run_id: str | None, missing: str, action: Callable[[str, ScopedStore], str],
                request: gr.Request | None) -> tuple:
        """One way for every change: a choice is needed, the run must be the account's, errors name the action, the
        lists follow."""
        lang = lang_of(request)
        if not run_id:
            raise gr.Error(f"{text(f'runs.action.{what}', lang)}: {text(f'runs.missing.{missing}', lang)}")
        try:
            store = store_of(workbench, request)
            return refreshed(action(lang, store), lang, store)
        except (StoreError, OSError, ValueError) as exc:
            raise gr.Error(f"{text(f'runs.action.{what}', lang)}: {say(exc, lang)}") from None

    def on_rename(run_id: str, name: str, request: gr.Request = None):
        def rename(lang: str, store: ScopedStore) -> str:
            old = store.run(run_id, change=True).name
            return text("runs.renamed", lang, old=old, new=store.rename_run(run_id, name).name)
        return managed("rename", run_id, "run", rename, request)

    def on_delete(run_id: str, request: gr.Request = None):
        def delete(lang: str, store: ScopedStore) -> str:
            name = store.run(run_id, change=True).name
            store.delete_run(run_id)
            return text("runs.deleted", lang, name=name, run_id=run_id)
        return managed("delete", run_id, "run", delete, request)

    def on_restore(run_id: str, request: gr.Request = None):
        def restore(lang: str, store: ScopedStore) -> str:
            record = store.restore_run(run_id)
            return text("runs.restored", lang, name=record.name, run_id=record.run_id, status=record.status)
        return managed("restore", run_id, "trash", restore, request)

    def on_empty_trash(request: gr.Request = None):
        lang = lang_of(request)
        try:
            store = store_of(workbench, request)
            count, size = store.empty_trash()
        except (OSError, ValueError) as exc:
            raise gr.Error(f"{text('runs.action.empty', lang)}: {say(exc, lang)}") from None
        return refreshed(text("runs.emptied", lang, count=count, size=_megabytes(size)) if count else
                         text("runs.already_empty", lang), lang, store)

    manage_outputs = [manage_md, runs_table, runs_dropdown, manage_dropdown, trash_dropdown]
    rename_btn.click(on_rename, [manage_dropdown, new_name_box], manage_outputs, api_name="rename_run")
    delete_btn.click(on_delete, manage_dropdown, manage_outputs, api_name="delete_run")
    restore_btn.click(on_restore, trash_dropdown, manage_outputs, api_name="restore_run")
    empty_btn.click(on_empty_trash, None, manage_outputs, api_name="empty_trash")
    manage_dropdown.focus(on_list_focus, None, manage_dropdown, api_visibility="private")
    trash_dropdown.focus(on_trash_focus, None, trash_dropdown, api_visibility="private")

    zip_btn.click(on_zip, export_dropdown, [export_file, export_md], api_name="export_zip")
    merge_btn.click(on_merge, export_dropdown, [export_file, export_md], api_name="export_merge")
    push_btn.click(on_push, [export_dropdown, repo_box], export_md, api_name="export_push")
    export_dropdown.focus(on_trained_focus, None, export_dropdown, api_visibility="private")
    if tab is not None:
        tab.select(on_refresh, None, [runs_table, runs_dropdown], api_visibility="private")
    refresh_btn.click(on_refresh, None, [runs_table, runs_dropdown], api_name="list_runs").then(
        on_sweeps_focus, None, sweep_dropdown, api_visibility="private")
    runs_dropdown.focus(on_list_focus, None, runs_dropdown, api_visibility="private")
    sweep_dropdown.focus(on_sweeps_focus, None, sweep_dropdown, api_visibility="private")
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
