"""The Evaluate tab's multiple-choice mode: the base model and chosen runs on a bundled set (English MMLU-style,
Korean KMMLU-style), a user's own file of questions or an lm-evaluation-harness task; k-shot 0 to 5. Shows the
scores table (accuracy, acc_norm, macro-F1, ECE, Brier), accuracy per subject, the reliability diagrams and each
question's picks, with a CSV. Scoring runs in the core (workbench.evaluate.multiple_choice); Stop ends it between
batches."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.config import ModelConfig
from workbench.evaluate.mc_tasks import MAX_SHOTS, bundled_sets
from workbench.evaluate.multiple_choice import BASE_LABEL, MCReport, MCStopped, score_mc, subject_words
from workbench.fsio import write_csv
from workbench.i18n import say, text
from workbench.plots import make_metric_bars, make_reliability_figure
from workbench.ui.i18n import T, lang_of
from workbench.ui.stops import SessionStops
from workbench.ui.who import viewer_of

MC_SUFFIXES = (".jsonl", ".json", ".csv")
SUMMARY_KEYS = ("model", "questions", "accuracy", "acc_norm", "macro_f1", "ece", "brier", "confidence", "seconds")


def _summary_frame(report: MCReport | None, lang: str) -> pd.DataFrame:
    rows = report.summary_rows() if report else []
    return pd.DataFrame(rows, columns=list(SUMMARY_KEYS)).rename(
        columns={k: text(f"evaluate.mc.column.{k}", lang) for k in SUMMARY_KEYS})


def _empty_summary(request: gr.Request = None) -> pd.DataFrame:
    """The summary table before any scoring, headed in the browser's language (read at each page load)."""
    return _summary_frame(None, lang_of(request))


def _subject_bars(report: MCReport, lang: str):
    results = {s.label: {subject_words(subject, lang): numbers["accuracy"]
                         for subject, numbers in s.by_subject.items()} for s in report.scores}
    return make_metric_bars(results, lang=lang)


def build_mc_panel(workbench: Workbench, models_dropdown: gr.Dropdown, model_box: gr.Textbox) -> None:
    """The accordion of multiple-choice scoring; `models_dropdown` is the Evaluate tab's runs picker (shared)."""
    with gr.Accordion(T("evaluate.mc"), open=False):
        gr.Markdown(T("evaluate.mc.intro"))
        with gr.Row():
            set_dropdown = gr.Dropdown([(T(f"evaluate.mc.set.{name}"), name) for name in bundled_sets()],
                                       value="knowledge_ko", allow_custom_value=True, label=T("evaluate.mc.set.label"),
                                       info=T("evaluate.mc.set.info"), scale=3)
            upload_file = gr.File(label=T("evaluate.mc.upload.label"), file_types=list(MC_SUFFIXES),
                                  type="filepath", scale=2)
        with gr.Row():
            shots_slider = gr.Slider(0, MAX_SHOTS, value=5, step=1, label=T("evaluate.mc.shots.label"),
                                     info=T("evaluate.mc.shots.info"))
            limit_number = gr.Number(0, precision=0, minimum=0, maximum=100_000, label=T("evaluate.mc.limit.label"),
                                     info=T("evaluate.mc.limit.info"))
            style_radio = gr.Radio([(T(f"evaluate.mc.style.{style}"), style) for style in ("letters", "cloze")],
                                   value="letters", label=T("evaluate.mc.style.label"),
                                   info=T("evaluate.mc.style.info"))
            base_checkbox = gr.Checkbox(True, label=T("evaluate.mc.base.label"), info=T("evaluate.mc.base.info"))
        with gr.Row():
            score_btn = gr.Button(T("evaluate.mc.button"), variant="primary")
            stop_btn = gr.Button(T("evaluate.stop"), variant="stop")
        notes_md = gr.Markdown()
        summary_table = gr.Dataframe(_empty_summary, interactive=False, label=T("evaluate.mc.summary"))
        with gr.Row():
            reliability_plot = gr.Plot(label=T("evaluate.mc.reliability"))
            subjects_plot = gr.Plot(label=T("evaluate.mc.subjects"))
        questions_table = gr.Dataframe(interactive=False, wrap=True, max_height=420, label=T("evaluate.mc.questions"))
        csv_file = gr.File(label=T("evaluate.mc.csv"), interactive=False)

    stops = SessionStops()

    def on_upload(upload: str | None, request: gr.Request = None):
        if not upload:
            return gr.skip()
        try:
            return str(workbench.save_upload(upload, viewer_of(workbench, request)))
        except USER_ERRORS as exc:
            gr.Warning(say(exc, lang_of(request)))
            return gr.skip()

    def on_score(mc_set, shots, limit, style, use_base, run_ids, base_model, request: gr.Request,
                 progress=gr.Progress()):
        lang, viewer = lang_of(request), viewer_of(workbench, request)
        stop = stops.new(request)
        try:
            spec = (mc_set or "").strip()
            if not spec:
                raise ValueError(text("evaluate.mc.error.no_set", lang))
            if spec not in bundled_sets() and (Path(spec).suffix.lower() in MC_SUFFIXES or "/" in spec or
                                               "\\" in spec):  # a file: an upload or a --data-dir one only
                spec = workbench.check_data_path(spec, viewer)
            where = text("evaluate.runs.label", lang)
            records, model = workbench.trained_runs(((run_id, where) for run_id in dict.fromkeys(run_ids or [])),
                                                    viewer)
            labels = workbench.run_labels((r.run_id for r in records), viewer=viewer)
            adapters = [(labels[r.run_id], str(workbench.store.adapter_dir(r.run_id))) for r in records]
            if not adapters and not use_base:
                raise ValueError(text("evaluate.error.no_models", lang))
            report = score_mc(ModelConfig(name_or_path=model or (base_model or "").strip() or "embedded"), adapters,
                              spec, shots=int(shots or 0), limit=int(limit or 0) or None, style=style or "letters",
                              base_label=BASE_LABEL if use_base else None, should_stop=stop.is_set,
                              on_progress=lambda fraction, what: progress(fraction, desc=say(what, lang)))
        except MCStopped as exc:
            gr.Warning(say(exc, lang))
            return (gr.skip(),) * 6
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None
        finally:
            stops.done(stop)
        notes = "  \n".join(f"ℹ️ {say(note, lang)}" for note in report.notes)
        ece = {s.label: s.ece for s in report.scores}
        questions = pd.DataFrame(report.question_rows())
        path = workbench.new_export("mc")
        write_csv(path, questions)
        return (notes, _summary_frame(report, lang), make_reliability_figure(report.reliability(), ece, lang),
                _subject_bars(report, lang), questions, str(path))

    def on_stop(request: gr.Request):
        lang = lang_of(request)
        if not stops.stop(request):
            raise gr.Error(text("evaluate.error.stop", lang))
        gr.Info(text("evaluate.stopping", lang))

    upload_file.upload(on_upload, upload_file, set_dropdown, api_visibility="private")
    score_btn.click(on_score, inputs_kwargs={"mc_set": set_dropdown, "shots": shots_slider, "limit": limit_number,
                                             "style": style_radio, "use_base": base_checkbox,
                                             "run_ids": models_dropdown, "base_model": model_box},
                    outputs=[notes_md, summary_table, reliability_plot, subjects_plot, questions_table, csv_file],
                    api_name="multiple_choice")
    stop_btn.click(on_stop, None, None, api_visibility="private", queue=False)
