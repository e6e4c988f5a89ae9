"""Evaluate tab: score the base model and adapters on a run's test split or any file; measure forgetting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.classroom.access import Viewer
from workbench.data.files import SUFFIXES
from workbench.evaluate.metrics import SIMILARITY_KIND, metric_help
from workbench.evaluate.scoring import (
    PER_EXAMPLE_SHOWN,
    EvalOptions,
    EvalReport,
    EvalTarget,
    EvaluationStopped,
    chance_notes,
    evaluate,
    general_change,
    load_examples,
    probe_forgetting,
    read_report,
    run_split,
    stored_results,
)
from workbench.fsio import write_csv
from workbench.i18n import catalogue, say, text
from workbench.plots import make_forgetting_figure, make_general_change_figure, make_metric_bars, metric_words
from workbench.ui.data_tab import DataTab
from workbench.ui.i18n import T, derived, lang_of
from workbench.ui.mc_panel import build_mc_panel
from workbench.ui.sides import follow_answer_lengths
from workbench.ui.stops import SessionStops
from workbench.ui.train_tab import TrainTab
from workbench.ui.who import store_of, viewer_of

RUN_SOURCE, FILE_SOURCE = "A run's test split", "A file or sample"  # the values (the API's); shown in words
SPLITS = ("all", "train", "val", "test")
EXTRA_COLUMNS = ("seconds", "new_tokens")  # columns that are not text metrics, with help of their own


def column_words(name: str, lang: str) -> str:
    """A table column (a metric, "model", "seconds", …) in words in `lang`, so that a narrow header wraps between
    words and never inside one: "exact_match" → "exact match" / "정확 일치"; a data field in brackets stays as it is:
    "macro_f1[Label]" → "macro f1 [Label]"."""
    metric, bracket, field = name.partition("[")
    key = f"metric.{metric}.name"
    words = text(key, lang) if key in catalogue("en") else metric_words(metric)
    return words + (f" [{field}" if bracket else "")


def column_help(name: str, lang: str) -> str:
    if name in EXTRA_COLUMNS:
        return text(f"metric.{name}.help", lang)
    return metric_help(name, lang)


def _run_targets(workbench: Workbench, run_ids: list[str] | None, lang: str = "en",
                 viewer: Viewer | None = None) -> tuple[list[EvalTarget], str | None]:
    """An EvalTarget per run the viewer may see (labelled by name, keyed by run id) and the one base model they
    share."""
    where = text("evaluate.runs.label", lang)  # errors name the field as the page shows it
    records, model = workbench.trained_runs(((run_id, where) for run_id in dict.fromkeys(run_ids or [])), viewer)
    labels = workbench.run_labels((r.run_id for r in records), viewer=viewer)
    return [EvalTarget(labels[r.run_id], str(workbench.store.adapter_dir(r.run_id)), key=r.run_id)
            for r in records], model


def _examples(workbench: Workbench, source: str, run_id: str | None, path: str, split: str, val_size: float,
              test_size: float, seed: float, limit: int, lang: str = "en",
              viewer: Viewer | None = None) -> tuple[list[Any], str]:
    if source == RUN_SOURCE:
        if not run_id:
            raise ValueError(text("evaluate.error.no_run", lang))
        name = workbench.store_for(workbench.who(viewer)).run(run_id).name  # refused: not the viewer's
        examples = run_split(workbench.store, run_id, "test")
        return examples[:limit or None], text("evaluate.data.run_split", lang, run=name)
    if not (path or "").strip():
        raise ValueError(text("evaluate.error.no_file", lang))
    readable = workbench.check_data_path(path, viewer)  # a sample, an upload, a --data-dir file: no other path
    label = f"{path.strip()} · {text(f'evaluate.split.{split}', lang)}"
    return load_examples(readable, split, val_size, test_size, int(seed or 0), limit), label


def _limit(value: float | None, lang: str = "en") -> int:
    limit = int(value or 0)
    if limit < 0:
        raise ValueError(text("evaluate.error.limit", lang, limit=limit))
    return limit


def _legend(report: EvalReport, columns: list[str], lang: str) -> str:
    similarity = (text("metric.similarity.kind", lang) if report.similarity_kind == SIMILARITY_KIND
                  else report.similarity_kind) or text("evaluate.legend.off", lang)
    lines = [text("evaluate.legend.head", lang, count=len(report.prompts), data=report.data, similarity=similarity),
             *(f"⚠️ {note}" for note in report.notes),
             *(f"⚠️ {say(note, lang)}" for note in chance_notes(report))]
    for name in columns:
        help_text = column_help(name, lang)
        if help_text:
            lines.append(f"**{column_words(name, lang)}**: {help_text}")
    return "  \n".join(lines)


def _example_headers(report: EvalReport, lang: str) -> dict[str, str]:
    """The per-example table's columns in words: prompt and reference, each model's answer (its label), and each
    model's per-example scores ("<label> · <metric>")."""
    headers = {name: text(f"evaluate.examples.{name}", lang) for name in ("prompt", "reference")}
    for model in report.models:
        for name in PER_EXAMPLE_SHOWN:
            headers[f"{model.label} · {name}"] = f"{model.label} · {column_words(name, lang)}"
    return headers


def report_outputs(workbench: Workbench, report: EvalReport, lang: str = "en") -> tuple:
    """Summary table, its legend, metric bars, per-example table and the per-example CSV (the table as shown) of a
    report."""
    summary = pd.DataFrame(report.summary_rows()).round(4)
    examples = pd.DataFrame(report.example_rows()).rename(columns=_example_headers(report, lang))
    bars = make_metric_bars({m.label: m.metrics for m in report.models}, lang=lang)
    csv_path = write_csv(workbench.new_export("eval"), examples)
    legend = _legend(report, list(summary.columns)[1:], lang)
    return summary.rename(columns=lambda name: column_words(name, lang)), legend, bars, examples, csv_path


PROBE_METRICS = ("perplexity", "similarity")


def _probe_table(base: dict[str, float], adapted: dict[str, dict[str, float]], lang: str = "en") -> pd.DataFrame:
    rows = [{"model": "base", **base}]
    for label, values in adapted.items():
        row = {"model": label, **values}
        for name in PROBE_METRICS:
            if base.get(name) and values.get(name) is not None:
                row[f"{name} Δ %"] = (values[name] - base[name]) / base[name] * 100
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_probe_columns()).round(4)
    return frame.rename(columns=dict(zip(_probe_columns(), _probe_headers(lang))))


def _probe_columns() -> list[str]:
    return ["model", *(column for name in PROBE_METRICS for column in (name, f"{name} Δ %"))]


def _probe_headers(lang: str) -> list[str]:
    words = [(column_words(name, lang), text("evaluate.probe.change_column", lang, metric=column_words(name, lang)))
             for name in PROBE_METRICS]
    return [column_words("model", lang), *(header for pair in words for header in pair)]


# Headers before the first evaluation, so an empty table reads as what it will hold rather than "1 2 3"; in the
# browser's language, so read at each page load (a Dataframe's headers are data: the page's catalogue cannot
# translate them).
def _empty_summary(request: gr.Request = None) -> pd.DataFrame:
    lang = lang_of(request)
    return pd.DataFrame(columns=[column_words("model", lang), text("evaluate.summary.placeholder", lang),
                                 column_words("seconds", lang), column_words("new_tokens", lang)])


def _empty_examples(request: gr.Request = None) -> pd.DataFrame:
    lang = lang_of(request)
    return pd.DataFrame(columns=["#", *(text(f"evaluate.examples.{name}", lang)
                                        for name in ("prompt", "reference", "placeholder"))])


def _empty_probe_table(request: gr.Request = None) -> pd.DataFrame:
    return pd.DataFrame(columns=_probe_headers(lang_of(request)))


@dataclass
class EvalTab:
    source_radio: gr.Radio
    split_run_dropdown: gr.Dropdown
    models_dropdown: gr.Dropdown

    def pick(self, workbench: Workbench, run_id: str, viewer: Viewer | None = None) -> list:
        """Updates that score `run_id` on its own test split next (outputs: source, run, runs)."""
        choices = workbench.run_choices(True, viewer)
        return [RUN_SOURCE, gr.update(choices=choices, value=run_id), gr.update(choices=choices, value=[run_id])]


def build_eval_tab(workbench: Workbench, data: DataTab, train: TrainTab) -> EvalTab:
    gr.Markdown(T("evaluate.intro"))
    adapters = workbench.run_choices(True, workbench.page_viewer())
    with gr.Row():
        with gr.Column():
            source_radio = gr.Radio([(T("evaluate.source.run"), RUN_SOURCE), (T("evaluate.source.file"), FILE_SOURCE)],
                                    value=RUN_SOURCE if adapters else FILE_SOURCE, label=T("evaluate.source.label"),
                                    info=T("evaluate.source.info"))
            with gr.Group(visible=bool(adapters)) as run_group:
                split_run_dropdown = gr.Dropdown(adapters, label=T("evaluate.run.label"), allow_custom_value=True,
                                                 info=T("evaluate.run.info"))
                stored_md = gr.Markdown()
                stored_btn = gr.Button(T("evaluate.stored.button"))
            with gr.Group(visible=not adapters) as file_group:
                path_box = gr.Textbox(data.data_path_box.value, label=T("evaluate.file.label"),
                                      info=T("evaluate.file.info"))
                split_radio = gr.Radio([(T(f"evaluate.split.{split}"), split) for split in SPLITS], value="test",
                                       label=T("evaluate.split.label"), info=T("evaluate.split.info"))
                upload_file = gr.File(label=T("evaluate.upload.label"), type="filepath", file_types=list(SUFFIXES))
            limit_number = gr.Number(0, precision=0, label=T("evaluate.limit.label"), minimum=0,
                                     info=T("evaluate.limit.info"))
        with gr.Column():
            base_checkbox = gr.Checkbox(True, label=T("evaluate.base.label"), info=T("evaluate.base.info"))
            models_dropdown = gr.Dropdown(adapters, multiselect=True, label=T("evaluate.runs.label"),
                                          allow_custom_value=True, info=T("evaluate.runs.info"))
            max_tokens_slider = gr.Slider(8, 512, value=64, step=8, label=T("sampling.max_new_tokens"),
                                          info=T("evaluate.max_new_tokens.info"))
            similarity_info = derived("evaluate.similarity.info+kind",
                                      lambda lang: text("evaluate.similarity.info", lang,
                                                        kind=text("metric.similarity.kind", lang)))
            similarity_checkbox = gr.Checkbox(True, label=T("evaluate.similarity.label"), info=similarity_info)
            perplexity_checkbox = gr.Checkbox(True, label=T("evaluate.perplexity.label"),
                                              info=T("evaluate.perplexity.info"))
    with gr.Row():
        evaluate_btn = gr.Button(T("evaluate.button"), variant="primary", scale=3)
        stop_btn = gr.Button(T("evaluate.stop"), variant="stop", scale=1)
    # Every column is wide enough for the longest word of a header ("perplexity", "similarity"): squeezed to fit the
    # page, 16 columns cut words in two ("exac t_ma tch"); wider than the page, the table scrolls sideways instead.
    summary_table = gr.Dataframe(_empty_summary, label=T("evaluate.summary.label"), interactive=False, wrap=True,
                                 column_widths=["180px", *["110px"] * 63])
    legend_md = gr.Markdown()
    bars_plot = gr.Plot(label=T("evaluate.bars.label"))
    examples_table = gr.Dataframe(_empty_examples, label=T("evaluate.examples.label"), interactive=False, wrap=True,
                                  max_height=520, show_search="filter")
    csv_file = gr.File(label=T("evaluate.csv.label"), interactive=False)
    with gr.Accordion(T("evaluate.probe"), open=False):
        gr.Markdown(T("evaluate.probe.intro"))
        with gr.Row():
            probe_dropdown = gr.Dropdown(adapters, multiselect=True, label=T("evaluate.runs.label"),
                                         allow_custom_value=True, info=T("evaluate.probe.runs.info"))
            probe_count_slider = gr.Slider(2, 50, value=20, step=1, label=T("evaluate.probe.count.label"),
                                           info=T("evaluate.probe.count.info"))
        with gr.Row():
            probe_btn = gr.Button(T("evaluate.probe.button"), scale=3)
            probe_stop_btn = gr.Button(T("evaluate.stop"), variant="stop", scale=1)
        with gr.Row():
            change_plot = gr.Plot(label=T("evaluate.probe.change.label"))
            curve_plot = gr.Plot(label=T("evaluate.probe.curve.label"))
        change_table = gr.Dataframe(_empty_probe_table, label=T("evaluate.probe.table.label"), interactive=False)
    build_mc_panel(workbench, models_dropdown, train.model_box)  # the same runs, asked multiple-choice questions

    def on_source(source: str):
        return gr.update(visible=source == RUN_SOURCE), gr.update(visible=source == FILE_SOURCE)

    def on_upload(upload: str | None, request: gr.Request = None):
        if not upload:
            return gr.skip()
        try:
            return str(workbench.save_upload(upload, viewer_of(workbench, request)))
        except (ValueError, OSError) as exc:
            gr.Warning(say(exc, lang_of(request)))
            return gr.skip()

    def on_split_run(run_id: str | None, chosen: list[str] | None, request: gr.Request = None):
        # No runs picked yet: score the run whose split this is (the usual question: did training help?).
        models = gr.update(value=[run_id]) if run_id and not chosen else gr.skip()
        try:
            report = read_report(workbench.store, store_of(workbench, request).run(run_id).run_id) if run_id else None
        except USER_ERRORS:
            report = None
        if report is None:
            return "", models
        return text("evaluate.stored.note", lang_of(request), count=len(report.prompts)), models

    stops = SessionStops()  # per browser session: Stop ends that session's scoring only

    def on_stop(request: gr.Request):
        lang = lang_of(request)
        if not stops.stop(request):
            raise gr.Error(text("evaluate.error.stop", lang))
        gr.Info(text("evaluate.stopping", lang))

    def on_evaluate(source, run_id, path, split, val_size, test_size, seed, limit, use_base, run_ids, max_tokens,
                    similarity, perplexity, fallback_model, request: gr.Request, progress=gr.Progress()):
        stop, lang = stops.new(request), lang_of(request)
        try:
            viewer = viewer_of(workbench, request)
            limit = _limit(limit, lang)
            targets, model = _run_targets(workbench, run_ids, lang, viewer)
            targets = ([EvalTarget("base")] if use_base else []) + targets
            if not targets:
                raise ValueError(text("evaluate.error.no_models", lang))
            examples, label = _examples(workbench, source, run_id, path, split, val_size, test_size, seed, limit,
                                        lang, viewer)
            if not model:  # base only: the base of the run whose split it is, else the Train tab's model
                model = workbench.store.load_config(run_id).model.name_or_path if source == RUN_SOURCE \
                    else fallback_model or "embedded"
            options = EvalOptions(max_new_tokens=int(max_tokens), similarity=bool(similarity),
                                  perplexity=bool(perplexity))
            cached = stored_results(workbench.store, run_id, targets, options, limit) if source == RUN_SOURCE else {}
            report = evaluate(workbench.engine(model), targets, examples, label, options,
                              lambda fraction, message: progress(fraction, desc=message), cached, stop.is_set)
        except EvaluationStopped as exc:
            gr.Warning(text("evaluate.stopped", lang, where=say(exc, lang)))
            return (gr.skip(),) * 5
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None
        finally:
            stops.done(stop)  # a late Stop has nothing to end
        return report_outputs(workbench, report, lang)

    def on_stored(run_id: str | None, request: gr.Request = None):
        lang = lang_of(request)
        if not run_id:
            raise gr.Error(text("evaluate.error.no_stored_run", lang))
        try:
            store = store_of(workbench, request)
            record = store.run(run_id)  # refused when it is not the viewer's
            report = read_report(workbench.store, run_id)
            if report is None:
                failed = (store.read_json(run_id, "eval_error.json") or {}).get("error")
                why = text("evaluate.error.no_stored.failed", lang, error=failed) if failed else \
                    text("evaluate.error.no_stored.off", lang)
                raise ValueError(text("evaluate.error.no_stored", lang, name=record.name, why=why))
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None
        for model in report.models:  # stored as "base" and "adapter": label the adapter as Evaluate does
            model.label = workbench.run_labels([run_id], viewer=store.viewer)[run_id] if model.label == "adapter" \
                else model.label
        return report_outputs(workbench, report, lang)

    def on_probe(run_ids, count, max_tokens, request: gr.Request, progress=gr.Progress()):
        stop, lang = stops.new(request), lang_of(request)
        try:
            targets, model = _run_targets(workbench, run_ids, lang, viewer_of(workbench, request))
            if not targets:
                raise ValueError(text("evaluate.error.no_probe_runs", lang))
            options = EvalOptions(max_new_tokens=int(max_tokens))
            report = probe_forgetting(workbench.engine(model), targets, int(count), options,
                                      lambda fraction, message: progress(fraction, desc=message), stop.is_set)
            curves = {t.label: workbench.store.read_metrics(t.key) for t in targets}
        except EvaluationStopped as exc:
            gr.Warning(text("evaluate.probe.stopped", lang, where=say(exc, lang)))
            return (gr.skip(),) * 3
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None
        finally:
            stops.done(stop)
        base, adapted = general_change(report)
        return (make_general_change_figure(base, adapted, lang), _probe_table(base, adapted, lang),
                make_forgetting_figure(curves, lang=lang))

    outputs = [summary_table, legend_md, bars_plot, examples_table, csv_file]
    eval_inputs = {"source": source_radio, "run_id": split_run_dropdown, "path": path_box, "split": split_radio,
                   "val_size": data.val_size_slider, "test_size": data.test_size_slider,
                   "seed": data.split_seed_number,
                   "limit": limit_number, "use_base": base_checkbox, "run_ids": models_dropdown,
                   "max_tokens": max_tokens_slider, "similarity": similarity_checkbox,
                   "perplexity": perplexity_checkbox, "fallback_model": train.model_box}
    evaluate_btn.click(on_evaluate, inputs_kwargs=eval_inputs, outputs=outputs, api_name="evaluate")
    stored_btn.click(on_stored, split_run_dropdown, outputs, api_name="stored_scores")
    stop_btn.click(on_stop, None, None, api_name="stop_scoring", queue=False)
    probe_stop_btn.click(on_stop, None, None, api_visibility="private", queue=False)
    probe_btn.click(on_probe, inputs_kwargs={"run_ids": probe_dropdown, "count": probe_count_slider,
                                             "max_tokens": max_tokens_slider},
                    outputs=[change_plot, change_table, curve_plot], api_name="probe_forgetting")
    source_radio.change(on_source, source_radio, [run_group, file_group], api_visibility="private")
    upload_file.upload(on_upload, upload_file, path_box, api_visibility="private")
    data.data_path_box.change(lambda path: path or gr.skip(), data.data_path_box, path_box, api_visibility="private")
    follow_answer_lengths(max_tokens_slider, data)
    split_run_dropdown.change(on_split_run, [split_run_dropdown, models_dropdown], [stored_md, models_dropdown],
                              api_visibility="private")
    def on_runs_focus(request: gr.Request = None):  # runs trained since: the account's own and shared ones
        return gr.update(choices=workbench.run_choices(True, viewer_of(workbench, request)))

    for dropdown in (split_run_dropdown, models_dropdown, probe_dropdown):
        dropdown.focus(on_runs_focus, None, dropdown, api_visibility="private")
    return EvalTab(source_radio, split_run_dropdown, models_dropdown)
