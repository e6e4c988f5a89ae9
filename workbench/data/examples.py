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
into examples.
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

from workbench.data.files import LAYOUTS, BadRow, DataError, keys_of, read_rows, show, type_name

__all__ = ["MAX_FIELD_CHARS", "DataError", "DataReport", "Example", "RowProblem", "file_kind", "preview_rows",
           "prompt_text", "read_examples", "read_with_kind", "report_kind", "split_examples"]

MAX_FIELD_CHARS = 20_000

# on_progress(fraction done, what is being done): how long jobs (a big upload) tell a UI how far they are.
Progress = Callable[[float, str], None]
_PROGRESS_EVERY = 50_000  # rows between two progress reports: often enough for a bar, rare enough to cost nothing

_KINDS = ("auto", "sft", "preference")
_REQUIRED = {"alpaca": "instruction and output (input optional)", "prompt_completion": "prompt and completion",
             "messages": "a list of turns", "preference": "prompt, chosen and rejected"}
# The layouts as the report names them.
SHAPE_NAMES = {"alpaca": "Alpaca (instruction, input, output)", "prompt_completion": "prompt and completion",
               "messages": "chat messages", "preference": "preference pairs (prompt, chosen, rejected)"}
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
    """One bad row: where it is, which field (if any) and what to do about it."""

    line: int
    field: str | None
    reason: str


@dataclass
class DataReport:
    """Everything learned from reading one file."""

    path: str
    file_format: str
    rows_read: int = 0
    examples: list[Example] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
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

    def summary(self, max_problems: int = 50) -> str:
        """Human-readable report: counts, shapes, notes, then one line per bad row."""
        shapes = ", ".join(f"{SHAPE_NAMES.get(k, k)}: {v}" for k, v in self.shapes.items()) or "none"
        out = [f"File: {self.path}", f"Format: {self.file_format}",
               f"Rows read: {self.rows_read}, good: {self.good}, bad: {self.bad}", f"Row layouts: {shapes}"]
        if self.notes:
            out += ["Notes:"] + [f"  - {note}" for note in self.notes]
        if self.problems:
            out.append(f"Problems ({self.bad}):")
            out += [f"  {_problem_line(p, self.unit)}" for p in self.problems[:max_problems]]
            if self.bad > max_problems:
                out.append(f"  ... and {self.bad - max_problems} more")
        return "\n".join(out)


def _problem_line(problem: RowProblem, unit: str) -> str:
    # Reasons usually name their field already; only prefix it when they don't, to avoid saying it twice.
    named = problem.field is None or f'"{problem.field}"' in problem.reason
    prefix = "" if named else f'field "{problem.field}": '
    return f"{unit} {problem.line}: {prefix}{problem.reason}"


def _check_text(value: Any, label: str, key: str, allow_empty: bool = False) -> str:
    """Return `value` unchanged if it is usable text, else raise BadRow naming `label`."""
    if not isinstance(value, str):
        raise BadRow(f"{label} is {type_name(value)}, expected text (a string)", key)
    if not allow_empty and not value.strip():
        what = "answer" if key in _ANSWER_KEYS or label.endswith("(assistant) content") else "prompt"
        raise BadRow(f"{label} is empty; every row needs a non-empty {what}", key)
    if len(value) > MAX_FIELD_CHARS:
        raise BadRow(f"{label} is {len(value):,} characters long, over the {MAX_FIELD_CHARS:,} limit; "
                     "split it into several shorter examples or shorten the text", key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. "\ud800" in JSON) would crash tokenizers later.
        raise BadRow(f"{label} contains an invalid unicode character (a lone surrogate); fix or remove it",
                     key) from None
    return value


def _text(row: dict, key: str, shape: str, optional: bool = False) -> str:
    if key not in row or (optional and row[key] is None):
        if optional:
            return ""
        raise BadRow(f'missing field "{key}"; {shape} rows need {_REQUIRED[shape]}', key)
    return _check_text(row[key], f'field "{key}"', key, allow_empty=optional)


def _with_system(row: dict, shape: str, turns: list[dict]) -> list[dict]:
    if turns and turns[0]["role"] == "system":
        return turns
    system = _text(row, "system", shape, optional=True)
    return ([{"role": "system", "content": system}] if system.strip() else []) + turns


def _one_turn(turn: Any, where: str, key: str) -> dict:
    if not isinstance(turn, dict):
        raise BadRow(f'{where} is {type_name(turn)}, expected an object like {{"role": "user", "content": ...}}', key)
    role = turn.get("role", turn.get("from"))
    role = _ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
    if role is None:
        raise BadRow(f'{where} has no "role"; use "system", "user" or "assistant"', key)
    if role not in _ROLES:
        raise BadRow(f'{where} has role "{show(role)}"; roles must be "system", "user" or "assistant"', key)
    content_key = "content" if "content" in turn else "value" if "value" in turn else None
    if content_key is None:
        raise BadRow(f'{where} ({role}) has no "content"; every turn needs its text', key)
    content = _check_text(turn[content_key], f"{where} ({role}) content", key)
    return {"role": role, "content": content}


def _check_order(turns: list[dict], key: str, end: str) -> None:
    start = 1 if turns[0]["role"] == "system" else 0
    for i in range(start, len(turns)):
        role, expected = turns[i]["role"], ("user", "assistant")[(i - start) % 2]
        if role == "system":
            raise BadRow(f"{key}[{i}] is a system turn; a system message may only be the first turn", key)
        if role != expected:
            raise BadRow(f'{key}[{i}] has role "{role}" but "{expected}" was expected; after the optional system '
                         "turn, turns must alternate user, assistant, user, ...", key)
    if len(turns) == start:
        raise BadRow(f'field "{key}" has only a system turn; it needs a user turn and an assistant answer', key)
    last = turns[-1]["role"]
    if last != end:
        what = "a chat row must end with an assistant turn (the answer to learn)" if end == "assistant" \
            else "a preference prompt must end with a user turn"
        raise BadRow(f'the last turn {key}[{len(turns) - 1}] is "{last}"; {what}', key)


def _turns(value: Any, key: str, end: str) -> list[dict]:
    if isinstance(value, str):
        # CSV and Parquet cells can only hold text, so a chat column arrives as JSON inside a string.
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise BadRow(f'field "{key}" is text that is not a JSON list of {{"role", "content"}} turns',
                         key) from None
    if not isinstance(value, list):
        raise BadRow(f'field "{key}" is {type_name(value)}, expected a list of {{"role": ..., "content": ...}} turns',
                     key)
    if not value:
        raise BadRow(f'field "{key}" is an empty list; it needs a user turn and an assistant answer', key)
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
        raise BadRow('fields "chosen" and "rejected" are identical; a preference pair needs two different answers',
                     "rejected")
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
        raise BadRow(f'expected a JSON object like {{"instruction": ..., "output": ...}}, got {type_name(row)}')
    shape = _detect_shape(row)
    if shape is None:
        raise BadRow(f"no known layout matches; keys found: {keys_of(row)}. Expected instruction/input/output "
                     "(alpaca), prompt/completion, messages (chat) or prompt/chosen/rejected (preference)")
    if kind == "sft" and shape == "preference":
        raise BadRow("this is a preference row (prompt/chosen/rejected), not an SFT example; "
                     "use the preference/DPO path (kind='preference') for it")
    if kind == "preference" and shape != "preference":
        raise BadRow(f"this row has the {shape} layout, but preference (DPO) data needs prompt, chosen and rejected")
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
            on_progress(report.rows_read / len(items), f"Checked {report.rows_read:,} of {len(items):,} rows")
        if isinstance(row, dict) and len(seen) < 100:
            seen.update(row)
        try:
            if isinstance(row, BadRow):
                raise row
            example = _parse_row(row, line, kind)
        except BadRow as bad:
            report.problems.append(RowProblem(line, bad.field, bad.reason))
            continue
        report.examples.append(example)
        unknown.update(set(row) - _KNOWN_KEYS[example.shape])
    report.shapes = dict(Counter(ex.shape for ex in report.examples))
    if unknown:
        parts = [f"{show(k, 30)} ({n} row{'s' if n != 1 else ''})" for k, n in unknown.most_common(20)]
        report.notes.append("ignored unknown keys: " + ", ".join(parts))
    return seen


def _no_good_rows(report: DataReport, seen: set[str]) -> DataError:
    if report.rows_read == 0:
        return DataError(f"{report.path}: file is empty (no rows)")
    first = "\n".join(f"  {_problem_line(p, report.unit)}" for p in report.problems[:5])
    found = ", ".join(sorted(show(k, 30) for k in seen)[:30]) or "(none)"
    return DataError(f"{report.path}: no usable rows; all {report.rows_read} {report.unit}s have problems.\n"
                     f"Each row must match one of these layouts:\n{LAYOUTS}\nKeys found: {found}\n"
                     f"First problems:\n{first}")


def _checked(path: str, file_format: str, items: list[tuple[int, Any]], notes: list[str], kind: str,
             on_progress: Progress | None = None) -> DataReport:
    report = DataReport(path, file_format, notes=list(notes))
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
        raise DataError(f"{name}: could not read the file ({type(err).__name__}: {show(str(err), 200)})") from err


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
        raise DataError(f"{name}: cannot read the file ({err.strerror}); check the path") from None
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
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or (isinstance(value, float) and not 0 <= value < 1) or (isinstance(value, int) and value < 0):
        raise ValueError(f"{name} must be a fraction in [0, 1) or a whole count >= 0, got {value!r}")
    if isinstance(value, int):
        return value
    count = round(value * total)
    return 1 if value > 0 and count == 0 and total > 0 else count  # a nonzero fraction never means "none"


def split_examples(examples: list[Example], val_size: float, test_size: float,
                   seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """Shuffle with a fixed seed, then split into (train, val, test); sizes are fractions or counts."""
    n_val = _split_count("the validation share", val_size, len(examples))
    n_test = _split_count("the test share", test_size, len(examples))
    if len(examples) - n_val - n_test < 1:
        raise ValueError(f"the validation share ({val_size!r}) and the test share ({test_size!r}) leave no training "
                         f"examples out of {len(examples)}; lower them so that training keeps at least 1")
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
