"""The Class tab (classroom mode, shown to the teacher only): every student's runs and scores, the shared queue with
stop and reorder, a class leaderboard, the class's pooled arena votes, sharing with the class, the step budget and a
CSV export. The tab is hidden from students, and every handler asks the core (workbench.teacher), which refuses
anyone but the teacher: calling these endpoints directly gets a student nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.data.files import SUFFIXES
from workbench.i18n import catalogue, message, say, text
from workbench.teacher import (
    COLUMNS,
    RANK_METRICS,
    NotTeacher,
    class_leaderboard,
    class_rows,
    export_class_csv,
    pin_run,
    pooled_votes,
    queue_rows,
    set_step_budget,
    share_data,
    share_run,
    share_teacher_preset,
    shared_data,
    stop_run,
    teacher_presets,
)
from workbench.ui.arena_tab import LEADERBOARD_KEYS, leaderboard_headers
from workbench.ui.i18n import T, lang_of
from workbench.ui.train_lines import status_words
from workbench.ui.who import viewer_of

QUEUE_COLUMNS = ("place", "owner", "name", "status", "pinned", "starts", "run_id")
ERRORS = (NotTeacher, *USER_ERRORS)


@dataclass
class ClassTab:
    tab: gr.Tab
    on_page_load: object  # shows the tab to the teacher only


def _frame(rows: list[dict], columns: tuple[str, ...] | list[str], lang: str) -> pd.DataFrame:
    """A table in `lang`: its headers, a run's status in words, yes/no as a check mark."""
    shown = [{**row, **({"status": status_words(row["status"], lang)} if "status" in row else {}),
              **{key: "✓" if row[key] else "" for key in ("shared", "pinned") if key in row}} for row in rows]
    frame = pd.DataFrame(shown, columns=list(columns))
    known = catalogue(lang)
    return frame.rename(columns={c: known[f"class.column.{c}"] for c in columns if f"class.column.{c}" in known})


def _uploads(workbench: Workbench) -> list[str]:
    """Data files the teacher can share: every upload (the teacher's and the students')."""
    if not workbench.uploads.is_dir():
        return []
    return sorted(str(p) for p in workbench.uploads.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def build_class_tab(workbench: Workbench) -> ClassTab:
    with gr.Tab(T("tab.class"), id="class", visible=False) as tab:
        gr.Markdown(T("class.intro"))
        with gr.Row():
            refresh_btn = gr.Button(T("class.refresh"), variant="primary")
            export_btn = gr.Button(T("class.export"))
        status_md = gr.Markdown()
        class_table = gr.Dataframe(interactive=False, wrap=True, max_height=420, label=T("class.table.label"),
                                   show_search="filter")
        export_file = gr.File(label=T("class.export.file"), interactive=False)
        with gr.Accordion(T("class.queue"), open=True):
            gr.Markdown(T("class.queue.help"))
            queue_table = gr.Dataframe(interactive=False, wrap=True, label=T("class.queue.table"))
            with gr.Row():
                queue_run = gr.Dropdown([], label=T("class.queue.run.label"), info=T("class.queue.run.info"),
                                        allow_custom_value=True, scale=3)
                stop_btn = gr.Button(T("class.queue.stop"), variant="stop", scale=1)
                front_btn = gr.Button(T("class.queue.front"), scale=1)
                fair_btn = gr.Button(T("class.queue.fair"), scale=1)
            queue_md = gr.Markdown()
        with gr.Accordion(T("class.leaderboard"), open=True):
            metric_dropdown = gr.Dropdown([(T(f"class.column.{m}"), m) for m in RANK_METRICS], value=RANK_METRICS[0],
                                          label=T("class.metric.label"), info=T("class.metric.info"))
            leaderboard_table = gr.Dataframe(interactive=False, wrap=True, label=T("class.leaderboard"))
        with gr.Accordion(T("class.votes"), open=False):
            gr.Markdown(T("class.votes.help"))
            votes_table = gr.Dataframe(interactive=False, wrap=True, label=T("class.votes"))
        with gr.Accordion(T("class.share"), open=False):
            gr.Markdown(T("class.share.help"))
            with gr.Row():
                share_run_dropdown = gr.Dropdown([], label=T("class.share.run.label"), allow_custom_value=True,
                                                 info=T("class.share.run.info"), scale=3)
                share_btn = gr.Button(T("class.share.run.on"), scale=1)
                unshare_btn = gr.Button(T("class.share.run.off"), scale=1)
            with gr.Row():
                share_data_dropdown = gr.Dropdown([], label=T("class.share.data.label"), allow_custom_value=True,
                                                  info=T("class.share.data.info"), scale=3)
                share_data_btn = gr.Button(T("class.share.data.button"), scale=1)
            with gr.Row():
                share_preset_dropdown = gr.Dropdown([], label=T("class.share.preset.label"), allow_custom_value=True,
                                                    info=T("class.share.preset.info"), scale=3)
                share_preset_btn = gr.Button(T("class.share.preset.button"), scale=1)
            share_md = gr.Markdown()
        with gr.Row():
            budget_number = gr.Number(workbench.step_budget, precision=0, minimum=0, maximum=1_000_000,
                                      label=T("class.budget.label"), info=T("class.budget.info"))
            budget_btn = gr.Button(T("class.budget.button"))

    def teacher(request: gr.Request | None):
        viewer = viewer_of(workbench, request)
        if not viewer.teacher:
            raise NotTeacher(message("class.error.teacher_only"))
        return viewer

    def refused(exc: Exception, request: gr.Request | None) -> gr.Error:
        return gr.Error(say(exc, lang_of(request)))

    def on_refresh(metric: str, request: gr.Request = None):
        lang = lang_of(request)
        try:
            viewer = teacher(request)
            rows = class_rows(workbench, viewer)
            queue = queue_rows(workbench, viewer)
            board = class_leaderboard(rows, metric or RANK_METRICS[0])
            votes = pooled_votes(workbench, viewer)
        except ERRORS as exc:
            raise refused(exc, request) from None
        owners = {row["owner"] for row in rows}
        status = text("class.status", lang, runs=len(rows), students=len(owners), waiting=len(queue),
                      budget=workbench.step_budget or text("class.budget.none", lang))
        run_choices = [(f"{row['owner']} · {row['name']} · {row['status']}", row["run_id"]) for row in rows]
        waiting = [(f"{row['place']} · {row['owner']} · {row['name']}", row["run_id"]) for row in queue]
        return (status, _frame(rows, COLUMNS, lang), _frame(queue, QUEUE_COLUMNS, lang),
                _frame(board, ("place", "owner", "name", "method", metric or RANK_METRICS[0], "run_id"), lang),
                pd.DataFrame(votes, columns=list(LEADERBOARD_KEYS)).round(2).rename(columns=leaderboard_headers(lang)),
                gr.update(choices=waiting),
                gr.update(choices=run_choices), gr.update(choices=_uploads(workbench)),
                gr.update(choices=teacher_presets(workbench, viewer)))

    def on_leaderboard(metric: str, request: gr.Request = None):
        lang = lang_of(request)
        try:
            board = class_leaderboard(class_rows(workbench, teacher(request)), metric)
        except ERRORS as exc:
            raise refused(exc, request) from None
        return _frame(board, ("place", "owner", "name", "method", metric, "run_id"), lang)

    def on_export(request: gr.Request = None):
        try:
            return str(export_class_csv(workbench, teacher(request)))
        except ERRORS as exc:
            raise refused(exc, request) from None

    def run_action(act, message_key):
        """A handler for a button that acts on the chosen run: the teacher's call `act(viewer, run_id)`, then the
        message `message_key(result)` says what happened."""
        def on_action(run_id: str | None, request: gr.Request = None):
            lang = lang_of(request)
            if not run_id:
                raise gr.Error(text("class.error.no_run", lang))
            try:
                result = act(teacher(request), run_id)
            except ERRORS as exc:
                raise refused(exc, request) from None
            key, fields = message_key(result)
            return text(key, lang, **fields)
        return on_action

    def queue_action(action: str):
        def act(viewer, run_id):
            return stop_run(workbench, viewer, run_id) if action == "stop" else \
                pin_run(workbench, viewer, run_id, pinned=action == "front")
        return run_action(act, lambda done: (f"class.queue.{action}.done" if done else "class.queue.not_waiting", {}))

    def on_share(shared: bool):
        return run_action(lambda viewer, run_id: share_run(workbench, viewer, run_id, shared),
                          lambda name: ("class.share.run.shared" if shared else "class.share.run.unshared",
                                        {"name": name}))

    def on_share_data(path: str | None, request: gr.Request = None):
        lang = lang_of(request)
        try:
            copy = share_data(workbench, teacher(request), path or "")
        except ERRORS as exc:
            raise refused(exc, request) from None
        names = ", ".join(p.name for p in shared_data(workbench))
        return text("class.share.data.done", lang, name=Path(copy).name, path=str(copy), names=names)

    def on_share_preset(name: str | None, request: gr.Request = None):
        lang = lang_of(request)
        try:
            preset = share_teacher_preset(workbench, teacher(request), name or "")
        except ERRORS as exc:
            raise refused(exc, request) from None
        return text("class.share.preset.done", lang, name=preset.name, key=preset.key)

    def on_budget(steps: float | None, request: gr.Request = None):
        lang = lang_of(request)
        try:
            steps = set_step_budget(workbench, teacher(request), int(steps or 0))
        except ERRORS as exc:
            raise refused(exc, request) from None
        return text("class.budget.set", lang, steps=steps) if steps else text("class.budget.off", lang)

    refresh_outputs = [status_md, class_table, queue_table, leaderboard_table, votes_table, queue_run,
                       share_run_dropdown, share_data_dropdown, share_preset_dropdown]
    refresh_btn.click(on_refresh, metric_dropdown, refresh_outputs, api_name="class_overview")
    tab.select(on_refresh, metric_dropdown, refresh_outputs, api_visibility="private")
    metric_dropdown.change(on_leaderboard, metric_dropdown, leaderboard_table, api_name="class_leaderboard")
    export_btn.click(on_export, None, export_file, api_name="class_export")
    actions = [stop_btn.click(queue_action("stop"), queue_run, queue_md, api_name="class_stop_run"),
               front_btn.click(queue_action("front"), queue_run, queue_md, api_name="class_pin_run"),
               fair_btn.click(queue_action("fair"), queue_run, queue_md, api_name="class_unpin_run"),
               share_btn.click(on_share(True), share_run_dropdown, share_md, api_name="class_share_run"),
               unshare_btn.click(on_share(False), share_run_dropdown, share_md, api_name="class_unshare_run"),
               budget_btn.click(on_budget, budget_number, share_md, api_name="class_step_budget")]
    share_data_btn.click(on_share_data, share_data_dropdown, share_md, api_name="class_share_data")
    share_preset_btn.click(on_share_preset, share_preset_dropdown, share_md, api_name="class_share_preset")
    for action in actions:  # after a change the tables show it
        action.success(on_refresh, metric_dropdown, refresh_outputs, api_visibility="private")

    def on_page_load(request: gr.Request = None):  # the teacher sees the tab; a student never does
        try:
            shown = viewer_of(workbench, request).teacher
        except ValueError:
            shown = False
        return gr.Tab(visible=shown)

    return ClassTab(tab, on_page_load)
