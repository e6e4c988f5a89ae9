"""Writing files safely: whole or not at all (write_atomic), CSVs a spreadsheet cannot run
(write_csv), names fit for a file (slugify). A leaf: it imports nothing of the workbench.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write a whole file so that readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def slugify(text: str, limit: int = 40) -> str:
    """Lower-case letters, digits, '-' and '_' only: safe in a folder name whatever the user typed."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return slug[:limit] or "run"


# A text cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets (`=HYPERLINK(...)`,
# `=cmd|' /C calc'!A0`, `@SUM(A1)`): a prompt, an answer or a run name in a downloaded table must not be.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text cell that a spreadsheet would run, as text: a leading single quote (OWASP's CSV injection advice).
    Numbers written as text ("-0.5") cannot run and stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return f"'{value}"


def write_csv(path: Path, frame: Any) -> str:
    """A table as a CSV, written whole; every CSV the app writes goes through here. Text cells (and headers) that a
    spreadsheet would run as formulas are neutralised; number columns are left alone. The byte-order mark lets
    Excel show Hangul instead of mojibake."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    safe = frame.copy()
    for position in range(safe.shape[1]):  # by position: two columns may share a name
        column = safe.iloc[:, position]
        if is_object_dtype(column) or is_string_dtype(column):
            safe.isetitem(position, column.map(_inert))
    safe.columns = [_inert(name) for name in safe.columns]
    # CRLF rows (RFC 4180): Python's csv quotes a cell holding a line-end character only if it is in the row end, so
    # with "\n" rows a bare "\r" in an answer would split its row in a spreadsheet.
    text = safe.to_csv(index=False, lineterminator="\r\n")
    return str(write_atomic(path, text.encode("utf-8-sig")))
