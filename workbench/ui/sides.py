"""What Compare and Arena share: the side pickers, the sampling and few-shot knobs, and picks → chat sides.

A pick is a dropdown value: "base", "few-shot" (the base model with k training examples in its prompt) or a run
id. `make_lineup` turns picks into `Side`s on the one engine of their base model, with a label per side that is
stable across sessions (votes and tables use it): "base", "base + 3-shot", or "<run name> · <run id tail>".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.app import USER_ERRORS, Workbench
from workbench.classroom.access import Viewer
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.lineups import MAX_SHOTS, few_shot_turns
from workbench.generate.sampling import SamplingConfig
from workbench.i18n import Message, message
from workbench.ui.data_tab import DataTab
from workbench.ui.i18n import T

BASE, FEW_SHOT, OFF = "base", "few-shot", "off"


# A choice's words come from the catalogues (the page draws them in its language); its value stays the same.
# `viewer`: whose runs are listed (None, as the page is built: the page's; in classroom mode only shared ones).
def side_choices(workbench: Workbench, viewer: Viewer | None = None) -> list[tuple[Any, str]]:
    return [(T("sides.off"), OFF), (T("sides.few_shot"), FEW_SHOT), *workbench.run_choices(True, viewer)]


def candidate_choices(workbench: Workbench, viewer: Viewer | None = None) -> list[tuple[Any, str]]:
    return [(T("sides.base"), BASE), (T("sides.few_shot"), FEW_SHOT), *workbench.run_choices(True, viewer)]


@dataclass
class SamplingKnobs:
    temperature_slider: gr.Slider
    top_p_slider: gr.Slider
    max_tokens_slider: gr.Slider
    seed_number: gr.Number

    @property
    def inputs(self) -> dict:  # by make_sampling's parameter names
        return {"temperature": self.temperature_slider, "top_p": self.top_p_slider,
                "max_new_tokens": self.max_tokens_slider, "seed": self.seed_number}


def build_sampling_knobs(data: DataTab, max_new_tokens: int = 96) -> SamplingKnobs:
    """Temperature, top-p, max new tokens and seed in one row; the same settings go to every side. Max new tokens
    follows the data's answer lengths."""
    with gr.Row():
        knobs = SamplingKnobs(
            gr.Slider(0, 2, value=0.0, step=0.05, label=T("sampling.temperature"),
                      info=T("sampling.temperature.info")),
            gr.Slider(0.05, 1, value=0.9, step=0.05, label=T("sampling.top_p"), info=T("sampling.top_p.info")),
            gr.Slider(8, 512, value=max_new_tokens, step=8, label=T("sampling.max_new_tokens"),
                      info=T("sampling.max_new_tokens.info")),
            gr.Number(0, precision=0, label=T("sampling.seed"), info=T("sampling.seed.info")))
    follow_answer_lengths(knobs.max_tokens_slider, data)
    return knobs


def follow_answer_lengths(component: gr.components.Component, data: DataTab) -> None:
    """A max-new-tokens field takes the Data tab's suggestion whenever other data is chosen: long enough for 95 %
    of its answers and a margin (Korean answers need several times the tokens of English ones)."""
    data.facts_state.change(lambda facts: (facts or {}).get("new_tokens") or gr.skip(), data.facts_state, component,
                            api_visibility="private", show_progress="hidden")


@dataclass
class FewShotKnobs:
    shots_slider: gr.Slider
    shots_path_box: gr.Textbox

    @property
    def inputs(self) -> dict:  # by make_lineup's parameter names
        return {"shots": self.shots_slider, "shots_path": self.shots_path_box}


def build_few_shot_knobs(data: DataTab) -> FewShotKnobs:
    """k and the file the examples come from; the file follows the Data tab's choice."""
    with gr.Row():
        knobs = FewShotKnobs(
            gr.Slider(1, MAX_SHOTS, value=3, step=1, label=T("few_shot.k"), info=T("few_shot.k.info")),
            gr.Textbox(data.data_path_box.value, label=T("few_shot.data"), info=T("few_shot.data.info")))
    # (no data chosen after a failed upload: the examples stay where they were)
    data.data_path_box.change(lambda path: path or gr.skip(), data.data_path_box, knobs.shots_path_box,
                              api_visibility="private")
    return knobs


def make_sampling(temperature: float, top_p: float, max_new_tokens: float, seed: float | None) -> SamplingConfig:
    return SamplingConfig(temperature=float(temperature), top_p=float(top_p), max_new_tokens=int(max_new_tokens),
                          seed=int(seed or 0))


def pick_label(workbench: Workbench, pick: str, shots: int, viewer: Viewer | None = None) -> str:
    if pick == BASE:
        return "base"
    if pick == FEW_SHOT:
        return f"base + {shots}-shot"
    return workbench.run_label(pick, viewer)


@dataclass
class Lineup:
    """The engine of one base model and a side per pick, in the order picked."""

    engine: ChatEngine
    model: str
    sides: list[Side]


def make_lineup(workbench: Workbench, picks: Sequence[str], fields: Sequence[str], shots: float, shots_path: str,
                seed: float | None, fallback_model: str, exclude: str = "", viewer: Viewer | None = None) -> Lineup:
    """Sides for the picks (`fields` name each pick in error messages); adapters are loaded once per engine.

    `exclude` is a prompt that the few-shot examples must not contain (the question being asked). Its own errors
    carry a Message, put into the reader's language where they are shown (`say`).
    """
    _records, model = workbench.trained_runs([(pick, where) for pick, where in zip(picks, fields)
                                              if pick not in (BASE, FEW_SHOT)], viewer)
    model = model or (fallback_model or "").strip() or "embedded"  # no run chosen: the Train tab's model
    engine, sides, turns = workbench.engine(model), [], None
    for pick, where in zip(picks, fields):
        label = pick_label(workbench, pick, int(shots), viewer)
        if pick == BASE:
            sides.append(Side(label))
        elif pick == FEW_SHOT:
            if turns is None:
                path = (shots_path or "").strip()
                if not path:
                    raise ValueError(message("sides.error.few_shot_empty", where=where))
                try:
                    turns = few_shot_turns(workbench.check_data_path(path, viewer), int(shots), int(seed or 0),
                                           exclude=exclude)
                except USER_ERRORS as exc:
                    error = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], Message) else str(exc)
                    raise ValueError(message("sides.error.few_shot_data", where=where, path=path,
                                             error=error)) from None
            sides.append(Side(label, shots=turns))
        else:
            engine.ensure_adapter(pick, workbench.store_for(workbench.who(viewer)).adapter_dir(pick))
            sides.append(Side(label, adapter=pick))
    return Lineup(engine, model, sides)
