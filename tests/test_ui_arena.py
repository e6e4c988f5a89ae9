"""Compare (N sides, prompt sheet) and Arena (blind battles, votes, leaderboard, export) through gradio_client.

The shared app (conftest.py's `app`), a vote store of this module's own, and one tiny LoRA run.
The base model, the run and the base with few-shot examples answer side by side; blind battles between the base
and the run never show their names before the vote; three votes become a leaderboard and preference pairs that
the data reader (and the Data tab) accept; a sheet of two prompts, one Korean, comes back as a table and a CSV.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pandas as pd
import pytest
from appdriver import APP_TESTS, CALL_TIMEOUT_S, _call, _figure, _poll_until_finished, _text, _tiny_run_form
from gradio_client import handle_file
from gradio_client.exceptions import AppError

pytestmark = APP_TESTS

RUN_NAME = "arena-tiny"
TRAIN_TIMEOUT_S = 300
PROMPT = "Triage this customer message.\n\nI was charged twice for my order #1234."
BATTLE_PROMPTS = ("Triage this customer message.\n\nMy parcel arrived damaged and the box was wet.",
                  "Triage this customer message.\n\nThe app logs me out every time I open the cart.",
                  "Triage this customer message.\n\nCan I change the delivery address after I paid?")
KOREAN_PROMPT = "다음 문장을 존댓말로 바꿔 주세요: 나 내일 휴가야."
HANGUL = re.compile(r"[가-힣]")


@pytest.fixture(scope="module", autouse=True)
def own_votes(app, tmp_path_factory):
    """A vote store of this module's own (real SQLite) in the shared app, so the leaderboard counts only the
    battles fought here; the app's own store is put back after."""
    from workbench.arena.votes import VoteStore

    shared, app.workbench.votes = app.workbench.votes, VoteStore(tmp_path_factory.mktemp("votes") / "votes.sqlite")
    yield app.workbench.votes
    app.workbench.votes = shared


@pytest.fixture(scope="module")
def run_id(app, tiny_config) -> str:
    """One tiny LoRA run: 3 steps, no forgetting probe, no test-split scoring."""
    config = tiny_config(**{"name": RUN_NAME, "train.eval_every": 0, "data.val_size": 4, "data.test_size": 4})
    record = app.workbench.jobs.submit(config)
    snapshot = app.workbench.jobs.wait(record.run_id, timeout=TRAIN_TIMEOUT_S)
    assert snapshot.status == "completed", snapshot
    return record.run_id


def _payload(outputs: Any) -> str:
    return json.dumps(outputs, ensure_ascii=False, default=str)


def _arena_tab(workbench: Any) -> Any:
    """The Arena tab built over `workbench` (with the Data and Train tabs it reads from), as build_app builds it."""
    import gradio as gr

    from workbench.ui.arena_tab import build_arena_tab
    from workbench.ui.data_tab import build_data_tab
    from workbench.ui.train_tab import build_train_tab

    with gr.Blocks():
        data = build_data_tab(workbench)
        return build_arena_tab(workbench, data, build_train_tab(workbench, data))


def test_arena_picks_the_newest_trained_run_and_the_base_as_candidates(app, run_id, tmp_path):
    from workbench.app import Workbench

    newest = app.workbench.run_choices(trained=True)[0][1]  # this module's run, unless another one trained since
    arena = _arena_tab(app.workbench)
    assert arena.candidates_dropdown.value == ["base", newest]  # built after the run: picked from the start
    update, picked = arena.on_page_load()  # a page opened later lists the runs trained since and picks the newest
    assert update["value"] == picked == ["base", newest]
    assert run_id in [value for _label, value in update["choices"]]
    # A page opened before the run trained: opening the tab picks the newest run while the candidates are still the
    # page's own pick (an older run, or only untrained ones); a choice of the student's own stays as it is.
    assert arena.on_open(["base", "few-shot"], ["base", "few-shot"])[0]["value"] == ["base", newest]
    assert arena.on_open(["base", "older-run"], ["base", "older-run"])[0]["value"] == ["base", newest]
    mine = arena.on_open(["base", run_id, "few-shot"], ["base", "older-run"])
    assert "value" not in mine[0] and mine[1] == ["base", "older-run"]

    empty = Workbench(tmp_path / "home")  # no trained run yet: the base and the base with few-shot examples
    try:
        assert _arena_tab(empty).on_page_load()[0]["value"] == ["base", "few-shot"]
    finally:
        empty.close()


def test_compare_base_run_and_few_shot_stream_side_by_side(app, run_id):
    from workbench.generate.engine import Side
    from workbench.generate.sampling import SamplingConfig

    job = app.client.submit(PROMPT, side_2=run_id, side_3="few-shot", side_4="off", shots=3, temperature=0.0,
                            max_new_tokens=8, seed=0, prompt_price=0.5, output_price=1.5, api_name="/compare")
    prompt, *panes = job.result(timeout=CALL_TIMEOUT_S)
    assert len(job.outputs()) >= 2, "the answers should stream in, not arrive at once"
    assert prompt == ""
    chats, stats = panes[:4], panes[4:]
    for chat, line in zip(chats[:3], stats[:3]):
        assert [m["role"] for m in chat] == ["user", "assistant"]
        assert _text(chat[0]) == PROMPT and _text(chat[1]).strip()
        new_tokens = int(re.match(r"\s*(\d+) tokens", line).group(1))
        assert 1 <= new_tokens <= 8
        assert "first token" in line and "tok/s" in line and "cost" in line
    assert chats[3] == [] and stats[3] == ""  # side 4 is off
    few_shot_prompt = int(re.search(r"prompt (\d+) tokens", stats[2]).group(1))
    assert few_shot_prompt > int(re.search(r"prompt (\d+) tokens", stats[0]).group(1))  # 3 examples in its prompt

    greedy = SamplingConfig(temperature=0.0, top_p=0.9, max_new_tokens=8, seed=0)
    alone = app.workbench.engine("embedded").answer(Side("base"), [{"role": "user", "content": PROMPT}], greedy)
    assert _text(chats[0][1]) == alone.text  # batched beside other sides, the base answers as it does alone

    # The next turn keeps each pane's own history; Clear empties all four.
    _prompt, *panes = _call(app, "/compare", "And its priority?", side_2=run_id, side_3="off", max_new_tokens=8)
    assert [m["role"] for m in panes[0]] == ["user", "assistant"] * 2 and panes[2] == []
    assert _call(app, "/clear_compare") == ([], [], [], [], "", "", "", "")
    with pytest.raises(AppError, match="Side 2"):
        _call(app, "/compare", PROMPT, side_2="20000101-000000-lora-abcdef", max_new_tokens=8)


def test_blind_battles_hide_the_names_until_the_vote(app, run_id):
    assert app.workbench.votes.count() == 0
    with pytest.raises(AppError, match="no battle"):
        _call(app, "/vote_a")
    # A vote while the answers are still streaming is refused (and this battle is left without a vote).
    job = app.client.submit(BATTLE_PROMPTS[0], candidates=["base", run_id], max_new_tokens=24,
                            api_name="/new_battle")
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(AppError, match="wait until both"):
        _call(app, "/vote_tie")
    job.result(timeout=CALL_TIMEOUT_S)

    run_label = f"{RUN_NAME} · {run_id.rsplit('-', 1)[-1]}"
    revealed = []
    for prompt, vote in zip(BATTLE_PROMPTS, ("/vote_a", "/vote_b", "/vote_tie")):
        job = app.client.submit(prompt, candidates=["base", run_id], temperature=0.0, max_new_tokens=8,
                                api_name="/new_battle")
        a_chat, b_chat, status = job.result(timeout=CALL_TIMEOUT_S)
        seen = _payload([*job.outputs(), (a_chat, b_chat, status)])
        for secret in (run_id, RUN_NAME, run_id.rsplit("-", 1)[-1]):
            assert secret not in seen
        assert not re.search(r"\bbase\b", seen, re.IGNORECASE), seen
        assert _text(a_chat[1]).strip() and _text(b_chat[1]).strip()
        reveal = _call(app, vote)
        names = re.search(r"Model A was \*\*(.+?)\*\* · Model B was \*\*(.+?)\*\*", reveal)
        assert names and {names.group(1), names.group(2)} == {"base", run_label}, reveal
        revealed.append(names.groups())
        with pytest.raises(AppError, match="already has your vote"):
            _call(app, vote)
    assert app.workbench.votes.count() == 3
    votes = list(reversed(app.workbench.votes.list()))
    assert [(v.left_model, v.right_model) for v in votes] == revealed
    assert [v.choice for v in votes] == ["left", "right", "tie"]
    assert [v.prompt for v in votes] == list(BATTLE_PROMPTS)
    assert len({v.session for v in votes}) == 1 and votes[0].session
    assert votes[0].sampling["max_new_tokens"] == 8 and votes[0].base_model == "embedded"
    app.state["run_label"] = run_label


def test_leaderboard_and_votes_exported_as_preference_data(app, run_id, tmp_path):
    from workbench.data.examples import read_examples

    run_label = app.state.get("run_label")
    if run_label is None:
        pytest.skip("needs the votes of the battle test")
    table, rating, win_rate, counts, note, base_models = _call(app, "/leaderboard")
    assert base_models["value"] == "embedded" and base_models["choices"] == [["embedded (3 votes)", "embedded"]]
    rows = {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}
    assert set(rows) == {"base", run_label}
    # Words on screen, not the rating code's keys; the help above the table names the columns it explains.
    assert table["headers"] == ["model", "Bradley-Terry", "BT 95% low", "BT 95% high", "Elo", "battles", "wins",
                                "losses", "ties", "both bad"]
    for header in ("Bradley-Terry", "BT 95% low", "BT 95% high", "Elo", "both bad"):
        assert f"**{header}**" in note, note
    assert not re.search(r"\bbt\b|bt_low|bt_high|both_bad", note), note
    assert all(row["battles"] == 3 and row["ties"] == 1 for row in rows.values())
    assert sum(row["wins"] for row in rows.values()) == 2
    for figure in (rating, win_rate, counts):
        _figure(figure)
    assert "3 votes" in note and "embedded" in note
    assert _call(app, "/leaderboard", "Qwen/other")[5]["value"] == "embedded"  # unknown base: the latest one

    exported, summary, *_ = _call(app, "/export_votes")
    report = read_examples(exported, kind="preference")
    assert report.good == 2 and report.bad == 0
    assert re.search(r"2 pairs written.*1 tie\b", summary), summary
    copy = _call(app, "/use_votes_for_training")
    assert copy.startswith(str(app.home / "uploads")) and read_examples(copy, kind="preference").good == 2

    # The Data tab shows a preference file (summary and both answers) instead of rejecting it.
    path, report_text, _problems, _histogram, *previews = _call(app, "/check_data", "en_ticket_triage",
                                                                handle_file(copy), 0.0, 0.0, 0)
    assert path.startswith(str(app.home / "uploads")), report_text
    assert "good: 2" in report_text and "Preference pairs" in report_text
    assert "chosen:" in previews[0]["data"][0][3] and "rejected:" in previews[0]["data"][0][3]


def test_prompt_sheet_answers_every_prompt_with_every_side(app, run_id):
    table, csv_path = _call(app, "/answer_sheet", f"{PROMPT.splitlines()[0]}\n{KOREAN_PROMPT}\n", None,
                            side_2=run_id, side_3="off", side_4="off", max_new_tokens=8, temperature=0.0)
    frame = pd.DataFrame(table["data"], columns=table["headers"])
    assert len(frame) == 4 and set(frame["#"]) == {1, 2}
    assert set(frame["side"]) == {"base", app.state.get("run_label", f"{RUN_NAME} · {run_id.rsplit('-', 1)[-1]}")}
    assert (frame["new_tokens"] >= 1).all() and (frame["seconds"] > 0).all()
    saved = pd.read_csv(csv_path, encoding="utf-8-sig")
    assert len(saved) == 4
    assert KOREAN_PROMPT in set(saved["prompt"]) and HANGUL.search(str(saved["prompt"].tolist()))

    with pytest.raises(AppError, match="empty"):
        _call(app, "/answer_sheet", "  \n ", None)


def test_votes_train_dpo_and_the_dpo_run_joins_the_compare(app, run_id):
    """The whole loop through the client: votes → export → Use for training → DPO on the run's adapter → compare."""
    if app.state.get("run_label") is None:
        pytest.skip("needs the votes of the battle test")
    _call(app, "/export_votes")
    copy = _call(app, "/use_votes_for_training")
    form = _tiny_run_form(app, **{"Data used for training": copy, "Objective": "dpo", "Max steps": 2,
                                  "Eval every": 0, "Validation share": 0.0, "Test share": 0.0,
                                  "Continue from adapter (run id or folder)": run_id, "Run name": "dpo-from-votes"})
    dpo_run = _call(app, "/start_run", **form)["value"]
    html, plot = _poll_until_finished(app, dpo_run)
    assert "<b>completed</b>" in html and "step 2 / 2" in html, html
    record = app.workbench.store.get_run(dpo_run)
    assert record.status == "completed" and record.steps == 2
    metrics = app.workbench.store.read_metrics(dpo_run)
    assert any("reward_accuracy" in row for row in metrics), metrics[-3:]

    _prompt, *panes = _call(app, "/compare", BATTLE_PROMPTS[0], side_2=run_id, side_3=dpo_run, side_4="off",
                            max_new_tokens=8, temperature=0.0)
    for chat in panes[:3]:
        assert [m["role"] for m in chat] == ["user", "assistant"] and _text(chat[1]).strip()
    assert "tok/s" in panes[6]  # the DPO run answers with its numbers, like any side

    # SFT on preference pairs is refused before anything is queued, and the message says what to do.
    with pytest.raises(AppError, match="preference pairs.*set the objective to DPO"):
        _call(app, "/start_run", **_tiny_run_form(app, **{"Data used for training": copy}))
