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

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home).expanduser()
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


def write_csv(path: Path, frame: Any) -> str:
    """A table as a CSV, written whole; the byte-order mark lets Excel show Hangul instead of mojibake."""
    from workbench.store import write_atomic

    return str(write_atomic(path, frame.to_csv(index=False).encode("utf-8-sig")))


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
    lengths: dict[str, list[int]] = field(default_factory=dict)
    truncated: int = 0
    kind: str = "sft"  # or "preference": prompt/chosen/rejected pairs for DPO
    problems: list[dict] = field(default_factory=list)  # every bad row: its line (or item / row), field, reason


@lru_cache(maxsize=8)
def _measured(path: str, _mtime_ns: int, _size: int, val_size: float, test_size: float, seed: int, model: str,
              kind: str) -> tuple[Any, dict[str, list], dict[str, list[int]]]:
    """(report, splits, token lengths per split) of one version of a file; callers must not change them."""
    from workbench.data import read_examples, split_examples
    from workbench.formatting import encode_examples

    report = read_examples(path, kind=kind)
    parts = dict(zip(("train", "val", "test"), split_examples(report.examples, val_size, test_size, seed)))
    tokenizer = cached_tokenizer(model)
    lengths = {name: encode_examples(examples, tokenizer, 1_000_000)[1].lengths for name, examples in parts.items()}
    return report, parts, lengths


def describe_data(path: str, val_size: float, test_size: float, seed: int, model: str = "embedded",
                  max_len: int = 256, preview: int = 8, kind: str = "auto") -> DataView:
    """Read, validate and split a data file; token lengths per split with the model's chat template.

    kind "auto" takes a file of preference pairs as DPO data and anything else as instructions (SFT), whose
    report then names the preference rows as bad; "sft" or "preference" asks for one kind.
    """
    from workbench.data import file_kind, preview_rows, read_examples
    from workbench.samples import resolve_data_path

    resolved = os.fspath(resolve_data_path(path))
    kind = file_kind(resolved) if kind == "auto" else kind
    try:
        stat = os.stat(resolved)
    except OSError:
        read_examples(resolved, kind=kind)  # names the problem (no such file, a folder, ...)
        raise
    # Read once per version of the file and split: the Train tab's max length changing only re-counts the cuts.
    report, parts, lengths = _measured(resolved, stat.st_mtime_ns, stat.st_size, val_size, test_size, seed, model,
                                       kind)
    truncated = sum(1 for values in lengths.values() for n in values if n > max_len)
    sizes = ", ".join(f"{name} {len(examples)}" for name, examples in parts.items())
    note = f"\n\n{PREFERENCE_NOTE}" if kind == "preference" else ""
    summary = f"{report.summary()}{note}\n\nSplit (seed {seed}): {sizes}."
    if truncated:
        summary += f"\n{truncated} example(s) are longer than max_seq_len {max_len}; their prompts will be cut."
    problems = [{report.unit: p.line, "field": p.field or "", "reason": p.reason} for p in report.problems]
    return DataView(summary=summary, good=report.good, lengths=lengths, truncated=truncated, kind=kind,
                    splits={name: preview_rows(examples, preview) for name, examples in parts.items()},
                    problems=problems)
