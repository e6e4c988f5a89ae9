"""Evaluate tab: score the base model and adapters on a run's test split or any file; measure forgetting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.data.files import SUFFIXES
from workbench.evaluate.metrics import SIMILARITY_KIND, metric_help
from workbench.evaluate.scoring import (
    EvalOptions,
    EvalReport,
    EvalTarget,
    EvaluationStopped,
    evaluate,
    general_change,
    load_examples,
    probe_forgetting,
    read_report,
    run_split,
    stored_results,
)
from workbench.fsio import write_csv
from workbench.plots import make_forgetting_figure, make_general_change_figure, make_metric_bars, metric_words
from workbench.ui.data_tab import DataTab
from workbench.ui.sides import follow_answer_lengths
from workbench.ui.stops import SessionStops
from workbench.ui.train_tab import TrainTab

RUN_SOURCE, FILE_SOURCE = "A run's test split", "A file or sample"
SPLITS = ("all", "train", "val", "test")
EXTRA_HELP = {  # columns that are not text metrics, so metric_help has no line for them
    "seconds": "Time to answer (and score) every example, in seconds.",
    "new_tokens": "Tokens generated in all answers together.",
}
INTRO = ("Each model answers every example greedily (temperature 0, so the scores repeat); the answers are compared "
         "with the reference answers. One base model in memory serves every side, as in Compare.")
PROBE_INTRO = ("**What it measures:** the base and each adapted model answer the same general questions (English "
               "and Korean) that no run trains on. Perplexity up or similarity down against the base = the run "
               "*forgot* some general skill while learning its task.  \n**To reduce it:** in the Train tab, open "
               "*Forgetting: probe and mitigations* and turn on replay (mix general examples into training) or "
               "L2 toward the start (keep the weights near where they began).")


def _run_targets(workbench: Workbench, run_ids: list[str] | None) -> tuple[list[EvalTarget], str | None]:
    """An EvalTarget per run (labelled by name, keyed by run id) and the one base model they share."""
    records, model = workbench.trained_runs((run_id, "Runs") for run_id in dict.fromkeys(run_ids or []))
    labels = workbench.run_labels(r.run_id for r in records)
    return [EvalTarget(labels[r.run_id], str(workbench.store.adapter_dir(r.run_id)), key=r.run_id)
            for r in records], model


def _examples(workbench: Workbench, source: str, run_id: str | None, path: str, split: str, val_size: float,
              test_size: float, seed: float, limit: int) -> tuple[list[Any], str]:
    if source == RUN_SOURCE:
        if not run_id:
            raise ValueError("Run: none chosen; pick the run whose test split to score, or choose 'A file or "
                             "sample'")
        examples = run_split(workbench.store, run_id, "test")
        return examples[:limit or None], f"{workbench.store.get_run(run_id).name} · test split"
    if not (path or "").strip():
        raise ValueError("File: empty; type a path or sample:NAME (e.g. sample:ko_review_sentiment) or upload a file")
    readable = workbench.check_data_path(path)  # a sample, an upload or a --data-dir file: never any server path
    return load_examples(readable, split, val_size, test_size, int(seed or 0), limit), f"{path.strip()} · {split}"


def _limit(value: float | None) -> int:
    limit = int(value or 0)
    if limit < 0:
        raise ValueError(f"Limit is {limit}; use 0 for every example or a positive number")
    return limit


def _legend(report: EvalReport, columns: list[str]) -> str:
    lines = [f"**{len(report.prompts)} examples** from {report.data}; similarity: {report.similarity_kind or 'off'}.",
             *(f"⚠️ {note}" for note in report.notes)]
    for name in columns:
        text = EXTRA_HELP.get(name) or metric_help(name)
        if text:
            lines.append(f"**{metric_words(name)}**: {text}")
    return "  \n".join(lines)


def report_outputs(workbench: Workbench, report: EvalReport) -> tuple:
    """Summary table, its legend, metric bars, per-example table and the per-example CSV of a report."""
    summary = pd.DataFrame(report.summary_rows()).round(4)
    examples = pd.DataFrame(report.example_rows())
    bars = make_metric_bars({m.label: m.metrics for m in report.models})
    csv_path = write_csv(workbench.new_export("eval"), examples)
    legend = _legend(report, list(summary.columns)[1:])
    return summary.rename(columns=metric_words), legend, bars, examples, csv_path


def _probe_table(base: dict[str, float], adapted: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [{"model": "base", **base}]
    for label, values in adapted.items():
        row = {"model": label, **values}
        for name in ("perplexity", "similarity"):
            if base.get(name) and values.get(name) is not None:
                row[f"{name} Δ %"] = (values[name] - base[name]) / base[name] * 100
        rows.append(row)
    columns = ["model", "perplexity", "perplexity Δ %", "similarity", "similarity Δ %"]
    return pd.DataFrame(rows, columns=columns).round(4)


@dataclass
class EvalTab:
    source_radio: gr.Radio
    split_run_dropdown: gr.Dropdown
    models_dropdown: gr.Dropdown

    def pick(self, workbench: Workbench, run_id: str) -> list:
        """Updates that score `run_id` on its own test split next (outputs: source, run, runs)."""
        choices = workbench.run_choices(trained=True)
        return [RUN_SOURCE, gr.update(choices=choices, value=run_id), gr.update(choices=choices, value=[run_id])]


def build_eval_tab(workbench: Workbench, data: DataTab, train: TrainTab) -> EvalTab:
    gr.Markdown(INTRO)
    adapters = workbench.run_choices(trained=True)
    with gr.Row():
        with gr.Column():
            source_radio = gr.Radio([RUN_SOURCE, FILE_SOURCE], value=RUN_SOURCE if adapters else FILE_SOURCE,
                                    label="Data", info="A run's own test split (held out from its training), or "
                                                       "any file or bundled sample.")
            with gr.Group(visible=bool(adapters)) as run_group:
                split_run_dropdown = gr.Dropdown(adapters, label="Run", allow_custom_value=True,
                                                 info="Its test split, made with the seed and sizes it trained "
                                                      "with.")
                stored_md = gr.Markdown()
                stored_btn = gr.Button("Show stored scores")
            with gr.Group(visible=not adapters) as file_group:
                path_box = gr.Textbox(data.data_path_box.value, label="File",
                                      info="A path or sample:NAME; follows the Data tab until you type here.")
                split_radio = gr.Radio(list(SPLITS), value="test", label="Split",
                                       info="Split with the Data tab's validation/test shares and seed; all = "
                                            "the whole file.")
                upload_file = gr.File(label="…or upload a file", type="filepath",
                                      file_types=list(SUFFIXES))
            limit_number = gr.Number(0, precision=0, label="Limit", minimum=0,
                                     info="Score only the first N examples (0 = all). Start small on a CPU.")
        with gr.Column():
            base_checkbox = gr.Checkbox(True, label="Include the base model",
                                        info="The model before fine-tuning, as a baseline.")
            models_dropdown = gr.Dropdown(adapters, multiselect=True, label="Runs", allow_custom_value=True,
                                          info="Adapted models to score; they must share one base model.")
            max_tokens_slider = gr.Slider(8, 512, value=64, step=8, label="Max new tokens",
                                          info="Longest answer generated per example; set from the data's answer "
                                               "lengths when you choose data. Longer = slower.")
            similarity_checkbox = gr.Checkbox(True, label=f"Similarity ({SIMILARITY_KIND})",
                                              info="Meaning similarity of answer and reference. Rough for Korean: "
                                                   "the embedding model reads little Korean.")
            perplexity_checkbox = gr.Checkbox(True, label="Perplexity",
                                              info="How surprised each model is by the reference answers; lower "
                                                   "is better.")
    with gr.Row():
        evaluate_btn = gr.Button("Evaluate", variant="primary", scale=3)
        stop_btn = gr.Button("Stop", variant="stop", scale=1)
    # Headers before the first evaluation, so an empty table reads as what it will hold rather than "1 2 3". Every
    # column is wide enough for the longest word of a header ("perplexity", "similarity"): squeezed to fit the page,
    # 16 columns cut words in two ("exac t_ma tch"); wider than the page, the table scrolls sideways instead.
    summary_table = gr.Dataframe(label="Summary (one row per model; scroll sideways for more columns →)",
                                 interactive=False, wrap=True,
                                 column_widths=["180px", *["110px"] * 63],
                                 headers=["model", "scores (after Evaluate)", "seconds", "new tokens"])
    legend_md = gr.Markdown()
    bars_plot = gr.Plot(label="Metrics by model")
    examples_table = gr.Dataframe(label="Every example (click a header to sort)", interactive=False, wrap=True,
                                  max_height=520, show_search="filter",
                                  headers=["#", "prompt", "reference", "each model's answer and scores"])
    csv_file = gr.File(label="Per-example table (.csv)", interactive=False)
    with gr.Accordion("Forgetting probe", open=False):
        gr.Markdown(PROBE_INTRO)
        with gr.Row():
            probe_dropdown = gr.Dropdown(adapters, multiselect=True, label="Runs", allow_custom_value=True,
                                         info="Adapted models to probe; the base model is always included.")
            probe_count_slider = gr.Slider(2, 50, value=20, step=1, label="Probe examples",
                                           info="General questions to answer (50 at most); more = steadier, slower.")
        with gr.Row():
            probe_btn = gr.Button("Run the forgetting probe", scale=3)
            probe_stop_btn = gr.Button("Stop", variant="stop", scale=1)
        with gr.Row():
            change_plot = gr.Plot(label="Change vs base")
            curve_plot = gr.Plot(label="During training (general-set loss)")
        change_table = gr.Dataframe(label="Perplexity and similarity on the general set", interactive=False,
                                    headers=["model", "perplexity", "perplexity Δ %", "similarity",
                                             "similarity Δ %"])

    def on_source(source: str):
        return gr.update(visible=source == RUN_SOURCE), gr.update(visible=source == FILE_SOURCE)

    def on_upload(upload: str | None):
        if not upload:
            return gr.skip()
        try:
            return str(workbench.save_upload(upload))
        except (ValueError, OSError) as exc:
            gr.Warning(str(exc))
            return gr.skip()

    def on_split_run(run_id: str | None, chosen: list[str] | None):
        # No runs picked yet: score the run whose split this is (the usual question: did training help?).
        models = gr.update(value=[run_id]) if run_id and not chosen else gr.skip()
        try:
            report = read_report(workbench.store, run_id) if run_id else None
        except USER_ERRORS:
            report = None
        if report is None:
            return "", models
        return (f"Scored after training on {len(report.prompts)} examples: **Show stored scores** shows them now; "
                "Evaluate with the base and this run, with the same options, reuses them too."), models

    stops = SessionStops()  # per browser session: Stop ends that session's scoring only

    def on_stop(request: gr.Request):
        if not stops.stop(request):
            raise gr.Error("Stop: nothing is being scored in this window")
        gr.Info("Stopping after the current batch of answers; the models scored in full are kept.")

    def on_evaluate(source, run_id, path, split, val_size, test_size, seed, limit, use_base, run_ids, max_tokens,
                    similarity, perplexity, fallback_model, request: gr.Request, progress=gr.Progress()):
        stop = stops.new(request)
        try:
            limit = _limit(limit)
            targets, model = _run_targets(workbench, run_ids)
            targets = ([EvalTarget("base")] if use_base else []) + targets
            if not targets:
                raise ValueError("Models: none chosen ('Include the base model' is off and Runs is empty); "
                                 "tick it or pick at least one run")
            examples, label = _examples(workbench, source, run_id, path, split, val_size, test_size, seed, limit)
            if not model:  # base only: the base of the run whose split it is, else the Train tab's model
                model = workbench.store.load_config(run_id).model.name_or_path if source == RUN_SOURCE \
                    else fallback_model or "embedded"
            options = EvalOptions(max_new_tokens=int(max_tokens), similarity=bool(similarity),
                                  perplexity=bool(perplexity))
            cached = stored_results(workbench.store, run_id, targets, options, limit) if source == RUN_SOURCE else {}
            report = evaluate(workbench.engine(model), targets, examples, label, options,
                              lambda fraction, message: progress(fraction, desc=message), cached, stop.is_set)
        except EvaluationStopped as exc:
            gr.Warning(f"Evaluation stopped {exc}: no model was scored in full, so there are no results to show.")
            return (gr.skip(),) * 5
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        finally:
            stops.done(stop)  # a late Stop has nothing to end
        return report_outputs(workbench, report)

    def on_stored(run_id: str | None):
        if not run_id:
            raise gr.Error("Run: none chosen; pick a run scored after training")
        try:
            report, record = read_report(workbench.store, run_id), workbench.store.get_run(run_id)
            if report is None:
                failed = (workbench.store.read_json(run_id, "eval_error.json") or {}).get("error")
                why = f"scoring failed: {failed}" if failed else "'Score the test split after training' was off"
                raise ValueError(f"Run {record.name!r} has no stored test-split scores ({why}); press Evaluate to "
                                 "score it now")
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        for model in report.models:  # stored as "base" and "adapter": label the adapter as Evaluate does
            model.label = workbench.run_labels([run_id])[run_id] if model.label == "adapter" else model.label
        return report_outputs(workbench, report)

    def on_probe(run_ids, count, max_tokens, request: gr.Request, progress=gr.Progress()):
        stop = stops.new(request)
        try:
            targets, model = _run_targets(workbench, run_ids)
            if not targets:
                raise ValueError("Runs: none chosen; pick at least one run to compare with the base model")
            options = EvalOptions(max_new_tokens=int(max_tokens))
            report = probe_forgetting(workbench.engine(model), targets, int(count), options,
                                      lambda fraction, message: progress(fraction, desc=message), stop.is_set)
            curves = {t.label: workbench.store.read_metrics(t.key) for t in targets}
        except EvaluationStopped as exc:
            gr.Warning(f"Probe stopped {exc}: the base model was not scored in full, so there is nothing to compare.")
            return (gr.skip(),) * 3
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        finally:
            stops.done(stop)
        base, adapted = general_change(report)
        return make_general_change_figure(base, adapted), _probe_table(base, adapted), make_forgetting_figure(curves)

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
    for dropdown in (split_run_dropdown, models_dropdown, probe_dropdown):
        dropdown.focus(lambda: gr.update(choices=workbench.run_choices(trained=True)), None, dropdown,
                       api_visibility="private")
    return EvalTab(source_radio, split_run_dropdown, models_dropdown)
