"""Data files into raw rows: the file formats, their encodings and their framing.

read_rows(path) reads a .jsonl/.ndjson, .json, .csv/.tsv or .parquet file into (line number, row) pairs, where
a row is a dict of the row's fields or a BadRow saying why that one line could not be read (bad UTF-8, broken
JSON, a ragged CSV line). Only a file that cannot be used at all raises DataError. Turning rows into examples
is workbench.data's part.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet"}


LAYOUTS = ("  alpaca: instruction, input (optional), output\n"
            "  prompt/completion: prompt, completion\n"
            '  chat: messages = list of {"role": ..., "content": ...} turns\n'
            "  preference: prompt, chosen, rejected")


_COLUMN_SETS = ({"instruction", "output"}, {"prompt", "completion"}, {"messages"}, {"conversations"},
                {"prompt", "chosen", "rejected"})


# Signatures of common non-text files, so the error can say what the file really is.
_MAGIC = {b"PAR1": "a Parquet file; give it the .parquet extension", b"PK\x03\x04":
          "a ZIP archive or Excel workbook; export it as CSV (UTF-8)", b"\x1f\x8b": "gzip-compressed; unzip it first"}
# The keys of every layout: an object that has one of them is an example, not a file of examples.
_EXAMPLE_KEYS = {"instruction", "output", "prompt", "completion", "messages", "conversations", "chosen", "rejected"}


class DataError(ValueError):
    """A file that cannot be used at all. Message names the file, what was wrong and the fix."""


class BadRow(Exception):
    """One row is unusable; carries the field at fault and the reason (a RowProblem once collected)."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason, self.field = reason, field


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    # Never repr() numbers: a huge int has no str() in Python 3.11+ (digit limit) and would raise.
    kinds = {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object", bytes: "bytes"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def show(value: Any, limit: int = 40) -> str:
    """Safe, short rendering of user data inside a message (escapes lone surrogates)."""
    text = value if isinstance(value, str) else type_name(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def keys_of(row: dict) -> str:
    return ", ".join(show(k, 30) for k in list(row)[:20]) or "(none)"


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
    """Parse one JSON value; a failure comes back as a BadRow instead of raising."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        return BadRow(f"invalid JSON: {err.msg} at column {err.colno}; each line must be one complete JSON object")
    except RecursionError:
        return BadRow("invalid JSON: nested too deeply")
    except ValueError as err:  # e.g. an integer with more digits than Python allows
        return BadRow(f"invalid JSON: {show(str(err), 120)}")


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
            items.append((num, BadRow(_utf8_reason(f"line {num}", raw, err.start))))
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
            notes.append(f'the file holds an object; used the list of rows under key "{show(lists[0])}"')
            return doc[lists[0]]
        hint = " (it looks like a single example)" if _EXAMPLE_KEYS & set(doc) else ""
        raise DataError(f"{path}: a .json file must hold a list of objects like [{{...}}, {{...}}], but it holds one "
                        f"object{hint} with keys: {keys_of(doc)}. Wrap the rows in [ ], or use .jsonl with one "
                        "object per line")
    raise DataError(f"{path}: a .json file must hold a list of objects, but it holds {type_name(doc)}; "
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
        raise DataError(f"{path}: invalid JSON: {show(str(err), 120)}") from None
    return "json", list(enumerate(_unwrap(path, doc, notes), 1))


def _check_columns(path: str, columns: list[str]) -> None:
    if not any(need <= set(columns) for need in _COLUMN_SETS):
        found = ", ".join(show(c, 30) for c in columns[:30]) or "(none)"
        raise DataError(f"{path}: the columns are: {found}. None of the supported layouts fits; "
                        f"rename the columns to one of:\n{LAYOUTS}")


def _ragged(count: int, expected: int, delimiter: str) -> BadRow:
    sep = "tab" if delimiter == "\t" else "comma"
    fix = (f"a value probably contains an unquoted {sep}; put such values in double quotes" if count > expected
           else "a value is missing or a quote is not closed")
    return BadRow(f"row has {count} fields but the header has {expected}; {fix}")


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
        raise DataError(f"{path}: column {', '.join(show(h) for h in twice)} appears more than once in the header")
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
        raise DataError(f"{path}: not a readable Parquet file ({show(str(err), 200)}); re-export it, "
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


def read_rows(path: str) -> tuple[str, list[tuple[int, Any]], list[str]]:
    """(file format, (line, row) pairs, notes on what was fixed along the way) of a data file."""
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: .jsonl .json .csv "
                        ".parquet (also .ndjson and .tsv)")
    file_format, notes = _EXTENSIONS[ext], []
    # Parquet is read by pyarrow; only peek at it here, to report a missing or empty file the same way.
    data = _read_bytes(path, 4 if file_format == "parquet" else -1)
    if not data.strip():
        raise DataError(f"{path}: file is empty; add one example per row")
    if file_format == "parquet":
        return file_format, _read_parquet(path), notes
    _check_text_file(path, data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        notes.append("removed a UTF-8 byte-order mark")
        if not data.strip():
            raise DataError(f"{path}: file is empty (only a byte-order mark); add one example per row")
    if b"\r\n" in data:
        notes.append("Windows line endings (CRLF) handled")
    if file_format == "jsonl":
        return file_format, _read_jsonl(data, notes), notes
    if file_format == "json":
        file_format, items = _read_json(path, data, notes)
        return file_format, items, notes
    return file_format, _read_csv(path, data, notes, "\t" if ext == ".tsv" else ","), notes
