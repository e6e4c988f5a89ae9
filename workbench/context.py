"""The application's shared parts and the plain-data answers the tabs display.

A `Workbench` owns the run store, the job runner and one chat engine per base model; it is the only state shared
between browser sessions. Each function here returns plain data; the UI maps it onto components.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.adapters import has_trained_weights
from workbench.chat import ChatEngine
from workbench.config import ModelConfig
from workbench.jobs import JobRunner
from workbench.store import RunRecord, RunStore, slugify
from workbench.votes import VoteStore

UPLOAD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


class Workbench:
    """Store + job queue + chat engines, created once per app (or per test)."""

    def __init__(self, home: str | Path, data_dirs: list[str | Path] | tuple[str | Path, ...] = ()) -> None:
        self.home = Path(home).expanduser()
        # Folders the operator allows the app to read data from (app.py --data-dir), besides samples and uploads.
        self.data_dirs = tuple(Path(folder).expanduser().resolve() for folder in data_dirs)
        self.store = RunStore(self.home / "runs")
        self.jobs = JobRunner(self.store)
        self.uploads = self.home / "uploads"
        self.exports = self.home / "exports"  # files offered for download (zips, CSVs): the only folder served
        self.votes = VoteStore(self.home / "votes.sqlite")  # blind A/B votes, shared by every session
        self._engines: dict[str, ChatEngine] = {}
        self._lock = threading.Lock()

    def engine(self, model: str) -> ChatEngine:
        """The chat engine of a base model; one per model, shared by every side and session."""
        with self._lock:
            if model not in self._engines:
                self._engines[model] = ChatEngine(ModelConfig(name_or_path=model))
            return self._engines[model]

    def save_upload(self, temp_path: str | Path) -> Path:
        """Keep an uploaded file under the workbench home (uploads vanish from temp dirs; runs refer to it)."""
        source = Path(temp_path)
        if source.suffix.lower() not in UPLOAD_SUFFIXES:
            raise ValueError(f"uploaded file {source.name!r} has an unsupported type; use one of: "
                             f"{', '.join(UPLOAD_SUFFIXES)}")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
        target = self.uploads / f"{slugify(source.stem, 60)}-{digest}{source.suffix.lower()}"
        if not target.is_file():
            self.uploads.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target

    def check_data_path(self, path: str | Path) -> str:
        """The data path a browser asked for, if the app may read it: a bundled sample (returned as given), or a file
        in the uploads folder or under a --data-dir folder (returned resolved). Anything else raises ValueError
        naming the path and the allowed sources.

        The app serves people who are not the operator: an absolute or ../ path would let them read (evaluate, train
        on) any file of the server. Symlinks and .. are resolved first, so neither can step out of a folder. The CLI
        runs as the operator and reads any path; it does not call this."""
        from workbench.samples import SAMPLE_PREFIX

        spec = os.fspath(path or "").strip()
        if spec.startswith(SAMPLE_PREFIX):  # only bundled names resolve (resolve_data_path checks the name)
            return spec
        allowed = (self.uploads.resolve(), *self.data_dirs)
        resolved = Path(spec).expanduser().resolve() if spec else None
        if resolved is not None and any(resolved.is_relative_to(folder) for folder in allowed):
            return str(resolved)
        folders = f" (now: {', '.join(map(str, self.data_dirs))})" if self.data_dirs else ""
        raise ValueError(f"Data file {spec or '(empty)'!r} is refused: the app reads data only from a bundled sample "
                         f"(sample:NAME), a file uploaded on the Data tab, or a file under a folder given with "
                         f"--data-dir{folders}. Upload the file on the Data tab, or start the app with "
                         "--data-dir FOLDER for the folder that holds it.")

    def new_export(self, prefix: str, suffix: str = ".csv") -> Path:
        """A fresh file name in the exports folder (the only one served for download), e.g. eval-<time>-<id>.csv."""
        self.exports.mkdir(parents=True, exist_ok=True)
        return self.exports / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}{suffix}"

    def adapters(self) -> list[RunRecord]:
        """Runs whose adapter can be chatted with (finished or stopped, adapter saved)."""
        return [r for r in self.store.list_runs() if has_trained_weights(self.store.adapter_dir(r.run_id))]

    def close(self, timeout: float = 60.0) -> bool:
        """Stop training (the run at its next step, saving what it learned; waiting ones cancelled) and wait up to
        `timeout` seconds for it. A worker thread cut off mid-step when the process exits could leave a run with no
        adapter, and makes torch abort ("terminate called without an active exception")."""
        return self.jobs.shutdown(timeout)


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

    from workbench.store import write_atomic

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


@lru_cache(maxsize=4)
def cached_tokenizer(model: str) -> Any:
    from workbench.models import load_tokenizer

    return load_tokenizer(ModelConfig(name_or_path=model))


PREFERENCE_NOTE = ("Preference pairs (prompt / chosen / rejected): data for DPO, which learns to prefer the chosen "
                   "answer over the rejected one. The Train tab switches its objective to DPO for this file; the SFT "
                   "objective needs instruction rows. Token lengths count the prompt and the chosen answer.")


@dataclass
class DataView:
    """What the Data tab shows about a chosen file and split."""

    summary: str
    good: int
    splits: dict[str, list[dict]] = field(default_factory=dict)
    # Token lengths per split for the chart: every example's, or a random sample of LENGTH_SAMPLE of a bigger split
    # (`sampled` says so); `truncated` is always counted over every example.
    lengths: dict[str, list[int]] = field(default_factory=dict)
    truncated: int = 0
    kind: str = "sft"  # or "preference": prompt/chosen/rejected pairs for DPO
    problems: list[dict] = field(default_factory=list)  # every bad row: its line (or item / row), field, reason
    sampled: bool = False


LENGTH_SAMPLE = 2_000  # examples per split whose lengths the chart shows: a histogram's shape needs no more
_MEASURED: dict[tuple, tuple] = {}  # the 8 newest _measured answers, oldest first
_MEASURED_LOCK = threading.Lock()


def _measured(path: str, _mtime_ns: int, _size: int, val_size: float, test_size: float, seed: int, model: str,
              kind: str, on_progress: Any = None) -> tuple[Any, str, dict[str, list], dict[str, Any]]:
    """(report, kind, splits, TokenLengths per split) of one version of a file, kept for the 8 newest; callers must
    not change them. on_progress(fraction, message) hears how far a new one is (a cached one is at once)."""
    from workbench.data import gc_paused, read_with_kind, split_examples
    from workbench.formatting import TokenLengths, length_bounds

    key = (path, _mtime_ns, _size, val_size, test_size, seed, model, kind)
    with _MEASURED_LOCK:
        if key in _MEASURED:
            _MEASURED[key] = _MEASURED.pop(key)  # now the newest
            return _MEASURED[key]

    def stage(low: float, high: float) -> Any:  # a part of the bar for one stage of the work
        return None if on_progress is None else (lambda done, message: on_progress(low + (high - low) * done, message))

    if on_progress is not None:
        on_progress(0.0, f"Reading {os.path.basename(path)}")
    report, kind = read_with_kind(path, kind=kind, on_progress=stage(0.0, 0.6))
    tokenizer = cached_tokenizer(model)
    examples = report.examples
    with gc_paused():  # splitting and measuring make an object or two per example too, none of them garbage
        # The split of the examples' positions is the split of the examples (split_examples only shuffles and cuts).
        # Byte bounds are taken in file order, where the examples lie in memory in order: 3 times faster than shuffled.
        order = split_examples(list(range(len(examples))), val_size, test_size, seed)
        bounds = length_bounds(examples, tokenizer)
        parts, lengths = {}, {}
        for i, (name, positions) in enumerate(zip(("train", "val", "test"), order)):
            parts[name] = [examples[k] for k in positions]
            part_bounds = None if bounds is None else [bounds[k] for k in positions]
            lengths[name] = TokenLengths(parts[name], tokenizer, part_bounds, LENGTH_SAMPLE,
                                         stage(0.65 + 0.1 * i, 0.75 + 0.1 * i))
    value = (report, kind, parts, lengths)
    with _MEASURED_LOCK:
        _MEASURED[key] = value
        while len(_MEASURED) > 8:
            _MEASURED.pop(next(iter(_MEASURED)))
    return value


def describe_data(path: str, val_size: float, test_size: float, seed: int, model: str = "embedded",
                  max_len: int = 256, preview: int = 8, kind: str = "auto", on_progress: Any = None) -> DataView:
    """Read, validate and split a data file; token lengths per split with the model's chat template.

    kind "auto" takes a file of preference pairs as DPO data and anything else as instructions (SFT), whose
    report then names the preference rows as bad; "sft" or "preference" asks for one kind. on_progress(fraction,
    message), if given, hears how far the check is (a UI's progress bar; the core knows no UI).
    """
    from workbench.data import preview_rows, read_examples
    from workbench.samples import resolve_data_path

    resolved = os.fspath(resolve_data_path(path))
    try:
        stat = os.stat(resolved)
    except OSError:
        read_examples(resolved, kind=kind)  # names the problem (no such file, a folder, ...)
        raise
    # Read once per version of the file and split: the Train tab's max length changing only re-counts the cuts.
    report, kind, parts, lengths = _measured(resolved, stat.st_mtime_ns, stat.st_size, val_size, test_size, seed,
                                             model, kind, on_progress)
    truncated = 0
    for i, counts in enumerate(lengths.values()):  # only examples that may be over max_len are counted, once each
        bar = None if on_progress is None else (lambda done, text, i=i: on_progress(0.95 + (i + done) / 60, text))
        truncated += counts.count_over(max_len, bar)
    sizes = ", ".join(f"{name} {len(examples)}" for name, examples in parts.items())
    note = f"\n\n{PREFERENCE_NOTE}" if kind == "preference" else ""
    summary = f"{report.summary()}{note}\n\nSplit (seed {seed}): {sizes}."
    if truncated:
        summary += f"\n{truncated} example(s) are longer than max_seq_len {max_len}; their prompts will be cut."
    sampled = any(counts.sampled < len(examples) for counts, examples in zip(lengths.values(), parts.values()))
    if sampled:
        summary += (f"\nThe token-length chart shows a random sample of {LENGTH_SAMPLE:,} examples per split; the "
                    "count of examples over max_seq_len is over all of them.")
    problems = [{report.unit: p.line, "field": p.field or "", "reason": p.reason} for p in report.problems]
    if on_progress is not None:
        on_progress(1.0, "Checked")
    return DataView(summary=summary, good=report.good, truncated=truncated, kind=kind, sampled=sampled,
                    lengths={name: counts.sample() for name, counts in lengths.items()},
                    splits={name: preview_rows(examples, preview) for name, examples in parts.items()},
                    problems=problems)
