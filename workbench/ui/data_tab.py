"""Data tab: pick a bundled sample or upload a file; see it validated, split, previewed and measured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench.app import NO_DATA, Workbench
from workbench.config import MAX_SHARE, DataConfig, TrainConfig, field_label, field_range
from workbench.data.files import SUFFIXES
from workbench.data.samples import DEFAULT_SAMPLE, SAMPLE_PREFIX, list_samples, sample_info
from workbench.data.view import describe_data
from workbench.fsio import write_csv
from workbench.i18n import say, text
from workbench.plots import make_length_histogram
from workbench.ui.i18n import T, lang_of
from workbench.ui.who import viewer_of

PREVIEW_COLUMNS = ["line", "layout", "prompt", "answer"]
DEFAULT_MAX_LEN = TrainConfig().max_seq_len  # until the Train tab says otherwise


@dataclass
class DataTab:
    data_path_box: gr.Textbox
    val_size_slider: gr.Slider
    test_size_slider: gr.Slider
    split_seed_number: gr.Number
    check_btn: gr.Button
    max_len_state: gr.State  # the Train tab's max_seq_len: the histogram marks it and the report counts cuts
    sample_dropdown: gr.Dropdown
    training_md: gr.Markdown  # what a run will train on; not rendered here: the Train tab shows it above Start
    facts_state: gr.State  # {"new_tokens"} of the data shown ({} when none): other tabs' lengths follow it
    inputs: dict  # on_check's inputs by parameter name
    outputs: list
    show_inputs: dict  # the kept file, its split and max_len: on_show's inputs by parameter name
    on_check: Callable
    on_show: Callable  # (path, val_size, test_size, seed, max_len) -> outputs: show a file already kept


LAYOUTS = {"alpaca": "Alpaca", "prompt_completion": "prompt/completion", "messages": "chat", "preference": "pair"}


def _frame(rows: list[dict], lang: str = "en") -> pd.DataFrame:
    """A preview table, its headers in `lang` (the rows are the file's own)."""
    frame = pd.DataFrame([{**row, "layout": LAYOUTS.get(row.get("shape", ""), row.get("shape", ""))} for row in rows],
                         columns=PREVIEW_COLUMNS)
    return frame.rename(columns={column: text(f"data.preview.column.{column}", lang) for column in PREVIEW_COLUMNS})


def _empty_preview(request: gr.Request = None) -> pd.DataFrame:
    """A preview before any data is shown, headed in the browser's language (read at each page load: a Dataframe's
    headers are data, which the page's catalogue cannot translate)."""
    return _frame([], lang_of(request))


def _length_histogram(lengths: dict[str, list[int]], max_len: int, lang: str):
    """The token-length chart in `lang`, its splits named in it too."""
    return make_length_histogram({text(f"charts.series.{split}", lang): values for split, values in lengths.items()},
                                 max_len, lang)


def data_name(path: str, lang: str) -> str:
    """How the Train tab names the data: the sample's name, or the uploaded file's."""
    if path.startswith(SAMPLE_PREFIX):
        return text("data.sample_name", lang, name=path[len(SAMPLE_PREFIX):])
    return Path(path).name


def no_data_line(reason: str, lang: str) -> str:
    return text("data.no_data", lang, reason=reason.rstrip("."))


def korean_base_note(path: str, lang: str) -> str:
    """For a bundled sample that only a base model reading Korean can learn (samples.yaml `korean_base`): what the
    embedded model does with it and what to pick instead; "" for any other data."""
    name = path[len(SAMPLE_PREFIX):] if path.startswith(SAMPLE_PREFIX) else ""
    try:
        needs_korean = bool(name) and sample_info(name)["korean_base"]
    except ValueError:  # a sample without an entry: nothing to say about it
        needs_korean = False
    return f"\n\n{text('data.korean_base', lang)}" if needs_korean else ""


def headline(view, name: str, max_len: int, lang: str) -> str:
    """What a run will train on, for the line above Start."""
    line = text("data.headline", lang, name=name, kind=text(f"data.kind.{view.kind}", lang),
                train=f"{view.sizes.get('train', 0):,}", val=f"{view.sizes.get('val', 0):,}",
                test=f"{view.sizes.get('test', 0):,}", language=text(f"lang.{view.language}", lang),
                longest=view.longest)
    if view.split_problem:
        line += text("data.headline.split_problem", lang)
    elif view.longest > max_len:
        line += text("data.headline.truncated", lang, count=view.truncated, field=field_label("train", "max_seq_len"),
                     max_len=max_len)
    return line


def _problems_csv(workbench: Workbench, path: str, problems: list[dict]) -> str | None:
    """Every bad row (the report shows the first 50) as a CSV to fix the file by; None when there are none."""
    if not problems:
        return None
    return write_csv(workbench.new_export(f"bad-rows-{Path(path).stem[:40]}"), pd.DataFrame(problems))


def build_data_tab(workbench: Workbench) -> DataTab:
    defaults = DataConfig()
    gr.Markdown(T("data.intro"))
    with gr.Row():
        with gr.Column(scale=1):
            sample_dropdown = gr.Dropdown(list_samples(), value=DEFAULT_SAMPLE, label=T("data.sample.label"),
                                          info=T("data.sample.info"))
            upload_file = gr.File(label=T("data.upload.label"), type="filepath", file_types=list(SUFFIXES))
            val_size_slider = gr.Slider(0, MAX_SHARE, value=defaults.val_size, step=0.05,
                                        label=T("data.val_size.label"), info=T("data.val_size.help"))
            test_size_slider = gr.Slider(0, MAX_SHARE, value=defaults.test_size, step=0.05,
                                         label=T("data.test_size.label"), info=T("data.test_size.help"))
            split_seed_number = gr.Number(defaults.split_seed, precision=0, label=T("data.split_seed.label"),
                                          minimum=field_range("data", "split_seed")[0],
                                          maximum=field_range("data", "split_seed")[1],
                                          info=T("data.split_seed.help"))
            check_btn = gr.Button(T("data.check.button"), variant="primary")
            split_fix_btn = gr.Button(T("data.split_fix.button"), visible=False, variant="secondary")
            data_path_box = gr.Textbox(label=T("data.path.label"), interactive=False,
                                       value=f"{SAMPLE_PREFIX}{DEFAULT_SAMPLE}")
            max_len_state = gr.State(DEFAULT_MAX_LEN)
        with gr.Column(scale=2):
            report_box = gr.Textbox(label=T("data.report.label"), lines=12, max_lines=30, buttons=["copy"])
            problems_file = gr.File(label=T("data.problems.label"), interactive=False, height=80, visible=False)
            length_plot = gr.Plot(label=T("data.lengths.label"))
    training_md = gr.Markdown(render=False)
    facts_state = gr.State({})
    with gr.Tabs():
        previews = []
        for split in ("train", "val", "test"):
            with gr.Tab(T(f"data.preview.{split}")):
                previews.append(gr.Dataframe(_empty_preview, wrap=True, max_height=360,
                                             interactive=False, column_widths=["7%", "9%", "50%", "34%"]))

    def failed(exc: Exception, lang: str) -> tuple:
        """Nothing of the previous data stays on screen as if it were this file's: the tab shows the failure, and the
        Train tab says there is no data until a sample or a fixed file is chosen (no file is touched)."""
        said = say(exc, lang)
        gr.Warning(said.splitlines()[0])
        empty = _frame([], lang)
        return ("", text("data.not_used", lang, error=said), gr.update(value=None, visible=False), None, empty,
                empty, empty, gr.update(visible=False), no_data_line(said.splitlines()[0], lang), {})

    def show(path: str, keep: Callable[[], str], val_size: float, test_size: float, seed: float, max_len: int,
             lang: str, progress: gr.Progress | None = None):
        max_len = int(max_len or DEFAULT_MAX_LEN)
        # A big upload takes seconds to check and count: the bar says how far it is (a no-op outside an event).
        report = None if progress is None else (lambda done, message: progress(done, desc=say(message, lang)))
        try:
            view = describe_data(path, val_size, test_size, int(seed or 0), max_len=max_len, on_progress=report,
                                 lang=lang)
            kept = keep()  # keep a copy only of a file that is usable: runs refer to it after the temp upload is gone
        except (ValueError, OSError) as exc:
            return failed(exc, lang)
        frames = [_frame(view.splits[split], lang) for split in ("train", "val", "test")]
        shown = (text("core.data.report.file", lang, path=name) for name in (path, kept))
        summary = view.summary.replace(*shown, 1)  # the copy runs use, not the temp file
        summary += korean_base_note(kept, lang)
        problems = _problems_csv(workbench, kept, view.problems)  # shown only when there are bad rows
        if view.split_problem:  # the rows are reported all the same; the split's fix is one click away
            gr.Warning(text("data.split_warning", lang))
        facts = {"new_tokens": view.new_tokens}
        return (kept, summary, gr.update(value=problems, visible=problems is not None),
                _length_histogram(view.lengths, max_len, lang), *frames, gr.update(visible=bool(view.split_problem)),
                headline(view, data_name(kept, lang), max_len, lang), facts)

    def on_check(sample: str, upload: str | None, val_size: float, test_size: float, seed: float,
                 max_len: int = DEFAULT_MAX_LEN, request: gr.Request = None, progress=gr.Progress()):
        path = upload or f"{SAMPLE_PREFIX}{sample}"
        keep = (lambda: str(workbench.save_upload(upload, viewer_of(workbench, request)))) if upload else \
            (lambda: path)
        return show(path, keep, val_size, test_size, seed, max_len, lang_of(request), progress)

    def on_show(path: str, val_size: float, test_size: float, seed: float, max_len: int = DEFAULT_MAX_LEN,
                request: gr.Request = None, progress=gr.Progress()):
        lang = lang_of(request)
        if not (path or "").strip():  # no data chosen (a failed upload): nothing to show again
            return *([gr.skip()] * (len(outputs) - 2)), no_data_line(NO_DATA, lang), {}
        try:
            checked = workbench.check_data_path(path, viewer_of(workbench, request))
        except ValueError as exc:
            return failed(exc, lang)
        return show(checked, lambda: checked, val_size, test_size, seed, max_len, lang, progress)

    inputs = {"sample": sample_dropdown, "upload": upload_file, "val_size": val_size_slider,
              "test_size": test_size_slider, "seed": split_seed_number, "max_len": max_len_state}
    outputs = [data_path_box, report_box, problems_file, length_plot, *previews, split_fix_btn, training_md,
               facts_state]
    check_btn.click(on_check, inputs_kwargs=inputs, outputs=outputs, api_name="check_data")
    upload_file.upload(on_check, inputs_kwargs=inputs, outputs=outputs, api_visibility="private")
    upload_file.clear(on_check, inputs_kwargs=inputs, outputs=outputs, api_visibility="private")  # back to the sample
    sample_dropdown.input(on_check, inputs_kwargs=inputs, outputs=outputs, api_visibility="private")
    split_fix_btn.click(lambda: (0, 0), None, [val_size_slider, test_size_slider], api_visibility="private").then(
        on_check, inputs_kwargs=inputs, outputs=outputs, api_visibility="private")
    show_inputs = {"path": data_path_box, "val_size": val_size_slider, "test_size": test_size_slider,
                   "seed": split_seed_number, "max_len": max_len_state}
    return DataTab(data_path_box, val_size_slider, test_size_slider, split_seed_number, check_btn, max_len_state,
                   sample_dropdown, training_md, facts_state, inputs, outputs, show_inputs, on_check, on_show)
