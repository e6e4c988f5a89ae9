"""Arena tab: blind A/B battles between two randomly drawn models, a leaderboard, and votes → preference data.

Before the vote the browser only ever sees "Model A" and "Model B": the real labels stay in a gr.State (kept on
the server), and the numbers that could give a side away (prompt tokens betray few-shot) are shown only after it.
"""

from __future__ import annotations

import random
import time
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
from workbench.ui.data_tab import DataTab
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

INTRO = ("**Blind test.** Pick the candidates, type a prompt and press *New battle*: two of them are drawn at random "
         "and answer as *Model A* and *Model B*. Vote for the better answer; only then are the names shown. Votes "
         "build the leaderboard and can be exported as preference data (prompt, chosen, rejected) for DPO.")
CANDIDATES_HELP = ("Two or more models to draw from; each battle draws two at random and shuffles their sides. "
                   "The newest trained run and the base model are picked to start with.")
# The leaderboard's columns: ratings.leaderboard's keys → the words on screen (the help below uses the same words).
LEADERBOARD_HEADERS = {"model": "model", "bt": "Bradley-Terry", "bt_low": "BT 95% low", "bt_high": "BT 95% high",
                       "elo": "Elo", "battles": "battles", "wins": "wins", "losses": "losses", "ties": "ties",
                       "both_bad": "both bad"}
LEADERBOARD_COLUMNS = list(LEADERBOARD_HEADERS.values())
LEADERBOARD_HELP = ("**{bt}**: a rating from all votes (mean 1000; +100 ≈ wins 64 % of the time), with its 95 % "
                    "bootstrap interval from **{bt_low}** to **{bt_high}**. **{elo}**: online Elo rating (depends on "
                    "the vote order). **{ties}** and **{both_bad}** votes count as half a win for each side."
                    ).format(**LEADERBOARD_HEADERS)
ROUNDED = ("bt", "bt_low", "bt_high", "elo")  # ratings shown as whole points
BASE_MODEL_HELP = ("Votes count per base model: 'base' and a run's adapter mean other models on another base. Shows "
                   "the most recently voted one unless you pick another.")
VOTES = {"A better": "left", "B better": "right", "Tie": "tie", "Both bad": "both_bad"}
VOTE_API = {"left": "vote_a", "right": "vote_b", "tie": "vote_tie", "both_bad": "vote_both_bad"}
VOTED = {"left": "A is better", "right": "B is better", "tie": "a tie", "both_bad": "both bad"}


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _export_md(summary: ExportSummary, copy: str) -> str:
    left_out = f"{_plural(summary.ties, 'tie')} and {summary.both_bad} both-bad left out"
    if summary.identical:
        left_out += f", and {summary.identical} with two identical answers"
    if summary.empty:
        left_out += f", and {summary.empty} with an empty answer"
    return (f"**{_plural(summary.written, 'pair')} written**; {left_out}.  \nA copy for training: `{copy}` — press "
            "*Use for training* to select it in the Data tab.")


def default_candidates(choices: list[tuple[str, str]]) -> list[str]:
    """What the Candidates list (candidate_choices) starts with: the base model and the newest trained run, the
    battle a student trained for; with no trained run yet, the base model and the base with few-shot examples."""
    runs = [value for _label, value in choices if value not in (BASE, FEW_SHOT)]  # newest first
    return [BASE, runs[0]] if runs else [BASE, FEW_SHOT]


def _leaderboard_outputs(workbench: Workbench, base_model: str | None) -> tuple:
    """The leaderboard of one base model's votes (the most recently voted one when none is chosen)."""
    voted = workbench.votes.base_models()
    names = [name for name, _count in voted]
    base_model = base_model if base_model in names else (names[0] if names else "")
    battles = workbench.votes.battles(base_model)
    rows = leaderboard(battles)
    labels = [row["model"] for row in rows]
    table = pd.DataFrame(rows, columns=list(LEADERBOARD_HEADERS)).round(dict.fromkeys(ROUNDED, 0))
    table = table.rename(columns=LEADERBOARD_HEADERS)
    where = f" on base model **{base_model}**" if base_model else ""
    note = f"{_plural(len(battles), 'vote')} between {_plural(len(labels), 'model')}{where}.  \n{LEADERBOARD_HELP}"
    choices = [(f"{name} ({_plural(count, 'vote')})", name) for name, count in voted]
    return (table, make_rating_figure(rows), make_win_rate_heatmap(*win_rate_matrix(battles, labels)),
            make_battle_count_heatmap(*battle_counts(battles, labels)), note,
            gr.update(choices=choices, value=base_model or None))


def _vote_handler(workbench: Workbench, choice: str) -> Callable:
    def on_vote(battle: Battle | None, session: str):
        if battle is None:
            raise gr.Error("Vote: no battle yet; type a prompt and press New battle")
        if not battle.done:
            raise gr.Error("Vote: wait until both Model A and Model B have finished answering, then vote")
        if battle.vote_id is not None:
            raise gr.Error(f"Vote: this battle already has your vote (#{battle.vote_id}); press New battle for the "
                           "next one")
        session = session or uuid.uuid4().hex
        (left, right), user = battle.pair.reveal(), {"role": "user", "content": battle.prompt}
        try:
            saved = workbench.votes.add(Vote(
                prompt=battle.prompt, left_model=left, right_model=right, left_answer=battle.answers[0],
                right_answer=battle.answers[1], choice=choice, history=[user], sampling=battle.sampling,
                session=session, base_model=battle.base_model))
        except ValueError as exc:
            raise gr.Error(f"Vote not saved: {exc}") from None
        reveal = (f"You voted **{VOTED[choice]}**. Model A was **{left}** · Model B was **{right}**. Saved as vote "
                  f"#{saved.id} ({_plural(workbench.votes.count(), 'vote')} in all).  \n"
                  f"A: {battle.stats[0]}  \nB: {battle.stats[1]}")
        return reveal, replace(battle, vote_id=saved.id), session
    return on_vote


def build_arena_tab(workbench: Workbench, data: DataTab, train: TrainTab) -> ArenaTab:
    """Battles and votes, then the leaderboard and the export; returns the leaderboard refresh (for tab select) and
    the page-load handler that picks the newest trained run among the candidates."""
    gr.Markdown(INTRO)
    candidates_dropdown, votes_cast = _build_battles(workbench, data, train)
    on_leaderboard, leaderboard_inputs, leaderboard_outputs = _build_leaderboard(workbench)
    for vote_cast in votes_cast:  # after a vote the leaderboard shows it
        vote_cast.success(on_leaderboard, leaderboard_inputs, leaderboard_outputs, api_visibility="private")
    _build_export(workbench, data)

    picked_state = gr.State(None)  # the candidates the page picked by itself, until the student picks others

    def on_page_load():  # runs trained since the app started (or in another window) are listed and the newest picked
        choices = candidate_choices(workbench)  # the store is read once
        picked = default_candidates(choices)
        return gr.update(choices=choices, value=picked), picked

    def on_open(current: list[str] | None, picked: list[str] | None):
        """The tab opened: runs trained since are listed. While the candidates are the ones the page picked by
        itself (or only untrained ones), they follow the newest run; the student's own choice stays."""
        untouched = sorted(current or []) == sorted(picked or []) or set(current or []) <= {BASE, FEW_SHOT}
        if untouched:
            return on_page_load()
        return gr.update(choices=candidate_choices(workbench)), picked

    return ArenaTab(on_leaderboard, leaderboard_inputs, leaderboard_outputs, candidates_dropdown, picked_state,
                    on_page_load, on_open)


def _build_battles(workbench: Workbench, data: DataTab, train: TrainTab) -> tuple[gr.Dropdown, list[Any]]:
    """Candidates, settings, the two blind panes, New battle and the vote buttons; returns the candidates list and
    the vote events."""
    choices = candidate_choices(workbench)
    with gr.Row():
        candidates_dropdown = gr.Dropdown(choices, value=default_candidates(choices),
                                          multiselect=True, label="Candidates", info=CANDIDATES_HELP,
                                          allow_custom_value=True, scale=4)
        refresh_btn = gr.Button("↻ Refresh runs", scale=1)
    few_shot = build_few_shot_knobs(data)
    sampling = build_sampling_knobs(data)
    with gr.Row(equal_height=True):
        a_chatbot = gr.Chatbot(label="Model A", height=360)
        b_chatbot = gr.Chatbot(label="Model B", height=360)
    prompt_box = gr.Textbox(label="Prompt", lines=3, placeholder="Ask both models the same thing…")
    battle_btn = gr.Button("New battle", variant="primary")
    with gr.Row():
        vote_btns = {choice: gr.Button(text) for text, choice in VOTES.items()}
    reveal_md = gr.Markdown(label="Battle status")
    battle_state, session_state = gr.State(None), gr.State("")

    def on_battle(prompt, candidates, shots, shots_path, temperature, top_p, max_new_tokens, seed, base_model):
        if not prompt or not prompt.strip():
            raise gr.Error("Prompt: empty; type the question both models will answer")
        picks = list(dict.fromkeys(candidates or []))
        if len(picks) < 2:
            raise gr.Error(f"Candidates: {len(picks)} chosen; pick two or more models to draw a battle from")
        try:  # every candidate is checked (and loaded) before the draw, so an error never hints at the pair
            settings = make_sampling(temperature, top_p, max_new_tokens, seed)
            lineup = make_lineup(workbench, picks, ["Candidates"] * len(picks), shots, shots_path, seed,
                                 base_model, exclude=prompt)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        sides = {side.label: side for side in lineup.sides}
        battle = Battle(_draw(list(sides), random.SystemRandom()), prompt, asdict(settings), lineup.model)
        yield _chat(prompt, ""), _chat(prompt, ""), "Model A and Model B are answering…", battle
        histories = [[{"role": "user", "content": prompt}]] * 2
        try:
            for states in lineup.engine.stream([sides[label] for label in battle.pair.reveal()], histories,
                                               settings):
                battle = replace(battle, answers=(states[0].text, states[1].text),
                                 stats=(states[0].stats_line(), states[1].stats_line()))
                yield _chat(prompt, states[0].text), _chat(prompt, states[1].text), gr.skip(), battle
        except (RuntimeError, ValueError, OSError) as exc:
            raise gr.Error(f"Generation failed: {exc}") from None
        chats = [_chat(prompt, answer) for answer in battle.answers]
        yield *chats, "Both answered: which is better? Vote below.", replace(battle, done=True)

    battle_outputs = [a_chatbot, b_chatbot, reveal_md, battle_state]
    battle_inputs = {"prompt": prompt_box, "candidates": candidates_dropdown, **few_shot.inputs, **sampling.inputs,
                     "base_model": train.model_box}
    battle_btn.click(on_battle, inputs_kwargs=battle_inputs, outputs=battle_outputs, api_name="new_battle")
    prompt_box.submit(on_battle, inputs_kwargs=battle_inputs, outputs=battle_outputs, api_visibility="private")
    votes_cast = [button.click(_vote_handler(workbench, choice), [battle_state, session_state],
                               [reveal_md, battle_state, session_state], api_name=VOTE_API[choice])
                  for choice, button in vote_btns.items()]
    refresh_btn.click(lambda: gr.update(choices=candidate_choices(workbench)), None, candidates_dropdown,
                      api_name="list_candidates")
    candidates_dropdown.focus(lambda: gr.update(choices=candidate_choices(workbench)), None, candidates_dropdown,
                              api_visibility="private")
    return candidates_dropdown, votes_cast


def _build_leaderboard(workbench: Workbench) -> tuple[Callable, list, list]:
    """The leaderboard accordion; returns its refresh handler with that handler's inputs and outputs."""
    with gr.Accordion("Leaderboard", open=True):
        with gr.Row():
            base_model_dropdown = gr.Dropdown([], value="", label="Base model", allow_custom_value=True, scale=3,
                                              info=BASE_MODEL_HELP)
            leaderboard_btn = gr.Button("↻ Refresh leaderboard", scale=1)
        leaderboard_md = gr.Markdown(label="Leaderboard notes")
        leaderboard_table = gr.Dataframe(headers=LEADERBOARD_COLUMNS, interactive=False, label="Leaderboard")
        rating_plot = gr.Plot(label="Ratings")
        with gr.Row():
            win_rate_plot = gr.Plot(label="Win rates")
            counts_plot = gr.Plot(label="Battles per pair")

    def on_leaderboard(base_model: str | None):
        try:
            return _leaderboard_outputs(workbench, base_model)
        except ValueError as exc:
            raise gr.Error(f"Leaderboard: {exc}") from None

    outputs = [leaderboard_table, rating_plot, win_rate_plot, counts_plot, leaderboard_md, base_model_dropdown]
    leaderboard_btn.click(on_leaderboard, base_model_dropdown, outputs, api_name="leaderboard")
    base_model_dropdown.input(on_leaderboard, base_model_dropdown, outputs, api_visibility="private")
    return on_leaderboard, [base_model_dropdown], outputs


def _build_export(workbench: Workbench, data: DataTab) -> None:
    """Export votes as preference JSONL (download + a copy kept for training) and select it in the Data tab."""
    with gr.Accordion("Votes → preference data (DPO)", open=False):
        gr.Markdown("Every left/right vote becomes a (prompt, chosen, rejected) pair; ties and both-bad votes say "
                    "nothing about which answer is better, so they are left out. *Use for training* selects the "
                    "pairs in the Data tab; train on them with the DPO objective.")
        with gr.Row():
            export_btn = gr.Button("Export votes")
            use_btn = gr.Button("Use for training")
        export_md = gr.Markdown(label="Export summary")
        export_file = gr.File(label="Preference pairs (.jsonl)", interactive=False)
        export_state = gr.State("")

    def on_export():
        try:
            votes = list(reversed(workbench.votes.list()))  # oldest first
            path = workbench.exports / f"votes-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
            summary = export_preferences(votes, path)
            copy = str(workbench.save_upload(summary.path))  # where training data is kept
        except (ValueError, OSError) as exc:
            raise gr.Error(f"Export votes: {exc}") from None
        return str(summary.path), _export_md(summary, copy), copy

    def on_use(copy: str):
        if not copy:
            raise gr.Error("Use for training: nothing exported yet; press Export votes first")
        return copy

    export_btn.click(on_export, None, [export_file, export_md, export_state], api_name="export_votes")
    use_btn.click(on_use, export_state, data.data_path_box, api_name="use_votes_for_training").success(
        data.on_show, inputs_kwargs=data.show_inputs, outputs=data.outputs, api_visibility="private")
