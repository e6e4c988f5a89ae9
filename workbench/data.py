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
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FIELD_CHARS = 20_000

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet"}
_KINDS = ("auto", "sft", "preference")
_LAYOUTS = ("  alpaca: instruction, input (optional), output\n"
            "  prompt/completion: prompt, completion\n"
            '  chat: messages = list of {"role": ..., "content": ...} turns\n'
            "  preference: prompt, chosen, rejected")
_REQUIRED = {"alpaca": "instruction and output (input optional)", "prompt_completion": "prompt and completion",
             "messages": "a list of turns", "preference": "prompt, chosen and rejected"}
_KNOWN_KEYS = {"alpaca": {"instruction", "input", "output", "system"},
               "prompt_completion": {"prompt", "completion", "system"},
               "messages": {"messages", "conversations", "system"},
               "preference": {"prompt", "chosen", "rejected", "system"}}
_COLUMN_SETS = ({"instruction", "output"}, {"prompt", "completion"}, {"messages"}, {"conversations"},
                {"prompt", "chosen", "rejected"})
_ANSWER_KEYS = {"output", "completion", "chosen", "rejected"}
_ROLES = ("system", "user", "assistant")
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}
# Signatures of common non-text files, so the error can say what the file really is.
_MAGIC = {b"PAR1": "a Parquet file; give it the .parquet extension", b"PK\x03\x04":
          "a ZIP archive or Excel workbook; export it as CSV (UTF-8)", b"\x1f\x8b": "gzip-compressed; unzip it first"}


class DataError(ValueError):
    """A file that cannot be used at all. Message names the file, what was wrong and the fix."""


class _Bad(Exception):
    """Internal: one row is unusable; carries the field at fault and the reason."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason, self.field = reason, field


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
        shapes = ", ".join(f"{k}: {v}" for k, v in self.shapes.items()) or "none"
        out = [f"File: {self.path}", f"Format: {self.file_format}",
               f"Rows read: {self.rows_read}, good: {self.good}, bad: {self.bad}", f"Shapes: {shapes}"]
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


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    # Never repr() numbers: a huge int has no str() in Python 3.11+ (digit limit) and would raise.
    kinds = {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object", bytes: "bytes"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _show(value: Any, limit: int = 40) -> str:
    """Safe, short rendering of user data inside a message (escapes lone surrogates)."""
    text = value if isinstance(value, str) else _type_name(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def _check_text(value: Any, label: str, key: str, allow_empty: bool = False) -> str:
    """Return `value` unchanged if it is usable text, else raise _Bad naming `label`."""
    if not isinstance(value, str):
        raise _Bad(f"{label} is {_type_name(value)}, expected text (a string)", key)
    if not allow_empty and not value.strip():
        what = "answer" if key in _ANSWER_KEYS or label.endswith("(assistant) content") else "prompt"
        raise _Bad(f"{label} is empty; every row needs a non-empty {what}", key)
    if len(value) > MAX_FIELD_CHARS:
        raise _Bad(f"{label} is {len(value):,} characters long, over the {MAX_FIELD_CHARS:,} limit; "
                   "split it into several shorter examples or shorten the text", key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. "\ud800" in JSON) would crash tokenizers later.
        raise _Bad(f"{label} contains an invalid unicode character (a lone surrogate); fix or remove it",
                   key) from None
    return value


def _text(row: dict, key: str, shape: str, optional: bool = False) -> str:
    if key not in row or (optional and row[key] is None):
        if optional:
            return ""
        raise _Bad(f'missing field "{key}"; {shape} rows need {_REQUIRED[shape]}', key)
    return _check_text(row[key], f'field "{key}"', key, allow_empty=optional)


def _with_system(row: dict, shape: str, turns: list[dict]) -> list[dict]:
    if turns and turns[0]["role"] == "system":
        return turns
    system = _text(row, "system", shape, optional=True)
    return ([{"role": "system", "content": system}] if system.strip() else []) + turns


def _one_turn(turn: Any, where: str, key: str) -> dict:
    if not isinstance(turn, dict):
        raise _Bad(f'{where} is {_type_name(turn)}, expected an object like {{"role": "user", "content": ...}}', key)
    role = turn.get("role", turn.get("from"))
    role = _ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
    if role is None:
        raise _Bad(f'{where} has no "role"; use "system", "user" or "assistant"', key)
    if role not in _ROLES:
        raise _Bad(f'{where} has role "{_show(role)}"; roles must be "system", "user" or "assistant"', key)
    content_key = "content" if "content" in turn else "value" if "value" in turn else None
    if content_key is None:
        raise _Bad(f'{where} ({role}) has no "content"; every turn needs its text', key)
    content = _check_text(turn[content_key], f"{where} ({role}) content", key)
    return {"role": role, "content": content}


def _check_order(turns: list[dict], key: str, end: str) -> None:
    start = 1 if turns[0]["role"] == "system" else 0
    for i in range(start, len(turns)):
        role, expected = turns[i]["role"], ("user", "assistant")[(i - start) % 2]
        if role == "system":
            raise _Bad(f"{key}[{i}] is a system turn; a system message may only be the first turn", key)
        if role != expected:
            raise _Bad(f'{key}[{i}] has role "{role}" but "{expected}" was expected; after the optional system '
                       "turn, turns must alternate user, assistant, user, ...", key)
    if len(turns) == start:
        raise _Bad(f'field "{key}" has only a system turn; it needs a user turn and an assistant answer', key)
    last = turns[-1]["role"]
    if last != end:
        what = "a chat row must end with an assistant turn (the answer to learn)" if end == "assistant" \
            else "a preference prompt must end with a user turn"
        raise _Bad(f'the last turn {key}[{len(turns) - 1}] is "{last}"; {what}', key)


def _turns(value: Any, key: str, end: str) -> list[dict]:
    if isinstance(value, str):
        # CSV and Parquet cells can only hold text, so a chat column arrives as JSON inside a string.
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _Bad(f'field "{key}" is text that is not a JSON list of {{"role", "content"}} turns', key) from None
    if not isinstance(value, list):
        raise _Bad(f'field "{key}" is {_type_name(value)}, expected a list of {{"role": ..., "content": ...}} turns',
                   key)
    if not value:
        raise _Bad(f'field "{key}" is an empty list; it needs a user turn and an assistant answer', key)
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
        raise _Bad('fields "chosen" and "rejected" are identical; a preference pair needs two different answers',
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


def _keys(row: dict) -> str:
    return ", ".join(_show(k, 30) for k in list(row)[:20]) or "(none)"


def _parse_row(row: Any, line: int, kind: str) -> Example:
    if not isinstance(row, dict):
        raise _Bad(f'expected a JSON object like {{"instruction": ..., "output": ...}}, got {_type_name(row)}')
    shape = _detect_shape(row)
    if shape is None:
        raise _Bad(f"no known layout matches; keys found: {_keys(row)}. Expected instruction/input/output (alpaca), "
                   "prompt/completion, messages (chat) or prompt/chosen/rejected (preference)")
    if kind == "sft" and shape == "preference":
        raise _Bad("this is a preference row (prompt/chosen/rejected), not an SFT example; "
                   "use the preference/DPO path (kind='preference') for it")
    if kind == "preference" and shape != "preference":
        raise _Bad(f"this row has the {shape} layout, but preference (DPO) data needs prompt, chosen and rejected")
    if shape in ("messages", "preference"):
        return (_chat if shape == "messages" else _preference)(row, line)
    return _single_turn(row, line, shape)


def _encoding_hint(raw: bytes) -> str:
    try:
        text = raw.decode("cp949")
        if any("\uac00" <= ch <= "\ud7a3" for ch in text):
            return "the file looks like cp949/EUC-KR (Korean)"
    except UnicodeDecodeError:
        pass
    try:
        raw.decode("cp1252")
        return "the file looks like Windows-1252/Latin-1"
    except UnicodeDecodeError:
        return "the encoding is unknown"


def _utf8_reason(where: str, raw_line: bytes, pos: int) -> str:
    return (f"{where} is not valid UTF-8 (byte 0x{raw_line[pos]:02x} at position {pos}); "
            f"{_encoding_hint(raw_line)} — save it as UTF-8")


def _decode_all(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        line_no = data.count(b"\n", 0, err.start) + 1
        reason = _utf8_reason(f"line {line_no}", data[start:len(data) if end < 0 else end], err.start - start)
        raise DataError(f"{path}: {reason}") from None


def _loads(text: str) -> Any:
    """Parse one JSON value; a failure comes back as a _Bad instead of raising."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        return _Bad(f"invalid JSON: {err.msg} at column {err.colno}; each line must be one complete JSON object")
    except RecursionError:
        return _Bad("invalid JSON: nested too deeply")
    except ValueError as err:  # e.g. an integer with more digits than Python allows
        return _Bad(f"invalid JSON: {_show(str(err), 120)}")


def _read_jsonl(data: bytes, notes: list[str]) -> list[tuple[int, Any]]:
    sep = b"\r" if b"\n" not in data and b"\r" in data else b"\n"  # old Mac files end lines with CR only
    pieces = data.split(sep)
    if pieces and not pieces[-1]:
        pieces.pop()  # the final newline does not start another line
    items: list[tuple[int, Any]] = []
    blank = 0
    for num, raw in enumerate(pieces, 1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            # Decode line by line so one badly encoded line does not cost the whole file.
            items.append((num, _Bad(_utf8_reason(f"line {num}", raw, err.start))))
            continue
        if not text.strip():
            blank += 1
            continue
        items.append((num, _loads(text)))
    if blank:
        notes.append(f"{blank} blank line{'s' if blank != 1 else ''} skipped")
    return items


def _unwrap(path: str, doc: Any, notes: list[str]) -> list:
    if isinstance(doc, list):
        if not doc:
            raise DataError(f"{path}: the JSON list is empty; add at least one example object")
        return doc
    if isinstance(doc, dict):
        lists = [k for k, v in doc.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)]
        if len(lists) == 1:
            notes.append(f'the file holds an object; used the list of rows under key "{_show(lists[0])}"')
            return doc[lists[0]]
        hint = " (it looks like a single example)" if _detect_shape(doc) else ""
        raise DataError(f"{path}: a .json file must hold a list of objects like [{{...}}, {{...}}], but it holds one "
                        f"object{hint} with keys: {_keys(doc)}. Wrap the rows in [ ], or use .jsonl with one "
                        "object per line")
    raise DataError(f"{path}: a .json file must hold a list of objects, but it holds {_type_name(doc)}; "
                    "or use .jsonl with one object per line")


def _read_json(path: str, data: bytes, notes: list[str]) -> tuple[str, list[tuple[int, Any]]]:
    text = _decode_all(path, data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and "\n" in text.strip():
            # A common mix-up: JSON Lines saved with a .json extension. Read it the way it was written.
            notes.append("the .json file holds one JSON object per line (JSON Lines); read it as JSONL")
            return "jsonl", _read_jsonl(data, notes)
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}. Fix the syntax "
                        "(a .json file must hold one list of objects), or use .jsonl with one object per line"
                        ) from None
    except RecursionError:
        raise DataError(f"{path}: the JSON is nested too deeply to read") from None
    except ValueError as err:
        raise DataError(f"{path}: invalid JSON: {_show(str(err), 120)}") from None
    return "json", list(enumerate(_unwrap(path, doc, notes), 1))


def _check_columns(path: str, columns: list[str]) -> None:
    if not any(need <= set(columns) for need in _COLUMN_SETS):
        found = ", ".join(_show(c, 30) for c in columns[:30]) or "(none)"
        raise DataError(f"{path}: the columns are: {found}. None of the supported layouts fits; "
                        f"rename the columns to one of:\n{_LAYOUTS}")


def _ragged(count: int, expected: int, delimiter: str) -> _Bad:
    sep = "tab" if delimiter == "\t" else "comma"
    fix = (f"a value probably contains an unquoted {sep}; put such values in double quotes" if count > expected
           else "a value is missing or a quote is not closed")
    return _Bad(f"row has {count} fields but the header has {expected}; {fix}")


def _read_csv(path: str, data: bytes, notes: list[str], delimiter: str) -> list[tuple[int, Any]]:
    reader = csv.reader(io.StringIO(_decode_all(path, data), newline=""), delimiter=delimiter)
    try:
        records = list(reader)
    except csv.Error as err:
        raise DataError(f"{path}: cannot parse the file near line {reader.line_num}: {err}") from None
    filled = [i for i, rec in enumerate(records) if any(cell.strip() for cell in rec)]
    if not filled:
        raise DataError(f"{path}: file is empty (no header, no rows)")
    header = [cell.strip() for cell in records[filled[0]]]
    if header != records[filled[0]]:
        notes.append("removed spaces around column names")
    twice = [h for h, n in Counter(header).items() if n > 1]
    if twice:
        raise DataError(f"{path}: column {', '.join(_show(h) for h in twice)} appears more than once in the header")
    _check_columns(path, header)
    items = [(i + 1, dict(zip(header, records[i])) if len(records[i]) == len(header)
              else _ragged(len(records[i]), len(header), delimiter)) for i in filled[1:]]
    if not items:
        raise DataError(f"{path}: the file has a header ({', '.join(header)}) but no data rows; add rows below it")
    blank = len(records) - len(filled)
    if blank:
        notes.append(f"{blank} blank row{'s' if blank != 1 else ''} skipped")
    return items


def _is_missing(value: Any) -> bool:
    # Nulls and NaN (how pandas writes an empty cell) both mean "no value here".
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_parquet(path: str) -> list[tuple[int, Any]]:
    import pyarrow as pa  # lazy: keeps importing this module cheap
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({_show(str(err), 200)}); re-export it, "
                        "e.g. with pandas DataFrame.to_parquet, or use .jsonl") from err
    if table.num_rows == 0:
        raise DataError(f"{path}: the Parquet file has columns ({', '.join(table.column_names)}) but no rows")
    _check_columns(path, table.column_names)
    return [(i, {k: v for k, v in row.items() if not _is_missing(v)}) for i, row in enumerate(table.to_pylist(), 1)]


def _read_bytes(path: str, limit: int = -1) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file; pick the data file inside it") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None


def _check_text_file(path: str, data: bytes) -> None:
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise DataError(f"{path}: this looks like a binary file, not text: {what}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
    head = data[:65536]
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in (9, 10, 12, 13))
    # NUL bytes or many control characters never occur in real text files, in any encoding.
    if b"\x00" in data or controls > len(head) // 20:
        raise DataError(f"{path}: this looks like a binary file, not text; use a .jsonl, .json, .csv or .parquet file")


def _collect(report: DataReport, items: list[tuple[int, Any]], kind: str) -> set[str]:
    """Turn parsed rows into examples and problems; returns the keys seen, for error messages."""
    unknown: Counter = Counter()
    seen: set[str] = set()
    for line, row in items:
        report.rows_read += 1
        if isinstance(row, dict) and len(seen) < 100:
            seen.update(row)
        try:
            if isinstance(row, _Bad):
                raise row
            example = _parse_row(row, line, kind)
        except _Bad as bad:
            report.problems.append(RowProblem(line, bad.field, bad.reason))
            continue
        report.examples.append(example)
        unknown.update(set(row) - _KNOWN_KEYS[example.shape])
    report.shapes = dict(Counter(ex.shape for ex in report.examples))
    if unknown:
        parts = [f"{_show(k, 30)} ({n} row{'s' if n != 1 else ''})" for k, n in unknown.most_common(20)]
        report.notes.append("ignored unknown keys: " + ", ".join(parts))
    return seen


def _no_good_rows(report: DataReport, seen: set[str]) -> DataError:
    if report.rows_read == 0:
        return DataError(f"{report.path}: file is empty (no rows)")
    first = "\n".join(f"  {_problem_line(p, report.unit)}" for p in report.problems[:5])
    found = ", ".join(sorted(_show(k, 30) for k in seen)[:30]) or "(none)"
    return DataError(f"{report.path}: no usable rows; all {report.rows_read} {report.unit}s have problems.\n"
                     f"Each row must match one of these layouts:\n{_LAYOUTS}\nKeys found: {found}\n"
                     f"First problems:\n{first}")


def _read(path: str, kind: str) -> DataReport:
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: .jsonl .json .csv "
                        ".parquet (also .ndjson and .tsv)")
    report = DataReport(path, _EXTENSIONS[ext])
    # Parquet is read by pyarrow; only peek at it here, to report a missing or empty file the same way.
    data = _read_bytes(path, 4 if report.file_format == "parquet" else -1)
    if not data.strip():
        raise DataError(f"{path}: file is empty; add one example per row")
    if report.file_format == "parquet":
        items = _read_parquet(path)
    else:
        _check_text_file(path, data)
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
            report.notes.append("removed a UTF-8 byte-order mark")
            if not data.strip():
                raise DataError(f"{path}: file is empty (only a byte-order mark); add one example per row")
        if b"\r\n" in data:
            report.notes.append("Windows line endings (CRLF) handled")
        if report.file_format == "jsonl":
            items = _read_jsonl(data, report.notes)
        elif report.file_format == "json":
            report.file_format, items = _read_json(path, data, report.notes)
        else:
            items = _read_csv(path, data, report.notes, "\t" if ext == ".tsv" else ",")
    seen = _collect(report, items, kind)
    if not report.examples:
        raise _no_good_rows(report, seen)
    return report


def read_examples(path: str | os.PathLike, *, kind: str = "auto") -> DataReport:
    """Read a data file into examples; bad rows become problems. Raises DataError if the file is unusable.

    kind: "auto" accepts every shape, "sft" rejects preference rows, "preference" accepts only preference rows.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    name = os.fsdecode(path)
    try:
        return _read(name, kind)
    except DataError:
        raise
    except Exception as err:  # callers (UI, CLI) must only ever need to handle DataError, whatever the bytes are
        raise DataError(f"{name}: could not read the file ({type(err).__name__}: {_show(str(err), 200)})") from err


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
    return _file_kind(name, stat.st_mtime_ns, stat.st_size)


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
    n_val = _split_count("val_size", val_size, len(examples))
    n_test = _split_count("test_size", test_size, len(examples))
    if len(examples) - n_val - n_test < 1:
        raise ValueError(f"val_size={val_size!r} and test_size={test_size!r} leave no training examples out of "
                         f"{len(examples)}; lower them so train keeps at least 1")
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
