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
from pathlib import Path

from workbench.arena.votes import VoteStore
from workbench.config import ModelConfig
from workbench.data.samples import SAMPLE_PREFIX
from workbench.fsio import slugify
from workbench.generate.engine import ChatEngine
from workbench.models.adapters import has_trained_weights
from workbench.runs.store import RunRecord, RunStore
from workbench.train.jobs import JobRunner

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


