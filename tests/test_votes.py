"""Votes in a real SQLite file, the preference export read back by the real data reader, and the blind pair."""

from __future__ import annotations

import json
import random
import threading

import pytest

from workbench.arena.votes import BlindPair, Vote, VoteStore, blind_order, export_preferences
from workbench.data.examples import read_examples

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "seed": 0}


def make_vote(choice: str = "left", prompt: str = "Name a colour.", **fields) -> Vote:
    values = {"prompt": prompt, "history": [{"role": "user", "content": prompt}], "left_model": "base",
              "right_model": "run-1", "left_answer": "Blue.", "right_answer": "Colour is a word.", "choice": choice,
              "sampling": SAMPLING, "session": "s1"}
    return Vote(**{**values, **fields})


def test_add_list_count_battles_delete(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    first = store.add(make_vote("left", created_at=100.0))
    second = store.add(make_vote("tie", left_model="run-1", right_model="base", created_at=200.0))
    store.add(make_vote("both_bad", left_model="run-2", right_model="base + 3-shot", created_at=300.0))
    assert first.id is not None and store.count() == 3
    listed = store.list()
    assert [v.choice for v in listed] == ["both_bad", "tie", "left"]  # newest first
    assert listed[2] == first and listed[2].sampling == SAMPLING and listed[2].history == first.history
    assert [v.choice for v in store.list(limit=1)] == ["both_bad"]
    assert [v.choice for v in store.list(models=["run-1"])] == ["tie", "left"]
    assert store.battles() == [("base", "run-1", "left"), ("run-1", "base", "tie"),
                               ("run-2", "base + 3-shot", "both_bad")]  # oldest first
    store.delete(second.id)
    assert store.count() == 2 and VoteStore(tmp_path / "votes.sqlite").count() == 2  # on disk, not in memory
    with pytest.raises(ValueError, match=f"no vote with id {second.id}"):
        store.delete(second.id)
    assert store.integrity_ok()


def test_winner_and_loser():
    assert (make_vote("left").winner, make_vote("left").loser) == ("base", "run-1")
    assert (make_vote("right").winner, make_vote("right").loser) == ("run-1", "base")
    assert make_vote("tie").winner is None and make_vote("both_bad").loser is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"choice": "draw"}, "'draw'; choose one of: left, right, tie, both_bad"),
    ({"right_model": "base"}, "both 'base'"),
    ({"prompt": "  ", "history": []}, "'prompt' is empty"),
    ({"left_model": " "}, "'left_model' is empty"),
    ({"right_answer": None}, "'right_answer' is NoneType"),
    ({"history": [{"role": "robot", "content": "hi"}]}, "'history\\[0\\]' has role 'robot'"),
    ({"history": [{"role": "user", "content": "other"}]}, "turn 1 is 'user' where 'assistant'"),
    ({"sampling": {"seed": object()}}, "'sampling' cannot be saved as JSON"),
])
def test_bad_votes_are_refused_with_the_field_named(tmp_path, fields, message):
    store = VoteStore(tmp_path / "votes.sqlite")
    with pytest.raises(ValueError, match=message):
        store.add(make_vote(**fields))
    assert store.count() == 0


def test_two_stores_on_one_file_from_two_threads(tmp_path):
    path = tmp_path / "votes.sqlite"
    stores, errors = [VoteStore(path), VoteStore(path)], []

    def add_many(store: VoteStore, worker: int) -> None:
        try:
            for i in range(50):
                store.add(make_vote(prompt=f"question {worker}-{i}"))
        except Exception as err:  # surfaced by the assert below; a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=add_many, args=(store, n)) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].count() == 100 and len({v.id for v in stores[1].list()}) == 100
    assert stores[1].integrity_ok()


def test_export_writes_pairs_the_data_reader_accepts(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Capital of Korea?"}]
    votes = [
        make_vote("left", prompt="한국의 수도는?", left_answer="서울입니다.", right_answer="부산입니다."),
        make_vote("right", prompt="Capital of Korea?", history=history, left_answer="Busan.",
                  right_answer="Seoul."),
        make_vote("right", prompt="Two plus two?", history=[], left_answer="5", right_answer="4"),
        make_vote("tie"), make_vote("both_bad"), make_vote("both_bad"),
    ]
    saved = [store.add(vote) for vote in votes]
    summary = export_preferences(store.list()[::-1], tmp_path / "prefs.jsonl")
    assert (summary.written, summary.ties, summary.both_bad, summary.identical) == (3, 1, 2, 0)
    text = (tmp_path / "prefs.jsonl").read_text(encoding="utf-8")
    assert "서울입니다." in text  # ensure_ascii=False: Korean is written as itself, not \uXXXX escapes
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows[0] == {"prompt": "한국의 수도는?", "chosen": "서울입니다.", "rejected": "부산입니다.",
                       "chosen_model": "base", "rejected_model": "run-1", "vote_id": saved[0].id}
    assert rows[1]["prompt"] == history and (rows[1]["chosen"], rows[1]["rejected"]) == ("Seoul.", "Busan.")
    assert (rows[1]["chosen_model"], rows[1]["rejected_model"]) == ("run-1", "base")
    assert rows[2]["prompt"] == "Two plus two?"  # no history: the prompt is the only user turn
    report = read_examples(summary.path, kind="preference")
    assert (report.good, report.bad) == (3, 0)
    assert report.examples[0].chosen == "서울입니다." and report.examples[1].messages[0]["role"] == "system"


def test_empty_answers_can_be_voted_and_are_left_out_of_the_export(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    store.add(make_vote("both_bad", left_answer="", right_answer="  "))  # both said nothing: a fair verdict
    store.add(make_vote("left", right_answer=""))  # an answer beats silence, but there is no text to reject
    store.add(make_vote("right"))
    assert store.count() == 3
    summary = export_preferences(store.list()[::-1], tmp_path / "prefs.jsonl")
    assert (summary.written, summary.both_bad, summary.empty) == (1, 1, 1)
    assert read_examples(summary.path, kind="preference").good == 1
    with pytest.raises(ValueError, match="1 left/right with an empty answer"):
        export_preferences([make_vote("left", left_answer="")], tmp_path / "none.jsonl")


def test_battles_and_base_models_keep_the_votes_of_each_base_model_apart(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    store.add(make_vote("left", base_model="embedded", created_at=100.0))
    store.add(make_vote("right", base_model="Qwen/Qwen2.5-0.5B-Instruct", created_at=200.0))
    store.add(make_vote("tie", base_model="embedded", created_at=300.0))
    assert store.base_models() == [("embedded", 2), ("Qwen/Qwen2.5-0.5B-Instruct", 1)]  # most recent first
    assert store.battles("embedded") == [("base", "run-1", "left"), ("base", "run-1", "tie")]
    assert store.battles("Qwen/Qwen2.5-0.5B-Instruct") == [("base", "run-1", "right")]
    assert len(store.battles()) == 3 and store.battles("nobody") == []


def test_export_with_no_left_or_right_votes_explains_why(tmp_path):
    votes = [make_vote("tie"), make_vote("both_bad"), make_vote("left", right_answer="Blue. ")]
    with pytest.raises(ValueError, match="1 ties, 1 both bad, 1 left/right with identical answers.*only left/right"):
        export_preferences(votes, tmp_path / "prefs.jsonl")
    assert not (tmp_path / "prefs.jsonl").exists()


def test_blind_pair_hides_the_labels_until_the_vote():
    rng = random.Random(0)
    orders = {blind_order(("base", "run-20260101"), rng) for _ in range(50)}
    assert orders == {("base", "run-20260101"), ("run-20260101", "base")}  # both orders happen
    pair = BlindPair.draw(("base", "run-20260101"), random.Random(1))
    shown = " ".join([*pair.public(), repr(pair), str(pair), f"{pair}"])
    assert pair.public() == ("Model A", "Model B")
    assert "base" not in shown and "run-20260101" not in shown
    assert set(pair.reveal()) == {"base", "run-20260101"}
    assert pair.battle("left") == (*pair.reveal(), "left")
    with pytest.raises(ValueError, match="two different model labels"):
        blind_order(("base", "base"), rng)


def test_in_classroom_mode_a_student_sees_and_deletes_only_their_own_votes_and_the_teacher_pools_them(tmp_path):
    import sqlite3

    from workbench.classroom.access import Viewer
    from workbench.i18n import say

    path = tmp_path / "votes.sqlite"
    with sqlite3.connect(path) as db:  # a file from before classroom mode: its votes are the teacher's
        db.execute("CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, prompt TEXT "
                   "NOT NULL, history TEXT NOT NULL, left_model TEXT NOT NULL, right_model TEXT NOT NULL, left_answer "
                   "TEXT NOT NULL, right_answer TEXT NOT NULL, choice TEXT NOT NULL, sampling TEXT NOT NULL, session "
                   "TEXT NOT NULL DEFAULT '', base_model TEXT NOT NULL DEFAULT '')")
    store = VoteStore(path)
    teacher, lee, park = Viewer("kim", teacher=True), Viewer("lee"), Viewer("park")
    old = store.add(make_vote())
    lees = store.add(make_vote("right", owner="lee"))
    parks = store.add(make_vote("tie", owner="park"))
    assert [v.id for v in store.list(viewer=lee)] == [lees.id] and store.count(viewer=park) == 1
    assert store.battles(viewer=lee) == [("base", "run-1", "right")]
    assert store.count(viewer=teacher) == 3 == store.count() and len(store.battles(viewer=teacher)) == 3
    assert store.base_models(viewer=park) == [("embedded", 1)]
    for other in (old.id, parks.id, 9999):
        with pytest.raises(ValueError) as info:
            store.delete(other, viewer=lee)
        assert "no vote of yours" in say(info.value, "en")
    store.delete(lees.id, viewer=lee)
    store.delete(parks.id, viewer=teacher)
    assert [v.id for v in store.list()] == [old.id]
