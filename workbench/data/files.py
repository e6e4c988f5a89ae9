"""Data files into raw rows: the file formats, their encodings and their framing.

read_rows(path) reads a .jsonl/.ndjson, .json, .csv/.tsv or .parquet file into (line number, row) pairs, where
a row is a dict of the row's fields or a BadRow saying why that one line could not be read (bad UTF-8, a NUL byte,
broken JSON, a ragged CSV line). Only a file that cannot be used at all raises DataError. Turning rows into examples
is workbench.data.examples's part.

Text files may be UTF-8 (with or without a byte-order mark), UTF-16 or UTF-32 (told by their byte-order mark, or
without one by where their zero bytes fall) or Korean CP949/EUC-KR (what Korean Excel saves); an encoding other than
UTF-8 is read as such and named in a note. A binary file (Parquet without its extension, ZIP, gzip, mostly control
bytes) is refused with what it looks like.

Every sentence here (a DataError's, a BadRow's reason, a note) is a catalogue Message (workbench/i18n, `core.data.*`),
put into a language by whoever shows it: `str()` gives the environment's, `say(error, lang)` any.
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

from workbench.i18n import Message, message

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet"}
SUFFIXES = tuple(_EXTENSIONS)  # the file types a data file may have: uploads and file pickers offer these


TURN = '{"role": ..., "content": ...}'  # how a chat turn looks, in messages that show one
LAYOUTS = message("core.data.layouts", turn=TURN)


_COLUMN_SETS = ({"instruction", "output"}, {"prompt", "completion"}, {"messages"}, {"conversations"},
                {"prompt", "chosen", "rejected"})


# Signatures of common non-text files, so the error can say what the file really is (core.data.magic.<kind>).
_MAGIC = {b"PAR1": "parquet", b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip"}
# The keys of every layout: an object that has one of them is an example, not a file of examples.
_EXAMPLE_KEYS = {"instruction", "output", "prompt", "completion", "messages", "conversations", "chosen", "rejected"}


_CSV_LIMIT_LOCK = threading.Lock()


class DataError(ValueError):
    """A file that cannot be used at all. Message names the file, what was wrong and the fix."""


class BadRow(Exception):
    """One row is unusable; carries the field at fault and why (a Message; a RowProblem once collected)."""

    def __init__(self, why: Message, field: str | None = None):
        super().__init__(why)
        self.why, self.field = why, field

    @property
    def reason(self) -> str:
        """Why, in the environment's language."""
        return str(self.why)


def type_name(value: Any) -> Message:
    """What kind of JSON value `value` is, in words ("a number", "text", ...)."""
    if value is None:
        return message("core.type.null")
    if isinstance(value, bool):
        return message("core.type.boolean")
    # Never repr() numbers: a huge int has no str() in Python 3.11+ (digit limit) and would raise.
    kinds = {int: "number", float: "number", str: "text", list: "list", dict: "object", bytes: "bytes"}
    kind = kinds.get(type(value))
    return message(f"core.type.{kind}") if kind else message("core.type.other", name=type(value).__name__)


def show(value: Any, limit: int = 40) -> str | Message:
    """Safe, short rendering of user data inside a message (escapes lone surrogates); a value that is not text is
    named by its kind."""
    if not isinstance(value, str):
        return type_name(value)
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def keys_of(row: dict) -> str | Message:
    return ", ".join(str(show(k, 30)) for k in list(row)[:20]) or message("core.none")


def _encoding_hint(raw: bytes) -> Message:
    try:
        text = raw.decode("cp949")
        if any("\uac00" <= ch <= "\ud7a3" for ch in text):
            return message("core.data.hint.cp949")
    except UnicodeDecodeError:
        pass
    try:
        raw.decode("cp1252")
        return message("core.data.hint.cp1252")
    except UnicodeDecodeError:
        return message("core.data.hint.unknown")


def _utf8_reason(where: Message, raw_line: bytes, pos: int) -> Message:
    return message("core.data.not_utf8", where=where, byte=f"{raw_line[pos]:02x}", position=pos,
                   hint=_encoding_hint(raw_line))


def _decode_all(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        line_no = data.count(b"\n", 0, err.start) + 1
        where = message("core.data.where.file_line", path=path, line=line_no)
        raise DataError(_utf8_reason(where, data[start:len(data) if end < 0 else end], err.start - start)) from None


def _nul_row(where: str, text: str) -> BadRow | None:
    """A BadRow for text holding a NUL character, which no text file has: the line (`where` "line") or the row
    ("row") was damaged, or pasted from a binary file. None for text without one."""
    pos = text.find("\x00")
    if pos < 0:
        return None
    count = text.count("\x00")
    key = "core.data.nul.one" if count == 1 else "core.data.nul.many"
    return BadRow(message(key, where=message(f"core.data.where.the_{where}"), count=count, column=pos + 1))


def _loads(text: str) -> Any:
    """Parse one JSON value; a failure comes back as a BadRow instead of raising."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        return BadRow(message("core.data.json.row_invalid", error=err.msg, column=err.colno))
    except RecursionError:
        return BadRow(message("core.data.json.row_too_deep"))
    except ValueError as err:  # e.g. an integer with more digits than Python allows
        return BadRow(message("core.data.json.row_error", error=show(str(err), 120)))


def _plural(key: str, count: int) -> Message:
    """`key.one` for 1, `key.many` otherwise, with the count (English has a plural; Korean says it the same)."""
    return message(f"{key}.{'one' if count == 1 else 'many'}", count=count)


def _read_jsonl(data: bytes, notes: list[Message]) -> list[tuple[int, Any]]:
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
            items.append((num, BadRow(_utf8_reason(message("core.data.where.line", line=num), raw, err.start))))
            continue
        if not text.strip():
            blank += 1
            continue
        items.append((num, _nul_row("line", text) or _loads(text)))
    if blank:
        notes.append(_plural("core.data.note.blank_lines", blank))
    return items


def _unwrap(path: str, doc: Any, notes: list[Message]) -> list:
    if isinstance(doc, list):
        if not doc:
            raise DataError(message("core.data.json.empty_list", path=path))
        return doc
    if isinstance(doc, dict):
        lists = [k for k, v in doc.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)]
        if len(lists) == 1:
            notes.append(message("core.data.note.rows_under_key", field=show(lists[0])))
            return doc[lists[0]]
        hint = message("core.data.json.single_example") if _EXAMPLE_KEYS & set(doc) else ""
        raise DataError(message("core.data.json.one_object", path=path, example="[{...}, {...}]", hint=hint,
                                keys=keys_of(doc)))
    raise DataError(message("core.data.json.not_a_list", path=path, kind=type_name(doc)))


def _read_json(path: str, data: bytes, notes: list[Message]) -> tuple[str, list[tuple[int, Any]]]:
    text = _decode_all(path, data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and "\n" in text.strip():
            # A common mix-up: JSON Lines saved with a .json extension. Read it the way it was written.
            notes.append(message("core.data.note.json_lines"))
            return "jsonl", _read_jsonl(data, notes)
        what = message("core.data.json.nul") if text[err.pos:err.pos + 1] == "\x00" else err.msg
        raise DataError(message("core.data.json.invalid", path=path, line=err.lineno, column=err.colno,
                                error=what)) from None
    except RecursionError:
        raise DataError(message("core.data.json.too_deep", path=path)) from None
    except ValueError as err:
        raise DataError(message("core.data.json.error", path=path, error=show(str(err), 120))) from None
    return "json", list(enumerate(_unwrap(path, doc, notes), 1))


def _check_columns(path: str, columns: list[str]) -> None:
    if not any(need <= set(columns) for need in _COLUMN_SETS):
        found = ", ".join(str(show(c, 30)) for c in columns[:30]) or message("core.none")
        raise DataError(message("core.data.columns_unknown", path=path, columns=found, layouts=LAYOUTS))


def _ragged(count: int, expected: int, delimiter: str) -> BadRow:
    sep = message("core.data.sep.tab" if delimiter == "\t" else "core.data.sep.comma")
    fix = (message("core.data.ragged.unquoted", sep=sep) if count > expected
           else message("core.data.ragged.missing"))
    return BadRow(message("core.data.ragged", count=count, expected=expected, fix=fix))


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
            return _nul_row("row", cell)
    return dict(zip(header, record))


def _read_csv(path: str, data: bytes, notes: list[Message], delimiter: str) -> list[tuple[int, Any]]:
    text = _decode_all(path, data)
    _allow_long_fields(len(text) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = list(reader)
    except csv.Error as err:
        raise DataError(message("core.data.csv.unparsable", path=path, line=reader.line_num, error=str(err))) from None
    filled = [i for i, rec in enumerate(records) if any(cell.strip() for cell in rec)]
    if not filled:
        raise DataError(message("core.data.csv.empty", path=path))
    header = [cell.strip() for cell in records[filled[0]]]
    if header != records[filled[0]]:
        notes.append(message("core.data.note.column_spaces"))
    twice = [h for h, n in Counter(header).items() if n > 1]
    if twice:
        names = ", ".join(str(show(h)) for h in twice)
        raise DataError(message("core.data.csv.column_twice", path=path, columns=names))
    _check_columns(path, header)
    items = [(i + 1, _csv_row(header, records[i], delimiter)) for i in filled[1:]]
    if not items:
        raise DataError(message("core.data.csv.no_rows", path=path, header=", ".join(header)))
    blank = len(records) - len(filled)
    if blank:
        notes.append(_plural("core.data.note.blank_rows", blank))
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
        raise DataError(message("core.data.parquet.unreadable", path=path, error=show(str(err), 200))) from err
    if table.num_rows == 0:
        raise DataError(message("core.data.parquet.no_rows", path=path, columns=", ".join(table.column_names)))
    _check_columns(path, table.column_names)
    return [(i, {k: v for k, v in row.items() if not _is_missing(v)}) for i, row in enumerate(table.to_pylist(), 1)]


def _read_bytes(path: str, limit: int = -1) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except FileNotFoundError:
        raise DataError(message("core.data.file.not_found", path=path)) from None
    except IsADirectoryError:
        raise DataError(message("core.data.file.folder", path=path)) from None
    except OSError as err:
        raise DataError(message("core.data.file.unreadable", path=path, error=err.strerror or str(err))) from None


def _looks_binary(data: bytes) -> bool:
    # Control bytes are rare in text in any encoding: a few (a stray NUL in one line) mark damaged lines, which are
    # reported one by one; many of them mark a binary file. A run of NULs at the end (a file cut short when a
    # program crashed, padded by the file system) is left out of the count: the lines before it are text.
    head = (data.rstrip(b"\x00") if data.endswith(b"\x00") else data)[:65536]
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in (9, 10, 12, 13))
    return controls > max(8, len(head) // 20)


def _refuse_known_binary(path: str, data: bytes) -> None:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            raise DataError(message("core.data.binary.known", path=path, what=message(f"core.data.magic.{kind}")))


def _refuse_binary(path: str, data: bytes) -> None:
    if _looks_binary(data):
        raise DataError(message("core.data.binary", path=path))


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


def _from_wide(path: str, data: bytes, notes: list[Message]) -> bytes:
    """A UTF-16 or UTF-32 file converted to UTF-8 bytes (with a note saying so); any other file unchanged."""
    bom = next(((mark, codec) for mark, codec in _WIDE_BOMS if data.startswith(mark)), None)
    codec = bom[1] if bom else _sniff_wide(data[:65536])
    if codec is None:
        return data
    name = codec.upper().replace("-LE", " LE").replace("-BE", " BE")
    how = message("core.data.told_by.bom" if bom else "core.data.told_by.zeros")
    start = len(bom[0]) if bom else 0
    try:
        text = data[start:].decode(codec)
    except UnicodeDecodeError as err:
        raise DataError(message("core.data.wide.invalid", path=path, name=name, how=how, byte=start + err.start,
                                error=err.reason)) from None
    notes.append(message("core.data.note.wide", name=name, how=how))
    # Lone surrogates cannot come out of a strict decode, so UTF-8 can hold every character.
    return text.encode("utf-8")


_HANGUL = re.compile("[\uac00-\ud7a3]")
CP949_NOTE = message("core.data.note.cp949")


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


def _from_cp949(data: bytes, notes: list[Message], line_by_line: bool) -> bytes:
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
    """A text file's text and notes on how it was read (in the environment's language): UTF-8 (with or without a
    byte-order mark), UTF-16/32, or Korean CP949/EUC-KR as Korean Excel saves a CSV. Anything else raises DataError
    naming the line and a fix."""
    notes: list[Message] = []
    data = _from_wide(path, _read_bytes(path), notes)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    data = _from_cp949(data, notes, line_by_line=False)
    return _decode_all(path, data), [str(note) for note in notes]


def read_rows(path: str) -> tuple[str, list[tuple[int, Any]], list[Message]]:
    """(file format, (line, row) pairs, notes on what was fixed along the way) of a data file."""
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise DataError(message("core.data.file.unsupported", path=path,
                                ext=repr(ext) if ext else message("core.data.file.no_extension")))
    file_format, notes = _EXTENSIONS[ext], []
    # Parquet is read by pyarrow; only peek at it here, to report a missing or empty file the same way.
    data = _read_bytes(path, 4 if file_format == "parquet" else -1)
    if not data.strip():
        raise DataError(message("core.data.file.empty", path=path))
    if file_format == "parquet":
        return file_format, _read_parquet(path), notes
    _refuse_known_binary(path, data)
    data = _from_wide(path, data, notes)  # before the binary check: UTF-16 and UTF-32 text is full of zero bytes
    _refuse_binary(path, data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        notes.append(message("core.data.note.bom"))
        if not data.strip():
            raise DataError(message("core.data.file.only_bom", path=path))
    data = _from_cp949(data, notes, line_by_line=file_format == "jsonl")
    if b"\r\n" in data:
        notes.append(message("core.data.note.crlf"))
    if file_format == "jsonl":
        return file_format, _read_jsonl(data, notes), notes
    if file_format == "json":
        file_format, items = _read_json(path, data, notes)
        return file_format, items, notes
    return file_format, _read_csv(path, data, notes, "\t" if ext == ".tsv" else ","), notes
