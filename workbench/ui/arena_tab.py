"""Arena tab: blind A/B battles between two randomly drawn models, a leaderboard, and votes → preference data.

Before the vote the browser only ever sees "Model A" and "Model B": the real labels stay in a gr.State (kept on
the server), and the numbers that could give a side away (prompt tokens betray few-shot) are shown only after it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import gradio as gr
import pandas as pd

from workbench.app import USER_ERRORS, Workbench
from workbench.arena.ratings import (
    battle_counts,
    leaderboard,
    make_battle_count_heatmap,
    make_rating_figure,
    make_win_rate_heatmap,
    win_rate_matrix,
)
from workbench.arena.votes import BlindPair, ExportSummary, Vote, export_preferences
from workbench.classroom.access import Viewer
from workbench.i18n import say, text
from workbench.ui.data_tab import DataTab
from workbench.ui.i18n import T, lang_of
from workbench.ui.sides import (
    BASE,
    FEW_SHOT,
    build_few_shot_knobs,
    build_sampling_knobs,
    candidate_choices,
    make_lineup,
    make_sampling,
)
from workbench.ui.train_tab import TrainTab
from workbench.ui.who import viewer_of

# The leaderboard's columns: ratings.leaderboard's keys, shown as words (leaderboard_headers, in the page's language;
# the help below uses the same words).
LEADERBOARD_KEYS = ("model", "bt", "bt_low", "bt_high", "elo", "battles", "wins", "losses", "ties", "both_bad")
ROUNDED = ("bt", "bt_low", "bt_high", "elo")  # ratings shown as whole points
VOTES = ("left", "right", "tie", "both_bad")  # the vote buttons, left to right
VOTE_API = {"left": "vote_a", "right": "vote_b", "tie": "vote_tie", "both_bad": "vote_both_bad"}


def leaderboard_headers(lang: str) -> dict[str, str]:
    """The leaderboard's column headers in `lang`, by ratings.leaderboard's keys."""
    return {key: text(f"arena.column.{key}", lang) for key in LEADERBOARD_KEYS}


def leaderboard_help(lang: str) -> str:
    """What the rating columns mean, in the words of the headers."""
    return text("arena.leaderboard.help", lang, **leaderboard_headers(lang))


@dataclass
class ArenaTab:
    on_leaderboard: Callable
    leaderboard_inputs: list
    leaderboard_outputs: list
    candidates_dropdown: gr.Dropdown
    picked_state: gr.State  # what the page picked by itself (on_page_load and on_open keep it)
    on_page_load: Callable  # () -> (the candidates with the newest trained run picked, that pick)
    on_open: Callable  # (candidates, pick) -> the list refreshed; the newest run picked while untouched


@dataclass(frozen=True)
class Battle:
    """One battle as the server keeps it (in gr.State, never sent to the browser)."""

    pair: BlindPair
    prompt: str
    sampling: dict[str, Any]
    base_model: str
    answers: tuple[str, str] = ("", "")
    stats: tuple[str, str] = ("", "")
    done: bool = False
    vote_id: int | None = None


def _chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _draw(candidates: list[str], rng: random.Random) -> BlindPair:
    """Two different candidates in random order (A = left, B = right)."""
    return BlindPair.draw(tuple(rng.sample(candidates, 2)), rng)


def _count(count: int, what: str, lang: str) -> str:
    """A count with its noun ("1 vote", "3 votes"; "3표"), in `lang`."""
    return text(f"arena.count.{what}.{'one' if count == 1 else 'other'}", lang, count=count)


def _export_md(summary: ExportSummary, copy: str, lang: str) -> str:
    more = "".join(text(f"arena.exported.{why}", lang, count=count)
                   for why, count in (("identical", summary.identical), ("empty", summary.empty)) if count)
    return text("arena.exported", lang, pairs=_count(summary.written, "pairs", lang),
                ties=_count(summary.ties, "ties", lang), both_bad=summary.both_bad, more=more, copy=copy)


def default_candidates(choices: list[tuple[str, str]]) -> list[str]:
    """What the Candidates list (candidate_choices) starts with: the base model and the newest trained run, the
    battle a student trained for; with no trained run yet, the base model and the base with few-shot examples."""
    runs = [value for _label, value in choices if value not in (BASE, FEW_SHOT)]  # newest first
    return [BASE, runs[0]] if runs else [BASE, FEW_SHOT]


def _leaderboard_outputs(workbench: Workbench, base_model: str | None, lang: str = "en",
                         viewer: Viewer | None = None) -> tuple:
    """The leaderboard of one base model's votes (the most recently voted one when none is chosen): in classroom
    mode a student's own votes, the teacher's the whole class's."""
    viewer = workbench.who(viewer)
    voted = workbench.votes.base_models(viewer)
    names = [name for name, _count in voted]
    base_model = base_model if base_model in names else (names[0] if names else "")
    battles = workbench.votes.battles(base_model, viewer)
    rows = leaderboard(battles)
    labels = [row["model"] for row in rows]
    table = pd.DataFrame(rows, columns=list(LEADERBOARD_KEYS)).round(dict.fromkeys(ROUNDED, 0))
    table = table.rename(columns=leaderboard_headers(lang))
    counts = {"votes": _count(len(battles), "votes", lang), "models": _count(len(labels), "models", lang)}
    note = text("arena.leaderboard.note_base", lang, model=base_model, **counts) if base_model else \
        text("arena.leaderboard.note", lang, **counts)
    note = f"{note}  \n{leaderboard_help(lang)}"
    choices = [(f"{name} ({_count(count, 'votes', lang)})", name) for name, count in voted]
    return (table, make_rating_figure(rows, lang), make_win_rate_heatmap(*win_rate_matrix(battles, labels), lang),
            make_battle_count_heatmap(*battle_counts(battles, labels), lang), note,
            gr.update(choices=choices, value=base_model or None))


def _vote_handler(workbench: Workbench, choice: str) -> Callable:
    def on_vote(battle: Battle | None, session: str, request: gr.Request = None):
        lang = lang_of(request)
        if battle is None:
            raise gr.Error(text("arena.error.no_battle", lang))
        if not battle.done:
            raise gr.Error(text("arena.error.not_done", lang))
        if battle.vote_id is not None:
            raise gr.Error(text("arena.error.voted", lang, vote=battle.vote_id))
        session = session or uuid.uuid4().hex
        viewer = viewer_of(workbench, request)
        (left, right), user = battle.pair.reveal(), {"role": "user", "content": battle.prompt}
        try:
            saved = workbench.votes.add(Vote(
                prompt=battle.prompt, left_model=left, right_model=right, left_answer=battle.answers[0],
                right_answer=battle.answers[1], choice=choice, history=[user], sampling=battle.sampling,
                session=session, base_model=battle.base_model, owner=viewer.owner))
        except ValueError as exc:
            raise gr.Error(text("arena.error.not_saved", lang, error=say(exc, lang))) from None
        reveal = text("arena.reveal", lang, choice=text(f"arena.voted.{choice}", lang), left=left, right=right,
                      vote=saved.id, votes=_count(workbench.votes.count(viewer), "votes", lang))
        reveal += f"  \nA: {battle.stats[0]}  \nB: {battle.stats[1]}"
        return reveal, replace(battle, vote_id=saved.id), session
    return on_vote


def build_arena_tab(workbench: Workbench, data: DataTab, train: TrainTab) -> ArenaTab:
    """Battles and votes, then the leaderboard and the export; returns the leaderboard refresh (for tab select) and
    the page-load handler that picks the newest trained run among the candidates."""
    gr.Markdown(T("arena.intro"))
    candidates_dropdown, votes_cast = _build_battles(workbench, data, train)
    on_leaderboard, leaderboard_inputs, leaderboard_outputs = _build_leaderboard(workbench)
    for vote_cast in votes_cast:  # after a vote the leaderboard shows it
        vote_cast.success(on_leaderboard, leaderboard_inputs, leaderboard_outputs, api_visibility="private")
    _build_export(workbench, data)

    picked_state = gr.State(None)  # the candidates the page picked by itself, until the student picks others

    def on_page_load(request: gr.Request = None):  # runs trained since the app started (or in another window) are
        choices = candidate_choices(workbench, viewer_of(workbench, request))  # listed, the newest picked
        picked = default_candidates(choices)
        return gr.update(choices=choices, value=picked), picked

    def on_open(current: list[str] | None, picked: list[str] | None, request: gr.Request = None):
        """The tab opened: runs trained since are listed. While the candidates are the ones the page picked by
        itself (or only untrained ones), they follow the newest run; the student's own choice stays."""
        untouched = sorted(current or []) == sorted(picked or []) or set(current or []) <= {BASE, FEW_SHOT}
        if untouched:
            return on_page_load(request)
        return gr.update(choices=candidate_choices(workbench, viewer_of(workbench, request))), picked

    return ArenaTab(on_leaderboard, leaderboard_inputs, leaderboard_outputs, candidates_dropdown, picked_state,
                    on_page_load, on_open)


def _build_battles(workbench: Workbench, data: DataTab, train: TrainTab) -> tuple[gr.Dropdown, list[Any]]:
    """Candidates, settings, the two blind panes, New battle and the vote buttons; returns the candidates list and
    the vote events."""
    choices = candidate_choices(workbench, workbench.page_viewer())
    with gr.Row():
        candidates_dropdown = gr.Dropdown(choices, value=default_candidates(choices), multiselect=True,
                                          label=T("arena.candidates.label"), info=T("arena.candidates.info"),
                                          allow_custom_value=True, scale=4)
        refresh_btn = gr.Button(T("compare.refresh"), scale=1)
    few_shot = build_few_shot_knobs(data)
    sampling = build_sampling_knobs(data)
    with gr.Row(equal_height=True):
        a_chatbot = gr.Chatbot(label=T("arena.model_a"), height=360)
        b_chatbot = gr.Chatbot(label=T("arena.model_b"), height=360)
    prompt_box = gr.Textbox(label=T("compare.prompt"), lines=3, placeholder=T("arena.prompt.placeholder"))
    battle_btn = gr.Button(T("arena.new_battle"), variant="primary")
    with gr.Row():
        vote_btns = {choice: gr.Button(T(f"arena.vote.{choice}")) for choice in VOTES}
    reveal_md = gr.Markdown(label=T("arena.status.label"))
    battle_state, session_state = gr.State(None), gr.State("")

    def on_battle(prompt, candidates, shots, shots_path, temperature, top_p, max_new_tokens, seed, base_model,
                  request: gr.Request = None):
        lang = lang_of(request)
        if not prompt or not prompt.strip():
            raise gr.Error(text("arena.error.empty_prompt", lang))
        picks = list(dict.fromkeys(candidates or []))
        if len(picks) < 2:
            raise gr.Error(text("arena.error.candidates", lang, count=len(picks)))
        try:  # every candidate is checked (and loaded) before the draw, so an error never hints at the pair
            settings = make_sampling(temperature, top_p, max_new_tokens, seed)
            lineup = make_lineup(workbench, picks, [text("arena.candidates.label", lang)] * len(picks), shots,
                                 shots_path, seed, base_model, exclude=prompt, viewer=viewer_of(workbench, request))
        except USER_ERRORS as exc:
            raise gr.Error(say(exc, lang)) from None
        sides = {side.label: side for side in lineup.sides}
        battle = Battle(_draw(list(sides), random.SystemRandom()), prompt, asdict(settings), lineup.model)
        yield _chat(prompt, ""), _chat(prompt, ""), text("arena.answering", lang), battle
        histories = [[{"role": "user", "content": prompt}]] * 2
        try:
            for states in lineup.engine.stream([sides[label] for label in battle.pair.reveal()], histories,
                                               settings):
                battle = replace(battle, answers=(states[0].text, states[1].text),
                                 stats=(states[0].stats_line(lang), states[1].stats_line(lang)))
                yield _chat(prompt, states[0].text), _chat(prompt, states[1].text), gr.skip(), battle
        except (RuntimeError, ValueError, OSError) as exc:
            raise gr.Error(text("arena.error.generation", lang, error=say(exc, lang))) from None
        chats = [_chat(prompt, answer) for answer in battle.answers]
        yield *chats, text("arena.answered", lang), replace(battle, done=True)

    battle_outputs = [a_chatbot, b_chatbot, reveal_md, battle_state]
    battle_inputs = {"prompt": prompt_box, "candidates": candidates_dropdown, **few_shot.inputs, **sampling.inputs,
                     "base_model": train.model_box}
    battle_btn.click(on_battle, inputs_kwargs=battle_inputs, outputs=battle_outputs, api_name="new_battle")
    prompt_box.submit(on_battle, inputs_kwargs=battle_inputs, outputs=battle_outputs, api_visibility="private")
    votes_cast = [button.click(_vote_handler(workbench, choice), [battle_state, session_state],
                               [reveal_md, battle_state, session_state], api_name=VOTE_API[choice])
                  for choice, button in vote_btns.items()]
    def on_candidates_focus(request: gr.Request = None):  # runs trained since: the account's own and shared ones
        return gr.update(choices=candidate_choices(workbench, viewer_of(workbench, request)))

    refresh_btn.click(on_candidates_focus, None, candidates_dropdown, api_name="list_candidates")
    candidates_dropdown.focus(on_candidates_focus, None, candidates_dropdown, api_visibility="private")
    return candidates_dropdown, votes_cast


def _build_leaderboard(workbench: Workbench) -> tuple[Callable, list, list]:
    """The leaderboard accordion; returns its refresh handler with that handler's inputs and outputs."""
    with gr.Accordion(T("arena.leaderboard"), open=True):
        with gr.Row():
            base_model_dropdown = gr.Dropdown([], value="", label=T("arena.base_model.label"),
                                              allow_custom_value=True, scale=3, info=T("arena.base_model.info"))
            leaderboard_btn = gr.Button(T("arena.leaderboard.refresh"), scale=1)
        leaderboard_md = gr.Markdown(label=T("arena.leaderboard.notes"))
        # English headers until the tab opens: opening it draws the table again in the browser's language.
        leaderboard_table = gr.Dataframe(headers=list(leaderboard_headers("en").values()), interactive=False,
                                         label=T("arena.leaderboard"))
        rating_plot = gr.Plot(label=T("arena.ratings.label"))
        with gr.Row():
            win_rate_plot = gr.Plot(label=T("arena.win_rates.label"))
            counts_plot = gr.Plot(label=T("arena.battle_counts.label"))

    def on_leaderboard(base_model: str | None, request: gr.Request = None):
        lang = lang_of(request)
        try:
            return _leaderboard_outputs(workbench, base_model, lang, viewer_of(workbench, request))
        except ValueError as exc:
            raise gr.Error(text("arena.error.leaderboard", lang, error=say(exc, lang))) from None

    outputs = [leaderboard_table, rating_plot, win_rate_plot, counts_plot, leaderboard_md, base_model_dropdown]
    leaderboard_btn.click(on_leaderboard, base_model_dropdown, outputs, api_name="leaderboard")
    base_model_dropdown.input(on_leaderboard, base_model_dropdown, outputs, api_visibility="private")
    return on_leaderboard, [base_model_dropdown], outputs


def _build_export(workbench: Workbench, data: DataTab) -> None:
    """Export votes as preference JSONL (download + a copy kept for training) and select it in the Data tab."""
    with gr.Accordion(T("arena.export"), open=False):
        gr.Markdown(T("arena.export.help"))
        with gr.Row():
            export_btn = gr.Button(T("arena.export.button"))
            use_btn = gr.Button(T("arena.use.button"))
        export_md = gr.Markdown(label=T("arena.export.summary.label"))
        export_file = gr.File(label=T("arena.export.file.label"), interactive=False)
        export_state = gr.State("")

    def on_export(request: gr.Request = None):
        lang = lang_of(request)
        try:
            viewer = viewer_of(workbench, request)
            votes = list(reversed(workbench.votes.list(viewer=viewer)))  # oldest first; a student's own
            summary = export_preferences(votes, workbench.new_export("votes", ".jsonl"))
            copy = str(workbench.save_upload(summary.path, viewer))  # where training data is kept
        except (ValueError, OSError) as exc:
            raise gr.Error(text("arena.error.export", lang, error=say(exc, lang))) from None
        return str(summary.path), _export_md(summary, copy, lang), copy

    def on_use(copy: str, request: gr.Request = None):
        if not copy:
            raise gr.Error(text("arena.error.nothing_exported", lang_of(request)))
        return copy

    export_btn.click(on_export, None, [export_file, export_md, export_state], api_name="export_votes")
    use_btn.click(on_use, export_state, data.data_path_box, api_name="use_votes_for_training").success(
        data.on_show, inputs_kwargs=data.show_inputs, outputs=data.outputs, api_visibility="private")
