"""Compare tab: the base model and up to three other sides answer the same prompt, streaming, side by side.

Side 1 is always the base model; sides 2-4 are each off, the base with few-shot examples in its prompt, or a
trained run. Every side gets the same prompt and sampling settings; each pane keeps its own conversation (per
browser session). The prompt sheet answers many prompts with the same sides and offers the table as a CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.classroom.access import Viewer
from workbench.fsio import write_csv
from workbench.generate.lineups import MAX_SIDES, Prices, answer_sheet, parse_prompt_sheet, prompt_sheet_csv
from workbench.i18n import message, say, text
from workbench.ui.data_tab import DataTab
from workbench.ui.i18n import T, derived, lang_of
from workbench.ui.sides import (
    BASE,
    FEW_SHOT,
    OFF,
    build_few_shot_knobs,
    build_sampling_knobs,
    make_lineup,
    make_sampling,
    pick_label,
    side_choices,
)
from workbench.ui.stops import SessionStops
from workbench.ui.train_tab import TrainTab
from workbench.ui.who import viewer_of

MAX_SHEET_PROMPTS = 100


@dataclass
class ComparePanes:
    columns: list[gr.Column]
    chatbots: list[gr.Chatbot]
    stats_mds: list[gr.Markdown]
    histories: list[gr.State]


def _pane_title(workbench: Workbench, index: int, pick: str | None, shots: float, lang: str,
                viewer: Viewer | None = None) -> str:
    if index == 0:
        return text("compare.pane.base", lang)
    if not pick or pick == OFF:
        return text("compare.pane.off", lang, n=index + 1)
    if pick == FEW_SHOT:
        return text("compare.pane.few_shot", lang, n=index + 1, k=int(shots))
    try:
        return text("compare.pane.model", lang, n=index + 1, model=pick_label(workbench, pick, int(shots), viewer))
    except USER_ERRORS:
        return text("compare.pane.model", lang, n=index + 1, model=pick)


def _first_title(index: int):
    """A pane's title as the page opens (side 1 the base model, the others off), in the page's language."""
    if index == 0:
        return T("compare.pane.base")
    return derived(f"compare.pane.off+{index + 1}", lambda lang: text("compare.pane.off", lang, n=index + 1))


def _numbers_label(index: int):
    """The label of a pane's numbers line (tokens, timings), in the page's language."""
    return derived(f"compare.pane.numbers+{index + 1}", lambda lang: text("compare.pane.numbers", lang, n=index + 1))


def _side_names(slots: list[int], lang: str) -> list[str]:
    """How errors name the sides of `slots` ("Side 2"), in `lang`."""
    return [text("compare.side.name", lang, n=i + 1) for i in slots]


def _build_panes() -> ComparePanes:
    panes = ComparePanes([], [], [], [])
    with gr.Row(equal_height=True):
        for index in range(MAX_SIDES):
            with gr.Column(visible=index == 0, min_width=240) as column:
                panes.columns.append(column)
                panes.chatbots.append(gr.Chatbot(label=_first_title(index), height=380))
                panes.stats_mds.append(gr.Markdown(label=_numbers_label(index)))
            panes.histories.append(gr.State([]))
    return panes


def _stats(state, prices: Prices, lang: str = "en") -> str:
    line = state.stats_line(lang)
    if prices.shown:
        line += text("compare.stats.cost", lang, cost=f"{prices.cost(state.prompt_tokens, state.new_tokens):.6f}")
    return line


def _prices(prompt_price: float | None, output_price: float | None) -> Prices:
    prices = {"compare.prompt_price": float(prompt_price or 0), "compare.output_price": float(output_price or 0)}
    for field, value in prices.items():
        if not 0 <= value <= 1000:
            raise ValueError(message("compare.error.price", field=message(field), value=value))
    return Prices(*prices.values())


@dataclass
class CompareTab:
    side_2_dropdown: gr.Dropdown  # the first side after the base: where a freshly trained run goes
    side_dropdowns: list[gr.Dropdown]  # sides 2..MAX_SIDES


def build_compare_tab(workbench: Workbench, data: DataTab, train: TrainTab) -> CompareTab:
    gr.Markdown(T("compare.intro"))
    with gr.Row():
        side_dropdowns = [gr.Dropdown(side_choices(workbench), value=OFF, label=T(f"compare.side_{n}"), scale=3,
                                      info=T("compare.side.info"), allow_custom_value=True)
                          for n in range(2, MAX_SIDES + 1)]
        refresh_btn = gr.Button(T("compare.refresh"), scale=1)
    few_shot = build_few_shot_knobs(data)
    sampling = build_sampling_knobs(data)
    with gr.Accordion(T("compare.prices"), open=False):
        with gr.Row():
            prompt_price_number = gr.Number(0, minimum=0, label=T("compare.prompt_price"),
                                            info=T("compare.price.info"))
            output_price_number = gr.Number(0, minimum=0, label=T("compare.output_price"),
                                            info=T("compare.price.info"))
    panes = _build_panes()
    prompt_box = gr.Textbox(label=T("compare.prompt"), lines=3, placeholder=T("compare.prompt.placeholder"))
    with gr.Row():
        send_btn = gr.Button(T("compare.send"), variant="primary")
        stop_btn = gr.Button(T("compare.stop"), variant="stop")
        clear_btn = gr.Button(T("compare.clear"))
    # What every answer depends on, by the handlers' parameter names (also the API's).
    settings = {**{f"side_{n}": dropdown for n, dropdown in enumerate(side_dropdowns, start=2)}, **few_shot.inputs,
                **sampling.inputs, "prompt_price": prompt_price_number, "output_price": output_price_number,
                "base_model": train.model_box}

    stops = SessionStops()  # Stop and Clear end this window's answers at the next token

    def on_send(prompt, side_2, side_3, side_4, shots, shots_path, temperature, top_p, max_new_tokens, seed,
                prompt_price, output_price, base_model, history_1, history_2, history_3, history_4,
                request: gr.Request):
        if not prompt or not prompt.strip():
            raise gr.Error(text("compare.error.empty_prompt", lang_of(request)))
        picks = [BASE, *(pick or OFF for pick in (side_2, side_3, side_4))]
        slots = [i for i, pick in enumerate(picks) if pick != OFF]
        stop = stops.new(request)  # from here: a Stop during the model's load ends the answers before they start
        try:
            sampling_config, prices = make_sampling(temperature, top_p, max_new_tokens, seed), \
                _prices(prompt_price, output_price)
            lineup = make_lineup(workbench, [picks[i] for i in slots], _side_names(slots, lang_of(request)), shots,
                                 shots_path, seed, base_model, exclude=prompt,
                                 viewer=viewer_of(workbench, request))
        except USER_ERRORS as exc:
            stops.done(stop)
            raise gr.Error(say(exc, lang_of(request))) from None
        user = {"role": "user", "content": prompt}
        old = [history_1, history_2, history_3, history_4]
        histories = [list(old[i] or []) + [user] for i in slots]
        chats, stats = [[] for _ in picks], ["" for _ in picks]  # off sides: empty panes, no history
        stream = _stream(lineup, histories, sampling_config, lang_of(request))
        try:
            for states in stream:
                for i, history, state in zip(slots, histories, states):
                    chats[i] = history + [{"role": "assistant", "content": state.text}]
                    stats[i] = _stats(state, prices, lang_of(request))
                yield "", *chats, *stats, *chats
                if stop.is_set():  # Stop: what streamed so far stays in each pane and its history
                    break
        finally:
            stream.close()
            stops.done(stop)

    def on_side_change(index: int) -> Callable:
        def on_change(pick, shots, request: gr.Request = None):  # a new model in a pane: a new conversation there
            title = _pane_title(workbench, index, pick, shots, lang_of(request), viewer_of(workbench, request))
            return gr.update(visible=bool(pick) and pick != OFF), gr.update(label=title, value=[]), "", []
        return on_change

    def on_sides_focus(request: gr.Request = None):  # runs trained since, the account's own (and shared) ones
        return gr.update(choices=side_choices(workbench, viewer_of(workbench, request)))

    def on_other_sides(request: gr.Request = None):
        return [on_sides_focus(request)] * (len(side_dropdowns) - 1)

    def on_clear():
        return *([[]] * MAX_SIDES), *([""] * MAX_SIDES), *([[]] * MAX_SIDES)

    inputs = {"prompt": prompt_box, **settings,
              **{f"history_{n}": history for n, history in enumerate(panes.histories, start=1)}}
    outputs = [prompt_box, *panes.chatbots, *panes.stats_mds, *panes.histories]
    send_btn.click(on_send, inputs_kwargs=inputs, outputs=outputs, api_name="compare")
    prompt_box.submit(on_send, inputs_kwargs=inputs, outputs=outputs, api_visibility="private")
    # Stop ends the answers where they are: what was streamed so far stays in each pane and its history.
    stop_btn.click(stops.handler, None, None, api_visibility="private", queue=False)
    # Answers still streaming would fill the cleared panes again: they stop first.
    clear_btn.click(stops.handler, None, None, api_visibility="private", queue=False).then(
        on_clear, None, [*panes.chatbots, *panes.stats_mds, *panes.histories], api_name="clear_compare")
    for index, dropdown in enumerate(side_dropdowns, start=1):
        dropdown.change(on_side_change(index), [dropdown, few_shot.shots_slider],
                        [panes.columns[index], panes.chatbots[index], panes.stats_mds[index],
                         panes.histories[index]], api_visibility="private")
        dropdown.focus(on_sides_focus, None, dropdown, api_visibility="private")

    def on_shots(shots, side_2, side_3, side_4, request: gr.Request = None):  # "base + k-shot" in the titles follows k
        viewer = viewer_of(workbench, request)
        return [gr.update(label=_pane_title(workbench, i, pick, shots, lang_of(request), viewer))
                for i, pick in enumerate((side_2, side_3, side_4), start=1)]

    few_shot.shots_slider.change(on_shots, [few_shot.shots_slider, *side_dropdowns], panes.chatbots[1:],
                                 api_visibility="private")
    refresh_btn.click(on_sides_focus, None, side_dropdowns[0], api_name="list_adapters").then(
        on_other_sides, None, side_dropdowns[1:], api_visibility="private")
    _build_sheet(workbench, settings)

    return CompareTab(side_dropdowns[0], side_dropdowns)


def _stream(lineup, histories, sampling_config, lang: str = "en"):
    try:
        yield from lineup.engine.stream(lineup.sides, histories, sampling_config)
    except (RuntimeError, ValueError, OSError) as exc:  # e.g. out of memory: say so in the app, not a bare trace
        raise gr.Error(text("compare.error.generation", lang, error=say(exc, lang))) from None


SHEET_COLUMNS = ("#", "prompt", "side", "answer", "prompt_tokens", "cached_prompt_tokens", "new_tokens", "ttft_s",
                 "seconds", "tokens_per_s", "cost")


def _sheet_headed(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The prompt sheet's table headed in `lang`."""
    return frame.rename(columns={c: text(f"compare.sheet.column.{c}", lang) for c in SHEET_COLUMNS if c != "#"})


def _empty_sheet(request: gr.Request = None) -> pd.DataFrame:
    """The prompt sheet's table before any answer, headed in the browser's language (read at each page load: a
    Dataframe's headers are data, which the page's catalogue cannot translate)."""
    return _sheet_headed(pd.DataFrame(columns=list(SHEET_COLUMNS[:-1])), lang_of(request))


def _build_sheet(workbench: Workbench, settings: dict) -> None:
    """The prompt sheet accordion: many prompts, the same sides and settings, one table and a CSV."""
    stops = SessionStops()  # its own Stop: the chat above may answer meanwhile
    with gr.Accordion(T("compare.sheet"), open=False):
        gr.Markdown(T("compare.sheet.help"))
        with gr.Row():
            sheet_box = gr.Textbox(label=T("compare.sheet.prompts"), lines=6, info=T("compare.sheet.prompts.info"),
                                   placeholder=T("compare.sheet.prompts.placeholder"))
            sheet_file = gr.File(label=T("compare.sheet.file"), type="filepath", file_types=[".csv"])
        with gr.Row():
            sheet_btn = gr.Button(T("compare.sheet.answer"), variant="primary")
            sheet_stop_btn = gr.Button(T("compare.stop"), variant="stop")
        sheet_table = gr.Dataframe(_empty_sheet, label=T("compare.sheet.table"), wrap=True, interactive=False,
                                   max_height=420)
        sheet_csv_file = gr.File(label=T("compare.sheet.csv"), interactive=False)

    words = text  # the handler's `text` is the pasted prompts (the API's parameter name)

    def on_answer_sheet(text, csv_path, side_2, side_3, side_4, shots, shots_path, temperature, top_p,
                        max_new_tokens, seed, prompt_price, output_price, base_model, request: gr.Request,
                        progress=gr.Progress()):
        picks = [BASE, *(pick or OFF for pick in (side_2, side_3, side_4))]
        slots = [i for i, pick in enumerate(picks) if pick != OFF]
        try:
            prompts, notes = prompt_sheet_csv(csv_path) if csv_path else (parse_prompt_sheet(text or ""), [])
            for note in notes:  # e.g. a Korean Excel file read as CP949
                gr.Info(words("compare.sheet.csv_note", lang_of(request), note=say(note, lang_of(request))))
            if len(prompts) > MAX_SHEET_PROMPTS:
                raise ValueError(message("compare.error.too_many", count=len(prompts), most=MAX_SHEET_PROMPTS))
            sampling_config, prices = make_sampling(temperature, top_p, max_new_tokens, seed), \
                _prices(prompt_price, output_price)
            progress(0, desc=words("compare.sheet.loading", lang_of(request)))
            lineup = make_lineup(workbench, [picks[i] for i in slots], _side_names(slots, lang_of(request)), shots,
                                 shots_path, seed, base_model, viewer=viewer_of(workbench, request))
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang_of(request))) from None
        rows: list[dict] = []
        csv_path = workbench.new_export("sheet")
        stop = stops.new(request)
        answers = answer_sheet(lineup.engine, lineup.sides, prompts, sampling_config, prices)
        try:
            for index, new_rows in answers:
                rows += new_rows
                progress((index + 1) / len(prompts), desc=words("compare.sheet.progress", lang_of(request),
                                                                 index=index + 1, count=len(prompts)))
                frame = pd.DataFrame(rows)
                # The CSV grows with the table, so a sheet stopped halfway still has its answers to download; the
                # table shows it headed in the reader's language (the CSV keeps the column names).
                yield _sheet_headed(frame, lang_of(request)), write_csv(csv_path, frame)
                if stop.is_set():
                    break
        finally:
            answers.close()
            stops.done(stop)

    sheet_btn.click(on_answer_sheet, inputs_kwargs={"text": sheet_box, "csv_path": sheet_file, **settings},
                    outputs=[sheet_table, sheet_csv_file], api_name="answer_sheet")
    sheet_stop_btn.click(stops.handler, None, None, api_visibility="private", queue=False)
