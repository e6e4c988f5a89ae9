"""Blind A/B votes: the arena's record of which answer people preferred, on disk in SQLite.

    <home>/votes.sqlite   one row per vote: prompt, chat history, both answers, both model labels, the choice, and
                          in classroom mode the account that voted (a student sees and exports their own votes; the
                          teacher, the class's pooled)

The two sides are shown as "Model A" / "Model B" in random order (`BlindPair`) until the vote is cast. Votes
become ratings (`workbench.arena.ratings`) and DPO preference data (`export_preferences`, prompt/chosen/rejected JSONL
that `workbench.data.examples.read_examples(path, kind="preference")` reads back).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.classroom.access import SINGLE_USER, Viewer, not_yours
from workbench.fsio import write_atomic
from workbench.paths import workbench_home

VOTE_CHOICES = ("left", "right", "tie", "both_bad")
ROLES = ("system", "user", "assistant")
PUBLIC_NAMES = ("Model A", "Model B")

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, prompt TEXT NOT NULL, history TEXT NOT NULL,
    left_model TEXT NOT NULL, right_model TEXT NOT NULL, left_answer TEXT NOT NULL, right_answer TEXT NOT NULL,
    choice TEXT NOT NULL, sampling TEXT NOT NULL, session TEXT NOT NULL DEFAULT '',
    base_model TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS votes_by_time ON votes (created_at, id);
"""
COLUMNS = ("id", "created_at", "prompt", "history", "left_model", "right_model", "left_answer", "right_answer",
           "choice", "sampling", "session", "base_model", "owner")


@dataclass(kw_only=True)
class Vote:
    """One blind comparison. `history` holds the chat turns before the answers (it may end with `prompt`)."""

    prompt: str
    left_model: str
    right_model: str
    left_answer: str
    right_answer: str
    choice: str
    history: list[dict] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_new_tokens, seed
    session: str = ""
    base_model: str = "embedded"
    owner: str = ""  # the account that voted, in classroom mode
    id: int | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def winner(self) -> str | None:
        """The preferred model label; None for a tie or a both-bad vote."""
        return {"left": self.left_model, "right": self.right_model}.get(self.choice)

    @property
    def loser(self) -> str | None:
        return {"left": self.right_model, "right": self.left_model}.get(self.choice)

    def prompt_messages(self) -> list[dict]:
        """The conversation the two answers reply to: the history, ending with the user's prompt."""
        turns = [{"role": t["role"], "content": t["content"]} for t in self.history]
        if turns and turns[-1]["role"] == "user" and turns[-1]["content"] == self.prompt:
            return turns
        return turns + [{"role": "user", "content": self.prompt}]


def _check_text(value: Any, name: str, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"vote field {name!r} is {type(value).__name__}, expected text")
    if not allow_empty and not value.strip():
        raise ValueError(f"vote field {name!r} is empty; a vote needs a non-empty {name.replace('_', ' ')}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"vote field {name!r} contains an invalid unicode character (a lone surrogate); "
                         "remove it") from None


def _check_turn(index: int, turn: Any) -> None:
    where = f"history[{index}]"
    if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
        raise ValueError(f'vote field {where!r} is {turn!r}; turns look like {{"role": "user", "content": "..."}}')
    if turn["role"] not in ROLES:
        raise ValueError(f"vote field {where!r} has role {turn['role']!r}; use one of: {', '.join(ROLES)}")
    _check_text(turn["content"], where)


def _check_order(turns: list[dict]) -> None:
    """Optional system turn, then user/assistant alternating, ending with the user: what DPO data accepts."""
    start = 1 if turns[0]["role"] == "system" else 0
    for i, turn in enumerate(turns[start:], start):
        expected = ("user", "assistant")[(i - start) % 2]
        if turn["role"] != expected:
            raise ValueError(f"vote field 'history': turn {i} is {turn['role']!r} where {expected!r} was expected; "
                             "after an optional first system turn, turns alternate user, assistant, ... and the "
                             "last one is the user's prompt")
    if turns[-1]["role"] != "user":
        raise ValueError("vote field 'history' ends with an assistant turn after the prompt; drop it or put the "
                         "prompt last")


def validate_vote(vote: Vote) -> None:
    """Raise ValueError naming the first bad field of `vote`."""
    if vote.choice not in VOTE_CHOICES:
        raise ValueError(f"unknown vote choice {vote.choice!r}; choose one of: {', '.join(VOTE_CHOICES)}")
    for name in ("prompt", "left_model", "right_model"):
        _check_text(getattr(vote, name), name)
    for name in ("left_answer", "right_answer"):  # a model may say nothing; "both bad" is then a fair verdict
        _check_text(getattr(vote, name), name, allow_empty=True)
    if vote.left_model == vote.right_model:
        raise ValueError(f"left_model and right_model are both {vote.left_model!r}; a vote compares two "
                         "different models")
    for name in ("session", "base_model", "owner"):
        _check_text(getattr(vote, name), name, allow_empty=True)
    if not isinstance(vote.history, list):
        raise ValueError(f"vote field 'history' is {type(vote.history).__name__}, expected a list of chat turns")
    for i, turn in enumerate(vote.history):
        _check_turn(i, turn)
    _check_order(vote.prompt_messages())
    if not isinstance(vote.sampling, dict):
        raise ValueError(f"vote field 'sampling' is {type(vote.sampling).__name__}, expected a dict such as "
                         "{'temperature': 0.7, 'top_p': 0.9, 'max_new_tokens': 256, 'seed': 0}")


def _row(vote: Vote) -> list[Any]:
    history = [{"role": t["role"], "content": t["content"]} for t in vote.history]
    try:
        sampling = json.dumps(vote.sampling, ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"vote field 'sampling' cannot be saved as JSON ({err}); use numbers and text only") \
            from None
    return [vote.created_at, vote.prompt, json.dumps(history, ensure_ascii=False), vote.left_model,
            vote.right_model, vote.left_answer, vote.right_answer, vote.choice, sampling, vote.session,
            vote.base_model, vote.owner]


def _vote(row: Sequence[Any]) -> Vote:
    values = dict(zip(COLUMNS, row))
    values["history"], values["sampling"] = json.loads(values["history"]), json.loads(values["sampling"])
    return Vote(**values)


class VoteStore:
    """Votes in one SQLite file. Safe to share between threads and processes (WAL, busy timeout, a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._lock, closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file, so once is enough
            db.executescript(SCHEMA)
            if "owner" not in {row[1] for row in db.execute("PRAGMA table_info(votes)")}:  # an older file
                db.execute("ALTER TABLE votes ADD COLUMN owner TEXT NOT NULL DEFAULT ''")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def add(self, vote: Vote) -> Vote:
        """Validate and save a vote; returns it with its new id (the given object is left unchanged)."""
        validate_vote(vote)
        row = _row(vote)
        names = ", ".join(COLUMNS[1:])
        with self._lock, closing(self._connect()) as db, db:
            cursor = db.execute(f"INSERT INTO votes ({names}) VALUES ({', '.join('?' * len(row))})", row)
        return replace(vote, id=cursor.lastrowid, history=json.loads(row[2]))

    def count(self, viewer: Viewer = SINGLE_USER) -> int:
        where, params = _whose(viewer)
        with closing(self._connect()) as db:
            return db.execute(f"SELECT COUNT(*) FROM votes WHERE {where}", params).fetchone()[0]

    def battles(self, base_model: str | None = None, viewer: Viewer = SINGLE_USER) -> list[tuple[str, str, str]]:
        """(left_model, right_model, choice) of every vote the viewer may see, oldest first: the input of
        workbench.arena.ratings (a student's own votes; the teacher's and the single user's, all of them).

        `base_model` keeps the votes of one base model: "base" or a run's adapter on another base model is
        another contestant, so a leaderboard ranks the votes of one base model at a time.
        """
        where, params = _whose(viewer)
        if base_model is not None:
            where, params = where + " AND base_model = ?", [*params, base_model]
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT left_model, right_model, choice FROM votes WHERE {where} "
                              "ORDER BY created_at, id", params).fetchall()
        return [tuple(row) for row in rows]

    def base_models(self, viewer: Viewer = SINGLE_USER) -> list[tuple[str, int]]:
        """(base model, number of votes) for every base model voted on, the most recently voted first."""
        where, params = _whose(viewer)
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT base_model, COUNT(*) FROM votes WHERE {where} GROUP BY base_model "
                              "ORDER BY MAX(created_at) DESC", params).fetchall()
        return [(name, count) for name, count in rows]

    def delete(self, vote_id: int, viewer: Viewer = SINGLE_USER) -> None:
        """Remove one vote (e.g. an accidental click); raises ValueError if there is no such vote (or, for a
        student, if it is not theirs: the same refusal either way)."""
        where, params = _whose(viewer)
        with self._lock, closing(self._connect()) as db, db:
            gone = db.execute(f"DELETE FROM votes WHERE id = ? AND {where}", [vote_id, *params]).rowcount
        if gone == 0:
            if viewer.in_class and not viewer.teacher:
                raise ValueError(not_yours("vote"))
            raise ValueError(f"no vote with id {vote_id!r} in {self.path}; list() shows the ids that exist")

    def integrity_ok(self) -> bool:
        with closing(self._connect()) as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def list(self, limit: int | None = None, models: Iterable[str] | None = None,
             viewer: Viewer = SINGLE_USER) -> list[Vote]:
        """Votes the viewer may see, newest first; `models` keeps those where either side is one of them; `limit`
        caps the count."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        where, params = _whose(viewer)
        sql = f"SELECT {', '.join(COLUMNS)} FROM votes WHERE {where}"
        if models is not None:
            wanted = sorted(set(models))
            marks = ", ".join("?" * len(wanted))
            sql += f" AND (left_model IN ({marks}) OR right_model IN ({marks}))"
            params += wanted * 2
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with closing(self._connect()) as db:
            return [_vote(row) for row in db.execute(sql, params).fetchall()]


def _whose(viewer: Viewer) -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) for the votes a viewer may see: a student's own, else all."""
    if viewer.in_class and not viewer.teacher:
        return "owner = ?", [viewer.user]
    return "1 = 1", []


def default_vote_store() -> VoteStore:
    return VoteStore(workbench_home() / "votes.sqlite")


@dataclass(frozen=True)
class ExportSummary:
    """What export_preferences wrote and what it left out (ties, both-bad, identical answers)."""

    written: int
    ties: int
    both_bad: int
    path: Path
    identical: int = 0  # left/right votes whose two answers were the same text: no pair to learn from
    empty: int = 0  # left/right votes with an empty answer on either side: no text to learn or to reject


def _preference_row(vote: Vote) -> dict[str, Any]:
    chosen, rejected = (vote.left_answer, vote.right_answer) if vote.choice == "left" else \
        (vote.right_answer, vote.left_answer)
    messages = vote.prompt_messages()
    # One user turn: plain text, the commonest DPO layout; otherwise the turns, which the data reader accepts.
    prompt: str | list[dict] = messages[0]["content"] if len(messages) == 1 else messages
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_model": vote.winner,
            "rejected_model": vote.loser, "vote_id": vote.id}


def export_preferences(votes: Iterable[Vote], path: str | Path) -> ExportSummary:
    """Write left/right votes as prompt/chosen/rejected JSONL (atomically), in the order given.

    Ties and both-bad votes say nothing about which answer is better, so they are left out and counted.
    """
    votes = list(votes)
    ties = sum(v.choice == "tie" for v in votes)
    both_bad = sum(v.choice == "both_bad" for v in votes)
    for vote in votes:
        validate_vote(vote)
    decisive = [v for v in votes if v.choice in ("left", "right")]
    answered = [v for v in decisive if v.left_answer.strip() and v.right_answer.strip()]
    usable = [v for v in answered if v.left_answer.strip() != v.right_answer.strip()]
    empty, identical = len(decisive) - len(answered), len(answered) - len(usable)
    if not usable:
        same = f", {identical} left/right with identical answers" if identical else ""
        same += f", {empty} left/right with an empty answer" if empty else ""
        raise ValueError(f"no preference pairs to export from {len(votes)} votes ({ties} ties, {both_bad} both "
                         f"bad{same}); only left/right votes between two different answers become preference "
                         "pairs, so vote left or right on a few more prompts")
    text = "".join(json.dumps(_preference_row(v), ensure_ascii=False) + "\n" for v in usable)
    target = write_atomic(Path(path).expanduser(), text)
    return ExportSummary(len(usable), ties, both_bad, target, identical, empty)


def blind_order(models: tuple[str, str], rng: random.Random) -> tuple[str, str]:
    """The two model labels in random left/right order."""
    if len(models) != 2 or models[0] == models[1]:
        raise ValueError(f"blind_order needs two different model labels, got {tuple(models)!r}")
    left, right = models
    return (left, right) if rng.random() < 0.5 else (right, left)


@dataclass(frozen=True, repr=False)
class BlindPair:
    """The real labels behind "Model A" (left) and "Model B" (right). Its repr and str never show them."""

    left: str
    right: str

    @classmethod
    def draw(cls, models: tuple[str, str], rng: random.Random) -> BlindPair:
        return cls(*blind_order(models, rng))

    def public(self) -> tuple[str, str]:
        """The names to show before the vote."""
        return PUBLIC_NAMES

    def reveal(self) -> tuple[str, str]:
        """The real (left, right) labels: call after the vote is cast."""
        return self.left, self.right

    def battle(self, choice: str) -> tuple[str, str, str]:
        if choice not in VOTE_CHOICES:
            raise ValueError(f"unknown vote choice {choice!r}; choose one of: {', '.join(VOTE_CHOICES)}")
        return self.left, self.right, choice

    def __repr__(self) -> str:
        return f"BlindPair({PUBLIC_NAMES[0]!r}, {PUBLIC_NAMES[1]!r}; real labels hidden until the vote)"
