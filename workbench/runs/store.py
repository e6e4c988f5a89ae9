"""Runs on disk: an SQLite index plus one folder per run.

    <root>/index.sqlite             one row per run: status, method, losses, timings, error
    <root>/<run_id>/config.yaml     the exact RunConfig
    <root>/<run_id>/metrics.jsonl   one JSON object per logged step (appended and flushed as training goes)
    <root>/<run_id>/adapter/        the trained weights in standard PEFT format
    <root>/<run_id>/result.json     the final summary
    <root>/<run_id>/.trainer.lock   an OS lock held by the one process that has the run queued or training;
    <root>/<run_id>/trainer.json    who holds it (see workbench.runs.lock)
    <root>/.trash/<run_id>/         a deleted run, whole, with its index row in record.json, until restored or
                                    the trash is emptied

The UI holds nothing the store does not: a page reload or an app restart reads everything back from here.
Whole files are written atomically (temp file, fsync, rename), so a crash never leaves a half-written file.
Every reader sees a run whose trainer is gone (its lock is free) as interrupted, whichever process asks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from workbench.classroom.access import SINGLE_USER, Viewer, not_yours
from workbench.config import dump_config, load_preset
from workbench.fsio import slugify, write_atomic
from workbench.paths import workbench_home
from workbench.runs.lock import LOCK_FILE, RunLock, is_free, read_holder

ACTIVE = ("queued", "running", "stopping")
TRASH = ".trash"
MAX_NAME = 120
RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9_-]{1,40}-[0-9a-f]{6}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, method TEXT NOT NULL, model TEXT NOT NULL, data_path TEXT NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0, train_loss REAL, val_loss REAL,
    seconds REAL NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0, trainable_params INTEGER,
    total_params INTEGER, error TEXT NOT NULL DEFAULT '', owner_pid INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '', shared INTEGER NOT NULL DEFAULT 0, started_at REAL, pinned_at REAL
);
"""
# Columns added after the first release, with their definitions: an older index gains them when opened.
ADDED_COLUMNS = {"owner": "TEXT NOT NULL DEFAULT ''", "shared": "INTEGER NOT NULL DEFAULT 0", "started_at": "REAL",
                 "pinned_at": "REAL"}


class StoreError(ValueError):
    """A run that does not exist or an unsafe run id."""


class RunBusyError(StoreError):
    """Another process (or another part of this one) has the run queued or training."""


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


@dataclass
class RunRecord:
    run_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    method: str
    model: str
    data_path: str
    steps: int = 0
    total_steps: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    seconds: float = 0.0
    tokens: int = 0
    trainable_params: int | None = None
    total_params: int | None = None
    error: str = ""
    owner_pid: int = 0
    # Classroom mode: the account that made the run ("" outside it: the single user's), whether the teacher shared it
    # with the class (everyone may read it), when it last started training, when the teacher moved it to the front.
    owner: str = ""
    shared: int = 0
    started_at: float | None = None
    pinned_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(RunRecord)]
INTERRUPTED = "the process that ran this was stopped before the run finished"


class RunStore:
    """The run index and folders under one root. Safe to share between threads and processes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._held: dict[str, RunLock] = {}  # the run locks this store holds, by run id
        with self._connect() as db:
            db.executescript(SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            for name, definition in ADDED_COLUMNS.items():
                if name not in present:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {definition}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / "index.sqlite", timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run; refuses ids that could point outside the store."""
        if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
            raise StoreError(f"invalid run id {run_id!r}; run ids look like 20260101-120000-lora-1a2b3c")
        return self.root / run_id

    def create_run(self, config: Any, name: str = "", claim: str = "", owner: str = "") -> RunRecord:
        """Register a new run (status 'queued') and write its config; `owner`: its account in classroom mode.

        claim: take the run's lock first (saying e.g. "queued"), so that no reader ever sees the new run without
        its trainer; the caller releases it when the run ends (`release`).
        """
        now = time.time()
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{slugify(config.method.name)}-" \
                 f"{secrets.token_hex(3)}"
        record = RunRecord(
            run_id=run_id, name=(name or config.name or run_id)[:MAX_NAME], status="queued", created_at=now,
            updated_at=now, method=config.method.name, model=config.model.name_or_path,
            data_path=config.data.path, owner_pid=os.getpid(), owner=owner,
        )
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True)
        write_atomic(folder / "config.yaml", dump_config(config))
        if claim:
            self.claim(run_id, claim)
        with self._lock, self._connect() as db:
            db.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                       [getattr(record, c) for c in COLUMNS])
        return record

    def update_run(self, run_id: str, **values: Any) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise StoreError(f"unknown run fields {sorted(unknown)}")
        self.run_dir(run_id)
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._lock, self._connect() as db:
            changed = db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values.values(), run_id])
            if changed.rowcount == 0:
                raise StoreError(f"no run {run_id!r} in {self.root}")

    def get_run(self, run_id: str) -> RunRecord:
        self.run_dir(run_id)
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        return self._settled(RunRecord(*row))

    def list_runs(self, viewer: Viewer = SINGLE_USER) -> list[RunRecord]:
        """Every run the viewer may see (in classroom mode: their own and the shared ones), newest first."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY created_at DESC").fetchall()
        records = [RunRecord(*row) for row in rows]
        return [self._settled(record) for record in records if viewer.sees(record.owner, record.shared)]

    def run_for(self, viewer: Viewer, run_id: str, change: bool = False) -> RunRecord:
        """The run, when the viewer may see it (change=True: change it); else the same refusal whether it exists or
        not, so a student learns nothing by guessing another's run id."""
        try:
            record = self.get_run(run_id)
        except StoreError:
            if viewer.in_class and not viewer.teacher:
                raise StoreError(not_yours("run")) from None
            raise
        allowed = viewer.changes(record.owner) if change else viewer.sees(record.owner, record.shared)
        if not allowed:
            raise StoreError(not_yours("run"))
        return record

    def waiting_runs(self) -> list[RunRecord]:
        """Runs the index says are queued, as written (whoever holds them), oldest first."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE status = 'queued' ORDER BY created_at")
            return [RunRecord(*row) for row in rows.fetchall()]

    def last_started(self) -> dict[str, float]:
        """When each owner's most recent run started training (the fair queue's turns)."""
        with self._connect() as db:
            rows = db.execute("SELECT owner, MAX(started_at) FROM runs WHERE started_at IS NOT NULL GROUP BY owner")
            return {owner: at for owner, at in rows.fetchall()}

    # ------------------------------------------------------------ one trainer per run

    def claim(self, run_id: str, what: str) -> None:
        """Take the run's lock for this process (queued or training it); RunBusyError names who has it instead.

        Claiming a run this store already holds only updates what it is doing.
        """
        folder = self.run_dir(run_id)
        with self._lock:
            lock = self._held.get(run_id) or RunLock(folder)
            if lock.take(what):
                self._held[run_id] = lock
                return
        holder = read_holder(folder)
        who = holder.describe() if holder else "another process"
        doing = "queued in" if holder and holder.what == "queued" else "being trained by"
        name = self._name_of(run_id)
        raise RunBusyError(f"run {name!r} ({run_id}) is {doing} {who}; stop it there first (Stop on the Train tab, "
                           "or Ctrl+C in the terminal that trains it), then try again")

    def release(self, run_id: str) -> None:
        """Let go of a run's lock (after its final status is written, so readers never see it active and free)."""
        with self._lock:
            lock = self._held.pop(run_id, None)
        if lock:
            lock.release()

    def get_run_raw(self, run_id: str) -> RunRecord:
        """The index row as written, without the liveness check."""
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        return RunRecord(*row)

    def _name_of(self, run_id: str) -> str:
        try:
            return self.get_run_raw(run_id).name
        except StoreError:
            return run_id

    def _settled(self, record: RunRecord) -> RunRecord:
        """A run that says it is queued or training but whose trainer is gone is interrupted; say so, once."""
        if record.status not in ACTIVE or self._alive(record):
            return record
        record.status, record.error = "interrupted", INTERRUPTED
        with self._lock, self._connect() as db:  # only if nobody changed it meanwhile
            db.execute("UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE run_id = ? AND status IN "
                       f"({', '.join('?' * len(ACTIVE))})", [record.status, record.error, time.time(),
                                                             record.run_id, *ACTIVE])
        return record

    def _alive(self, record: RunRecord) -> bool:
        if record.run_id in self._held:
            return True
        folder = self.root / record.run_id
        if (folder / LOCK_FILE).exists():
            return not is_free(folder)
        return _pid_alive(record.owner_pid)

    def load_config(self, run_id: str) -> Any:
        return load_preset(self.run_dir(run_id) / "config.yaml")

    def adapter_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "adapter"

    def append_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append logged rows and flush them to disk, so a crash keeps everything up to the last flush."""
        if not rows:
            return
        path = self.run_dir(run_id) / "metrics.jsonl"
        torn = path.is_file() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
        with open(path, "a", encoding="utf-8") as handle:
            if torn:  # a crash cut the last line: end it, so the next row starts on a line of its own
                handle.write("\n")
            handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())

    def read_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Logged rows of a run; a torn last line (power cut mid-append) is skipped."""
        path = self.run_dir(run_id) / "metrics.jsonl"
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def trim_metrics(self, run_id: str, last_step: int) -> None:
        """Keep only the rows up to `last_step` (a resumed run logs the steps after its checkpoint again)."""
        rows = [row for row in self.read_metrics(run_id) if row.get("step", 0) <= last_step]
        write_atomic(self.run_dir(run_id) / "metrics.jsonl",
                     "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))

    def write_json(self, run_id: str, name: str, payload: Any) -> Path:
        return write_atomic(self.run_dir(run_id) / name, json.dumps(payload, indent=2, ensure_ascii=False))

    def read_json(self, run_id: str, name: str) -> Any:
        path = self.run_dir(run_id) / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def mark_orphans_interrupted(self) -> list[str]:
        """Runs left 'queued' or 'running' by a process that is gone become 'interrupted' (every reader does this
        as it reads; this does it for all of them at once and says which)."""
        with self._connect() as db:
            active = [RunRecord(*row) for row in db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM runs WHERE status IN ({', '.join('?' * len(ACTIVE))})", ACTIVE)]
        return [r.run_id for r in active if self._settled(r).status == "interrupted"]

    def rename_run(self, run_id: str, name: str) -> RunRecord:
        """Give a run a new name (shown everywhere; rank sweeps group runs by their names)."""
        name = " ".join((name or "").split())
        if not name:
            raise StoreError("New name: empty; type the name the run should have")
        if len(name) > MAX_NAME:
            raise StoreError(f"New name: {len(name)} characters; use at most {MAX_NAME}")
        self.update_run(run_id, name=name)
        return self.get_run(run_id)

    def delete_run(self, run_id: str) -> Path | None:
        """Move a run, whole, to the trash (restore_run brings it back); its folder there, or None if it had none.

        A queued or training run is refused (stop it first), and so is a run whose adapter a queued or training
        run is about to continue from.
        """
        record = self.get_run(run_id)
        if record.status in ACTIVE:
            raise StoreError(f"run {record.name!r} is {record.status}; stop it first (Stop on the Train tab), "
                             "then delete it")
        folder = self.run_dir(run_id)
        for other in self.list_runs():
            if other.run_id != run_id and other.status in ACTIVE:
                try:
                    source = self.load_config(other.run_id).train.init_adapter.strip()
                except ValueError:
                    continue
                if source and (source == run_id or Path(source).resolve().is_relative_to(folder.resolve())):
                    raise StoreError(f"run {record.name!r} is the starting adapter of {other.name!r}, which is "
                                     f"{other.status}; delete it after that run ends")
        target = self.root / TRASH / run_id
        if target.exists():
            raise StoreError(f"the trash already holds a run {run_id!r}; empty the trash or restore that one first")
        if folder.is_dir():
            write_atomic(folder / "record.json", json.dumps(record.to_dict(), ensure_ascii=False, indent=2))
            target.parent.mkdir(exist_ok=True)
        with self._lock, self._connect() as db:  # the row goes only if the folder moved (else rolled back)
            db.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
            if folder.is_dir():
                os.replace(folder, target)
                return target
        return None

    def trash(self) -> list[tuple[RunRecord, float, int]]:
        """Deleted runs, the latest deleted first: (record, when deleted, bytes on disk)."""
        found = []
        for record_file in (self.root / TRASH).glob("*/record.json"):
            try:
                record = RunRecord(**json.loads(record_file.read_text(encoding="utf-8")))
            except (ValueError, TypeError):
                continue  # not a run this store deleted
            if record.run_id != record_file.parent.name or not RUN_ID_RE.fullmatch(record.run_id):
                continue  # its folder and its record disagree: leave it alone
            size = sum(f.stat().st_size for f in record_file.parent.rglob("*") if f.is_file())
            found.append((record, record_file.stat().st_mtime, size))
        return sorted(found, key=lambda item: -item[1])

    def restore_run(self, run_id: str) -> RunRecord:
        """Bring a deleted run back from the trash, as it was (a run cut off while active comes back interrupted)."""
        self.run_dir(run_id)  # checks the id
        source = self.root / TRASH / run_id
        if not (source / "record.json").is_file():
            raise StoreError(f"no run {run_id!r} in the trash")
        record = RunRecord(**json.loads((source / "record.json").read_text(encoding="utf-8")))
        if record.status in ACTIVE:
            record.status, record.error = "interrupted", record.error or "deleted before it finished"
        if self.run_dir(run_id).exists():
            raise StoreError(f"a run {run_id!r} is already stored; it cannot be restored over")
        with self._lock, self._connect() as db:
            db.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                       [getattr(record, c) for c in COLUMNS])
            os.replace(source, self.run_dir(run_id))
        (self.run_dir(run_id) / "record.json").unlink(missing_ok=True)
        return record

    def empty_trash(self, only: Iterable[str] | None = None) -> tuple[int, int]:
        """Delete the runs in the trash for good (`only`: just these of them): (runs deleted, bytes freed)."""
        keep = None if only is None else set(only)
        deleted = [item for item in self.trash() if keep is None or item[0].run_id in keep]
        for record, _when, _size in deleted:
            shutil.rmtree(self.root / TRASH / record.run_id, ignore_errors=True)
        return len(deleted), sum(size for _record, _when, size in deleted)

    def integrity_ok(self) -> bool:
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_store() -> RunStore:
    return RunStore(workbench_home() / "runs")
