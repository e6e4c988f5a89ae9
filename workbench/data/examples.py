"""Read and validate instruction-tuning data files into chat examples.

Supported files (format chosen by extension): .jsonl/.ndjson, .json (a list of objects), .csv/.tsv and .parquet.
Each row must match one layout ("shape"):

- alpaca: instruction, input (optional), output
- prompt_completion: prompt, completion
- messages: messages = list of {"role", "content"} turns (ShareGPT "conversations" with from/value also works)
- preference: prompt, chosen, rejected

Bad rows never stop a read: each becomes a RowProblem that says what was received and how to fix it, and every
good row is kept. Only a file that cannot be used at all (missing, empty, binary, no good rows) raises DataError.
A field longer than MAX_FIELD_CHARS (20,000 characters) is treated as absurdly long: its row is rejected with a
problem that gives the length and the limit, and asks to split the row or shorten the text.

The files themselves (formats, encodings, framing) are read by workbench.data.files; this module turns their rows
into examples. Problems, notes and errors are catalogue Messages (`core.data.*`): `summary(lang)` writes the report in
either language, `str()` of an error in the environment's.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.data.files import LAYOUTS, TURN, BadRow, DataError, keys_of, read_rows, show, type_name
from workbench.i18n import Message, message, say, text

__all__ = ["MAX_FIELD_CHARS", "DataError", "DataReport", "Example", "RowProblem", "file_kind", "preview_rows",
           "prompt_text", "read_examples", "read_with_kind", "report_kind", "split_examples"]

MAX_FIELD_CHARS = 20_000

# on_progress(fraction done, what is being done: a Message or text): how long jobs (a big upload) tell a UI how far
# they are; the UI says it in its reader's language (say(what, lang)).
Progress = Callable[[float, "Message | str"], None]
_PROGRESS_EVERY = 50_000  # rows between two progress reports: often enough for a bar, rare enough to cost nothing

_KINDS = ("auto", "sft", "preference")
# What each layout needs (core.data.required.<shape>) and how the report names it (core.data.shape.<shape>) are in
# the catalogues.
_KNOWN_KEYS = {"alpaca": {"instruction", "input", "output", "system"},
               "prompt_completion": {"prompt", "completion", "system"},
               "messages": {"messages", "conversations", "system"},
               "preference": {"prompt", "chosen", "rejected", "system"}}
_ANSWER_KEYS = {"output", "completion", "chosen", "rejected"}
_ROLES = ("system", "user", "assistant")
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}


@dataclass(frozen=True)
class Example:
    """One training example as chat turns; the last turn is the assistant answer (prompt turns for preference)."""

    messages: tuple[dict, ...]
    line: int
    shape: str
    chosen: str | None = None
    rejected: str | None = None

    @property
    def prompt_messages(self) -> tuple[dict, ...]:
        """All turns before the answer."""
        return self.messages if self.shape == "preference" else self.messages[:-1]

    @property
    def answer(self) -> str:
        """The text to learn: the final assistant turn, or `chosen` for preference rows."""
        if self.shape == "preference":
            return self.chosen or ""
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class RowProblem:
    """One bad row: where it is, which field (if any) and what to do about it (`why`, a Message)."""

    line: int
    field: str | None
    why: Message

    @property
    def reason(self) -> str:
        """Why, in the environment's language."""
        return str(self.why)


@dataclass
class DataReport:
    """Everything learned from reading one file."""

    path: str
    file_format: str
    rows_read: int = 0
    examples: list[Example] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    read_notes: list[Message] = field(default_factory=list)  # how the file was read (encoding, blank lines, ...)
    unknown_keys: list[tuple[str, int]] = field(default_factory=list)  # keys no layout reads, and in how many rows
    shapes: dict[str, int] = field(default_factory=dict)

    @property
    def good(self) -> int:
        return len(self.examples)

    @property
    def bad(self) -> int:
        return len(self.problems)

    @property
    def unit(self) -> str:
        """What a position is called in this format: line (JSONL), item (JSON list) or row (CSV/Parquet)."""
        return {"json": "item", "csv": "row", "parquet": "row"}.get(self.file_format, "line")

    @property
    def notes(self) -> list[str]:
        """The notes in the environment's language (what the run's result and log keep)."""
        return self.notes_in()

    def notes_in(self, lang: str | None = None) -> list[str]:
        """How the file was read and which keys were ignored, in `lang` (default: the environment's)."""
        notes = [say(note, lang) for note in self.read_notes]
        if self.unknown_keys:
            parts = [text(f"core.data.note.unknown_key.{'one' if n == 1 else 'many'}", lang, field=key, count=n)
                     for key, n in self.unknown_keys]
            notes.append(text("core.data.note.unknown_keys", lang, keys=", ".join(parts)))
        return notes

    def summary(self, max_problems: int = 50, lang: str | None = None) -> str:
        """Human-readable report in `lang` (default: the environment's): counts, shapes, notes, then one line per
        bad row."""
        def say_in(key: str, **fields: object) -> str:
            return text(key, lang, **fields)

        shapes = ", ".join(f"{say_in(f'core.data.shape.{k}')}: {v}" for k, v in self.shapes.items())
        out = [say_in("core.data.report.file", path=self.path),
               say_in("core.data.report.format", format=self.file_format),
               say_in("core.data.report.counts", read=self.rows_read, good=self.good, bad=self.bad),
               say_in("core.data.report.layouts", layouts=shapes or say_in("core.data.report.no_layouts"))]
        notes = self.notes_in(lang)
        if notes:
            out += [say_in("core.data.report.notes")] + [f"  - {note}" for note in notes]
        if self.problems:
            out.append(say_in("core.data.report.problems", count=self.bad))
            out += [problem_line(p, self.unit).render(lang) for p in self.problems[:max_problems]]
            if self.bad > max_problems:
                out.append(say_in("core.data.report.more", count=self.bad - max_problems))
        return "\n".join(out)


def problem_line(problem: RowProblem, unit: str) -> Message:
    """A report's line for a bad row ("  line 4: ..."), indented as the report and the errors list them."""
    # Reasons usually name their field already; only name it when they don't, to avoid saying it twice. Field names
    # are quoted alike in both languages, so the English text tells.
    named = problem.field is None or f'"{problem.field}"' in problem.why.render("en")
    where = message(f"core.data.unit.{unit}")
    if named:
        return message("core.data.problem", unit=where, line=problem.line, reason=problem.why)
    return message("core.data.problem.field", unit=where, line=problem.line, field=problem.field, reason=problem.why)


def _field_label(key: str) -> Message:
    return message("core.data.label.field", field=key)


def _check_text(value: Any, label: Message, key: str, allow_empty: bool = False, answer: bool = False) -> str:
    """Return `value` unchanged if it is usable text, else raise BadRow naming `label`; `answer` says that the text
    is an answer (a prompt otherwise)."""
    if not isinstance(value, str):
        raise BadRow(message("core.data.row.not_text", label=label, kind=type_name(value)), key)
    if not allow_empty and not value.strip():
        what = message("core.data.row.answer" if answer or key in _ANSWER_KEYS else "core.data.row.prompt")
        raise BadRow(message("core.data.row.empty", label=label, what=what), key)
    if len(value) > MAX_FIELD_CHARS:
        raise BadRow(message("core.data.row.too_long", label=label, length=f"{len(value):,}",
                             limit=f"{MAX_FIELD_CHARS:,}"), key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. "\ud800" in JSON) would crash tokenizers later.
        raise BadRow(message("core.data.row.surrogate", label=label), key) from None
    return value


def _text(row: dict, key: str, shape: str, optional: bool = False) -> str:
    if key not in row or (optional and row[key] is None):
        if optional:
            return ""
        raise BadRow(message("core.data.row.missing", field=key, shape=shape,
                             required=message(f"core.data.required.{shape}")), key)
    return _check_text(row[key], _field_label(key), key, allow_empty=optional)


def _with_system(row: dict, shape: str, turns: list[dict]) -> list[dict]:
    if turns and turns[0]["role"] == "system":
        return turns
    system = _text(row, "system", shape, optional=True)
    return ([{"role": "system", "content": system}] if system.strip() else []) + turns


def _one_turn(turn: Any, where: str, key: str) -> dict:
    if not isinstance(turn, dict):
        raise BadRow(message("core.data.turn.not_object", where=where, kind=type_name(turn),
                             example='{"role": "user", "content": ...}'), key)
    role = turn.get("role", turn.get("from"))
    role = _ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
    if role is None:
        raise BadRow(message("core.data.turn.no_role", where=where), key)
    if role not in _ROLES:
        raise BadRow(message("core.data.turn.bad_role", where=where, role=show(role)), key)
    content_key = "content" if "content" in turn else "value" if "value" in turn else None
    if content_key is None:
        raise BadRow(message("core.data.turn.no_content", where=where, role=role), key)
    label = message("core.data.label.turn", where=where, role=role)
    content = _check_text(turn[content_key], label, key, answer=role == "assistant")
    return {"role": role, "content": content}


def _check_order(turns: list[dict], key: str, end: str) -> None:
    start = 1 if turns[0]["role"] == "system" else 0
    for i in range(start, len(turns)):
        role, expected = turns[i]["role"], ("user", "assistant")[(i - start) % 2]
        if role == "system":
            raise BadRow(message("core.data.turn.system_later", where=f"{key}[{i}]"), key)
        if role != expected:
            raise BadRow(message("core.data.turn.order", where=f"{key}[{i}]", role=role, expected=expected), key)
    if len(turns) == start:
        raise BadRow(message("core.data.turn.only_system", field=key), key)
    last = turns[-1]["role"]
    if last != end:
        what = message("core.data.turn.end_assistant" if end == "assistant" else "core.data.turn.end_user")
        raise BadRow(message("core.data.turn.last", where=f"{key}[{len(turns) - 1}]", role=last, what=what), key)


def _turns(value: Any, key: str, end: str) -> list[dict]:
    if isinstance(value, str):
        # CSV and Parquet cells can only hold text, so a chat column arrives as JSON inside a string.
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise BadRow(message("core.data.turns.text", field=key, turn='{"role", "content"}'), key) from None
    if not isinstance(value, list):
        raise BadRow(message("core.data.turns.not_list", field=key, kind=type_name(value), turn=TURN), key)
    if not value:
        raise BadRow(message("core.data.turns.empty", field=key), key)
    turns = [_one_turn(turn, f"{key}[{i}]", key) for i, turn in enumerate(value)]
    _check_order(turns, key, end)
    return turns


def _single_turn(row: dict, line: int, shape: str) -> Example:
    if shape == "alpaca":
        prompt, extra = _text(row, "instruction", shape), _text(row, "input", shape, optional=True)
        prompt, answer = f"{prompt}\n\n{extra}" if extra.strip() else prompt, _text(row, "output", shape)
    else:
        prompt, answer = _text(row, "prompt", shape), _text(row, "completion", shape)
    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return Example(tuple(_with_system(row, shape, turns)), line, shape)


def _chat(row: dict, line: int) -> Example:
    key = "messages" if "messages" in row else "conversations"
    turns = _turns(row[key], key, end="assistant")
    return Example(tuple(_with_system(row, "messages", turns)), line, "messages")


def _preference(row: dict, line: int) -> Example:
    if isinstance(row.get("prompt"), list):
        turns = _turns(row["prompt"], "prompt", end="user")
    else:
        turns = [{"role": "user", "content": _text(row, "prompt", "preference")}]
    chosen = _text(row, "chosen", "preference")
    rejected = _text(row, "rejected", "preference")
    if chosen.strip() == rejected.strip():
        raise BadRow(message("core.data.row.identical"), "rejected")
    return Example(tuple(_with_system(row, "preference", turns)), line, "preference", chosen, rejected)


def _detect_shape(row: dict) -> str | None:
    # Most specific first; a partial match is still assigned so the problem can name the missing field.
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "messages" in row or "conversations" in row:
        return "messages"
    if "instruction" in row or "output" in row:
        return "alpaca"
    if "prompt" in row or "completion" in row:
        return "prompt_completion"
    return None


def _parse_row(row: Any, line: int, kind: str) -> Example:
    if not isinstance(row, dict):
        raise BadRow(message("core.data.row.not_object", example='{"instruction": ..., "output": ...}',
                             kind=type_name(row)))
    shape = _detect_shape(row)
    if shape is None:
        raise BadRow(message("core.data.row.no_layout", keys=keys_of(row)))
    if kind == "sft" and shape == "preference":
        raise BadRow(message("core.data.row.preference_in_sft"))
    if kind == "preference" and shape != "preference":
        raise BadRow(message("core.data.row.sft_in_preference", shape=shape))
    if shape in ("messages", "preference"):
        return (_chat if shape == "messages" else _preference)(row, line)
    return _single_turn(row, line, shape)


def _collect(report: DataReport, items: list[tuple[int, Any]], kind: str,
             on_progress: Progress | None = None) -> set[str]:
    """Turn parsed rows into examples and problems; returns the keys seen, for error messages."""
    unknown: Counter = Counter()
    seen: set[str] = set()
    for line, row in items:
        report.rows_read += 1
        if on_progress is not None and report.rows_read % _PROGRESS_EVERY == 0:
            checked = message("core.data.progress.rows", done=f"{report.rows_read:,}", total=f"{len(items):,}")
            on_progress(report.rows_read / len(items), checked)
        if isinstance(row, dict) and len(seen) < 100:
            seen.update(row)
        try:
            if isinstance(row, BadRow):
                raise row
            example = _parse_row(row, line, kind)
        except BadRow as bad:
            report.problems.append(RowProblem(line, bad.field, bad.why))
            continue
        report.examples.append(example)
        unknown.update(set(row) - _KNOWN_KEYS[example.shape])
    report.shapes = dict(Counter(ex.shape for ex in report.examples))
    if unknown:
        report.unknown_keys = [(str(show(k, 30)), n) for k, n in unknown.most_common(20)]
    return seen


def _no_good_rows(report: DataReport, seen: set[str]) -> DataError:
    if report.rows_read == 0:
        return DataError(message("core.data.file.no_rows", path=report.path))
    first = [problem_line(p, report.unit) for p in report.problems[:5]]
    found = ", ".join(sorted(str(show(k, 30)) for k in seen)[:30]) or message("core.none")
    return DataError(message("core.data.no_usable_rows", path=report.path, count=report.rows_read,
                             units=message(f"core.data.units.{report.unit}"), layouts=LAYOUTS, keys=found,
                             first=first))


def _checked(path: str, file_format: str, items: list[tuple[int, Any]], notes: list[Message], kind: str,
             on_progress: Progress | None = None) -> DataReport:
    report = DataReport(path, file_format, read_notes=list(notes))
    seen = _collect(report, items, kind, on_progress)
    if not report.examples:
        raise _no_good_rows(report, seen)
    return report


def _kind_matters(report: DataReport, items: list[tuple[int, Any]], kind: str) -> bool:
    """Whether checking the rows for `kind` differs from the check for any kind ("auto") in `report`: only rows in the
    other kind's layout read differently (a preference row is bad SFT data, and the other way round)."""
    if any((shape == "preference") != (kind == "preference") for shape in report.shapes):
        return True
    bad = {problem.line for problem in report.problems}  # the good rows are all of this kind: only bad ones can differ
    for line, row in items:
        if line in bad and isinstance(row, dict):
            shape = _detect_shape(row)
            if shape is not None and (shape == "preference") != (kind == "preference"):
                return True
    return False


@contextlib.contextmanager
def gc_paused() -> Any:
    """Python's cycle collector paused for a bulk read. Reading a big file makes millions of small objects, none of
    them garbage, and the collector walks them all again and again: a fifth of the time of reading 500,000 rows in
    the app, whose heap is big. It is turned back on after, if it was on (a nested pause leaves that to the outer)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _read(path: str, kind: str, on_progress: Progress | None, resolve: bool) -> tuple[DataReport, str]:
    with gc_paused():
        return _read_rows_and_check(path, kind, on_progress, resolve)


def _read_rows_and_check(path: str, kind: str, on_progress: Progress | None, resolve: bool) -> tuple[DataReport, str]:
    file_format, items, notes = read_rows(path)
    report = _checked(path, file_format, items, notes, kind, on_progress)
    if kind != "auto" or not resolve:
        return report, kind
    # The file's kind is that of its good rows; its rows are then checked for that kind, from the rows already parsed.
    kind = report_kind(report)
    if _kind_matters(report, items, kind):
        report = _checked(path, file_format, items, notes, kind)
    return report, kind


def _guarded(path: str | os.PathLike, kind: str, on_progress: Progress | None,
             resolve: bool) -> tuple[DataReport, str]:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    name = os.fsdecode(path)
    try:
        stat = os.stat(name) if resolve and kind == "auto" else None  # the version read, taken before reading it
    except OSError:
        stat = None  # reading it names the problem
    try:
        report, found = _read(name, kind, on_progress, resolve)
        _remember_kind(name, stat, found)
        return report, found
    except DataError:
        raise
    except Exception as err:  # callers (UI, CLI) must only ever need to handle DataError, whatever the bytes are
        raise DataError(message("core.data.file.failed", path=name, error=f"{type(err).__name__}: "
                                                                          f"{show(str(err), 200)}")) from err


def read_examples(path: str | os.PathLike, *, kind: str = "auto", on_progress: Progress | None = None) -> DataReport:
    """Read a data file into examples; bad rows become problems. Raises DataError if the file is unusable.

    kind: "auto" accepts every shape, "sft" rejects preference rows, "preference" accepts only preference rows.
    on_progress(fraction, message) is told how far the check of the rows is, for a progress bar.
    """
    return _guarded(path, kind, on_progress, resolve=False)[0]


def read_with_kind(path: str | os.PathLike, *, kind: str = "auto",
                   on_progress: Progress | None = None) -> tuple[DataReport, str]:
    """(report, kind) of a file, reading it once. kind "auto" becomes the file's kind (what file_kind says:
    "preference" when every good row is a preference pair, else "sft") and the report is the one
    read_examples(path, kind=that kind) gives; "sft" and "preference" stay as given. Raises DataError if the file
    is unusable."""
    return _guarded(path, kind, on_progress, resolve=True)


def report_kind(report: DataReport) -> str:
    """'preference' when every good row is a preference pair (DPO data), otherwise 'sft' (instructions)."""
    return "preference" if set(report.shapes) == {"preference"} else "sft"


def file_kind(path: str | os.PathLike) -> str:
    """report_kind of a file (read once per version of the file). Raises DataError if it is unusable."""
    name = os.fsdecode(path)
    try:
        stat = os.stat(name)
    except OSError as err:
        raise DataError(message("core.data.file.cannot_stat", path=name, error=err.strerror)) from None
    version = (name, stat.st_mtime_ns, stat.st_size)
    return _KINDS_READ.get(version) or _file_kind(*version)


# Kinds that read_with_kind found, by version of the file: the Data tab's check reads a big file once, and the Train
# tab asking file_kind right after must not read it again.
_KINDS_READ: dict[tuple[str, int, int], str] = {}


def _remember_kind(name: str, stat: os.stat_result | None, kind: str) -> None:
    if stat is not None:
        _KINDS_READ[(name, stat.st_mtime_ns, stat.st_size)] = kind
        while len(_KINDS_READ) > 64:
            _KINDS_READ.pop(next(iter(_KINDS_READ)), None)


@functools.lru_cache(maxsize=64)
def _file_kind(path: str, _mtime_ns: int, _size: int) -> str:
    return report_kind(read_examples(path, kind="auto"))


def _split_count(name: str, value: Any, total: int) -> int:
    """How many examples a share (`name`: "val" or "test") asks for."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or (isinstance(value, float) and not 0 <= value < 1) or (isinstance(value, int) and value < 0):
        raise ValueError(message("core.data.split.share", share=message(f"core.data.split.{name}"),
                                 value=repr(value)))
    if isinstance(value, int):
        return value
    count = round(value * total)
    return 1 if value > 0 and count == 0 and total > 0 else count  # a nonzero fraction never means "none"


def split_examples(examples: list[Example], val_size: float, test_size: float,
                   seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """Shuffle with a fixed seed, then split into (train, val, test); sizes are fractions or counts."""
    n_val = _split_count("val", val_size, len(examples))
    n_test = _split_count("test", test_size, len(examples))
    if len(examples) - n_val - n_test < 1:
        raise ValueError(message("core.data.split.nothing_left", val=repr(val_size), test=repr(test_size),
                                 total=len(examples)))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    shuffled = [examples[i] for i in order]
    return shuffled[n_val + n_test:], shuffled[:n_val], shuffled[n_val:n_val + n_test]


def prompt_text(example: Example) -> str:
    turns = [t for t in example.prompt_messages if t["role"] != "system"]
    if sum(t["role"] == "user" for t in turns) > 1:
        return "\n".join(f"{t['role']}: {t['content']}" for t in example.prompt_messages)
    return next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")


def preview_rows(examples: list[Example], n: int = 5) -> list[dict]:
    """Flat dicts (line, shape, prompt, answer) for a preview table of the first `n` examples; a preference
    pair shows both answers."""
    def answer(ex: Example) -> str:
        return f"✓ chosen: {ex.chosen}\n✗ rejected: {ex.rejected}" if ex.shape == "preference" else ex.answer

    return [{"line": ex.line, "shape": ex.shape, "prompt": prompt_text(ex), "answer": answer(ex)}
            for ex in examples[:max(n, 0)]]
