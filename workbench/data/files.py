"""Data files into raw rows: the file formats, their encodings and their framing.

read_rows(path) reads a .jsonl/.ndjson, .json, .csv/.tsv or .parquet file into (line number, row) pairs, where
a row is a dict of the row's fields or a BadRow saying why that one line could not be read (bad UTF-8, a NUL byte,
broken JSON, a ragged CSV line). Only a file that cannot be used at all raises DataError. Turning rows into examples
is workbench.data.examples's part.

Text files may be UTF-8 (with or without a byte-order mark), UTF-16 or UTF-32 (told by their byte-order mark, or
without one by where their zero bytes fall) or Korean CP949/EUC-KR (what Korean Excel saves); an encoding other than
UTF-8 is read as such and named in a note. A binary file (Parquet without its extension, ZIP, gzip, mostly control
bytes) is refused with what it looks like.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet"}
SUFFIXES = tuple(_EXTENSIONS)  # the file types a data file may have: uploads and file pickers offer these


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


_CSV_LIMIT_LOCK = threading.Lock()


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


def _nul_row(where: str, text: str) -> BadRow | None:
    """A BadRow for text holding a NUL character, which no text file has: the line was damaged (or pasted from a
    binary file). None for text without one."""
    pos = text.find("\x00")
    if pos < 0:
        return None
    count = text.count("\x00")
    what = "a NUL byte" if count == 1 else f"{count} NUL bytes"
    return BadRow(f"{where} contains {what} (\\x00), the first at column {pos + 1}; text never holds one, so {where} "
                  f"is damaged: remove {'it' if count == 1 else 'them'}, or {where}")


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
        items.append((num, _nul_row("the line", text) or _loads(text)))
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
        what = "a NUL byte (\\x00), which no text holds" if text[err.pos:err.pos + 1] == "\x00" else err.msg
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {what}. Fix the syntax "
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


def _allow_long_fields(size: int) -> None:
    """Let the csv module read a field as long as the whole file (its default limit is 131,072 characters).

    A long answer is legitimate, and its row is checked like any other: workbench.data.examples names a field over its
    limit as that row's problem and keeps the rest. The limit is the csv module's, for the whole process, so it only
    ever grows (under a lock: two uploads read at once must not lower it under each other)."""
    with _CSV_LIMIT_LOCK:
        if csv.field_size_limit() < size:
            csv.field_size_limit(min(size, 2**31 - 1))  # a C long on every platform


def _csv_row(header: list[str], record: list[str], delimiter: str) -> Any:
    if len(record) != len(header):
        return _ragged(len(record), len(header), delimiter)
    for cell in record:
        if "\x00" in cell:
            return _nul_row("the row", cell)
    return dict(zip(header, record))


def _read_csv(path: str, data: bytes, notes: list[str], delimiter: str) -> list[tuple[int, Any]]:
    text = _decode_all(path, data)
    _allow_long_fields(len(text) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
    items = [(i + 1, _csv_row(header, records[i], delimiter)) for i in filled[1:]]
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


def _looks_binary(data: bytes) -> bool:
    # Control bytes are rare in text in any encoding: a few (a stray NUL in one line) mark damaged lines, which are
    # reported one by one; many of them mark a binary file. A run of NULs at the end (a file cut short when a
    # program crashed, padded by the file system) is left out of the count: the lines before it are text.
    head = (data.rstrip(b"\x00") if data.endswith(b"\x00") else data)[:65536]
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in (9, 10, 12, 13))
    return controls > max(8, len(head) // 20)


def _refuse_known_binary(path: str, data: bytes) -> None:
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise DataError(f"{path}: this looks like a binary file, not text: {what}")


def _refuse_binary(path: str, data: bytes) -> None:
    if _looks_binary(data):
        raise DataError(f"{path}: this looks like a binary file, not text; use a .jsonl, .json, .csv or .parquet file")


# UTF-32's byte-order marks first: the UTF-32 LE mark (FF FE 00 00) starts with the UTF-16 LE one (FF FE).
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
              (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _sniff_wide(head: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, told by where the zero bytes fall; None when not clear.

    Text in an ASCII-based encoding has no zero bytes at all. UTF-32 has at least two in every 4 bytes, always in
    the same places (code points stop at 0x10FFFF); UTF-16 has one in most 2 bytes of ASCII (JSON punctuation, keys,
    digits), on the high byte's side."""
    size = len(head) // 4 * 4
    if size < 8:
        return None
    quarter = size // 4
    zeros = [head[k:size:4].count(0) for k in range(4)]
    if zeros[3] == quarter and zeros[2] >= quarter * 0.9 and zeros[0] < quarter // 2:
        return "utf-32-le"
    if zeros[0] == quarter and zeros[1] >= quarter * 0.9 and zeros[3] < quarter // 2:
        return "utf-32-be"
    even, odd = zeros[0] + zeros[2], zeros[1] + zeros[3]
    if odd >= quarter * 2 * 0.2 and even * 4 <= odd:
        return "utf-16-le"
    if even >= quarter * 2 * 0.2 and odd * 4 <= even:
        return "utf-16-be"
    return None


def _from_wide(path: str, data: bytes, notes: list[str]) -> bytes:
    """A UTF-16 or UTF-32 file converted to UTF-8 bytes (with a note saying so); any other file unchanged."""
    bom = next(((mark, codec) for mark, codec in _WIDE_BOMS if data.startswith(mark)), None)
    codec = bom[1] if bom else _sniff_wide(data[:65536])
    if codec is None:
        return data
    name = codec.upper().replace("-LE", " LE").replace("-BE", " BE")
    how = "its byte-order mark" if bom else "its zero bytes; it has no byte-order mark"
    start = len(bom[0]) if bom else 0
    try:
        text = data[start:].decode(codec)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: the file looks {name} encoded (told by {how}), but it is not valid {name} at "
                        f"byte {start + err.start} ({err.reason}); save the file as UTF-8") from None
    notes.append(f"the file was encoded as {name} (told by {how}); read it as such")
    # Lone surrogates cannot come out of a strict decode, so UTF-8 can hold every character.
    return text.encode("utf-8")


_HANGUL = re.compile("[\uac00-\ud7a3]")
CP949_NOTE = "the file was encoded as CP949/EUC-KR (Korean Windows/Excel); read it as such"


def _is_cp949(data: bytes, line_by_line: bool) -> bool:
    """True when a file that is not UTF-8 is Korean CP949/EUC-KR text (what Korean Excel saves as CSV).

    A line that is valid UTF-8 and not plain ASCII proves a UTF-8 file, whose broken lines are damage to report, not an
    encoding to guess. A JSONL file, whose broken lines are reported one by one and the rest kept, also needs at least
    half its lines to be in the other encoding: one odd line among UTF-8 lines is named, not guessed from."""
    try:
        text = data.decode("cp949")
    except UnicodeDecodeError:
        return False
    if not _HANGUL.search(text):
        return False
    lines = [line for line in data.splitlines() if line.strip()]
    foreign = [line for line in lines if not line.isascii()]
    for line in foreign:
        try:
            line.decode("utf-8")
            return False
        except UnicodeDecodeError:
            pass
    return not line_by_line or len(foreign) * 2 >= len(lines)


def _from_cp949(data: bytes, notes: list[str], line_by_line: bool) -> bytes:
    """A CP949/EUC-KR file as UTF-8 bytes (with a note); a UTF-8 file, or one of unclear encoding, unchanged."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    if not _is_cp949(data, line_by_line):
        return data  # its bad lines are named (JSONL), or the first one is (CSV, JSON), with a hint
    notes.append(CP949_NOTE)
    return data.decode("cp949").encode("utf-8")


def read_text(path: str) -> tuple[str, list[str]]:
    """A text file's text and notes on how it was read: UTF-8 (with or without a byte-order mark), UTF-16/32, or
    Korean CP949/EUC-KR as Korean Excel saves a CSV. Anything else raises DataError naming the line and a fix."""
    notes: list[str] = []
    data = _from_wide(path, _read_bytes(path), notes)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    data = _from_cp949(data, notes, line_by_line=False)
    return _decode_all(path, data), notes


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
    _refuse_known_binary(path, data)
    data = _from_wide(path, data, notes)  # before the binary check: UTF-16 and UTF-32 text is full of zero bytes
    _refuse_binary(path, data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        notes.append("removed a UTF-8 byte-order mark")
        if not data.strip():
            raise DataError(f"{path}: file is empty (only a byte-order mark); add one example per row")
    data = _from_cp949(data, notes, line_by_line=file_format == "jsonl")
    if b"\r\n" in data:
        notes.append("Windows line endings (CRLF) handled")
    if file_format == "jsonl":
        return file_format, _read_jsonl(data, notes), notes
    if file_format == "json":
        file_format, items = _read_json(path, data, notes)
        return file_format, items, notes
    return file_format, _read_csv(path, data, notes, "\t" if ext == ".tsv" else ","), notes
