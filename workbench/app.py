"""The application's shared parts and the plain-data answers the tabs display.

A `Workbench` owns the run store, the job runner and one chat engine per base model; it is the only state shared
between browser sessions. In classroom mode (`accounts` given) it also knows who may do what: the functions that
list or take runs and files take the `Viewer` behind the request (default: the single user, who may do everything).
Each function here returns plain data; the UI maps it onto components. What every tab asks about runs is answered
here once: how a run is labelled (`run_label`, `run_choices`), whether chosen runs can be served together
(`trained_runs`), and which errors are a person's to fix (`USER_ERRORS`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from workbench.arena.votes import VoteStore
from workbench.classroom.access import SINGLE_USER, Viewer, not_yours
from workbench.classroom.accounts import TEACHER, Account, check_login
from workbench.config import ConfigError, ModelConfig
from workbench.data.files import SUFFIXES
from workbench.data.samples import SAMPLE_PREFIX
from workbench.fsio import slugify
from workbench.generate.engine import ChatEngine
from workbench.models.adapters import has_trained_weights
from workbench.runs.store import RunRecord, RunStore, StoreError
from workbench.train.jobs import JobRunner

# What a person's choice, file or setting can cause: the UI shows these as a message that names the field, never
# as a trace. Anything else is a fault of the app and is reported as one.
USER_ERRORS = (ConfigError, StoreError, ValueError, OSError, RuntimeError)
NO_DATA = ("No data chosen (the last upload could not be used): pick a bundled sample or upload a fixed file on the "
           "Data tab")


class Workbench:
    """Store + job queue + chat engines, created once per app (or per test)."""

    def __init__(self, home: str | Path, data_dirs: list[str | Path] | tuple[str | Path, ...] = (),
                 accounts: dict[str, Account] | None = None) -> None:
        self.home = Path(home).expanduser()
        self.accounts = accounts  # classroom mode's accounts by user name; None = the single-user workbench
        # Folders the operator allows the app to read data from (app.py --data-dir), besides samples and uploads.
        self.data_dirs = tuple(Path(folder).expanduser().resolve() for folder in data_dirs)
        self.store = RunStore(self.home / "runs")
        self.jobs = JobRunner(self.store)
        self.uploads = self.home / "uploads"
        self.exports = self.home / "exports"  # files offered for download (zips, CSVs): the only folder served
        self.votes = VoteStore(self.home / "votes.sqlite")  # blind A/B votes, shared by every session
        self._engines: dict[str, ChatEngine] = {}
        self._lock = threading.Lock()

    def viewer(self, user: str | None) -> Viewer:
        """The Viewer behind a request's logged-in user (the single user outside classroom mode). A name that is not
        an account gets a student's rights under that name, never more."""
        if self.accounts is None:
            return SINGLE_USER
        if not user:
            raise ValueError(not_yours("run"))
        account = self.accounts.get(user)
        return Viewer(user, teacher=account is not None and account.role == TEACHER)

    def login(self, user: str, password: str) -> bool:
        """Whether a classroom account's password is right (the app's login form asks this)."""
        return self.accounts is not None and check_login(self.accounts, user, password)

    def upload_dir(self, viewer: Viewer = SINGLE_USER) -> Path:
        """Where a viewer's uploads are kept: the shared uploads folder, or one per student in classroom mode."""
        return self.uploads / slugify(viewer.user, 60) if viewer.in_class and not viewer.teacher else self.uploads

    def engine(self, model: str) -> ChatEngine:
        """The chat engine of a base model; one per model, shared by every side and session."""
        with self._lock:
            if model not in self._engines:
                self._engines[model] = ChatEngine(ModelConfig(name_or_path=model))
            return self._engines[model]

    def save_upload(self, temp_path: str | Path, viewer: Viewer = SINGLE_USER) -> Path:
        """Keep an uploaded file under the workbench home (uploads vanish from temp dirs; runs refer to it), in the
        viewer's own folder in classroom mode."""
        source = Path(temp_path)
        if source.suffix.lower() not in SUFFIXES:
            raise ValueError(f"uploaded file {source.name!r} has an unsupported type; use one of: "
                             f"{', '.join(SUFFIXES)}")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
        folder = self.upload_dir(viewer)
        target = folder / f"{slugify(source.stem, 60)}-{digest}{source.suffix.lower()}"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target

    def check_data_path(self, path: str | Path, viewer: Viewer = SINGLE_USER) -> str:
        """The data path a browser asked for, if the app may read it: a bundled sample (returned as given), or a file
        in the uploads folder or under a --data-dir folder (returned resolved). Anything else raises ValueError
        naming the path and the allowed sources.

        The app serves people who are not the operator: an absolute or ../ path would let them read (evaluate, train
        on) any file of the server. Symlinks and .. are resolved first, so neither can step out of a folder. The CLI
        runs as the operator and reads any path; it does not call this. In classroom mode a student reads only their
        own uploads (and the samples and --data-dir folders the teacher set up); the teacher reads every upload."""
        spec = os.fspath(path or "").strip()
        if not spec:
            raise ValueError(NO_DATA)
        if spec.startswith(SAMPLE_PREFIX):  # only bundled names resolve (resolve_data_path checks the name)
            return spec
        allowed = (self.upload_dir(viewer).resolve(), *self.data_dirs)
        resolved = Path(spec).expanduser().resolve() if spec else None
        if resolved is not None and any(resolved.is_relative_to(folder) for folder in allowed):
            return str(resolved)
        folders = f" (now: {', '.join(map(str, self.data_dirs))})" if self.data_dirs else ""
        raise ValueError(f"Data file {spec or '(empty)'!r} is refused: the app reads data only from a bundled sample "
                         f"(sample:NAME), a file uploaded on the Data tab, or a file under a folder given with "
                         f"--data-dir{folders}. Upload the file on the Data tab, or start the app with "
                         "--data-dir FOLDER for the folder that holds it.")

    def browser_secret(self) -> str:
        """The key browsers' saved choices are encrypted with: made once per workbench home and kept (owner-only), so
        the choices a browser saved still open after the app restarts."""
        path = self.home / "browser-secret"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            self.home.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(24)
            draft = path.with_name(f".browser-secret.{os.getpid()}.{threading.get_ident()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secret)
            try:
                os.link(draft, path)  # whole or not at all; a second process finds the first one's key
            except FileExistsError:
                secret = path.read_text(encoding="utf-8").strip()
            finally:
                draft.unlink()
            return secret

    def new_export(self, prefix: str, suffix: str = ".csv") -> Path:
        """A fresh file name in the exports folder (the only one served for download), e.g. eval-<time>-<id>.csv."""
        self.exports.mkdir(parents=True, exist_ok=True)
        return self.exports / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}{suffix}"

    def adapters(self, viewer: Viewer = SINGLE_USER) -> list[RunRecord]:
        """Runs the viewer may see whose adapter can be chatted with (finished or stopped, adapter saved)."""
        return [r for r in self.store.list_runs(viewer) if has_trained_weights(self.store.adapter_dir(r.run_id))]

    def run_label(self, run_id: str) -> str:
        """A run's label where it must stay the same across sessions (Compare panes, Arena votes and leaderboards):
        its name (not unique) and the random tail of its id (unique). Charts and tables use `run_labels`."""
        name = self.store.get_run(run_id).name
        return run_id if name == run_id else f"{name} · {run_id.rsplit('-', 1)[-1]}"

    def run_labels(self, run_ids: Iterable[str], taken: Iterable[str] = ("base",)) -> dict[str, str]:
        """{run id: short label} for the runs shown together in one chart or table: each run's name, with the tail
        of its id only where two names (or a `taken` label such as "base") would clash. A run listed twice is
        labelled once."""
        labels: dict[str, str] = {}
        used = set(taken)
        for run_id in dict.fromkeys(run_ids):
            name = self.store.get_run(run_id).name
            labels[run_id] = name if name not in used else f"{name} ({run_id[-6:]})"
            used.add(labels[run_id])
        return labels

    def run_choices(self, trained: bool = False, viewer: Viewer = SINGLE_USER) -> list[tuple[str, str]]:
        """Runs as (label, run id) for a picker, newest first: every stored run, or only those with a saved adapter
        (`trained`, labelled with their step count). No status in a label: it would go stale in an open list."""
        if trained:
            return [(f"{r.name} · {r.method} · {r.steps} steps", r.run_id) for r in self.adapters(viewer)]
        return [(f"{r.name} · {r.method}", r.run_id) for r in self.store.list_runs(viewer)]

    def trained_runs(self, picks: Iterable[tuple[str, str]],
                     viewer: Viewer = SINGLE_USER) -> tuple[list[RunRecord], str | None]:
        """The runs of (run id, the field that chose it) pairs, each checked to exist and to have a saved adapter,
        and the one base model they share (None when there are none). One copy of a base model serves every
        adapter on it, so runs of different base models are refused. Errors name the field and the way out."""
        records, models = [], {}
        for run_id, where in picks:
            try:
                record = self.store.run_for(viewer, run_id)
            except StoreError as exc:
                raise ValueError(f"{where}: {exc}; choose a run from the list (↻ Refresh runs)") from None
            if not has_trained_weights(self.store.adapter_dir(run_id)):
                raise ValueError(f"{where}: run {record.name!r} ({run_id}) has no saved adapter (status "
                                 f"{record.status}); choose a finished or stopped run")
            records.append(record)
            models[f"{where} {record.name!r}"] = record.model
        if len(set(models.values())) > 1:
            listed = ", ".join(f"{where}: {model}" for where, model in models.items())
            raise ValueError(f"the chosen runs were trained on different base models ({listed}); one copy of the "
                             "base model serves every side, so choose runs of one base model")
        return records, next(iter(models.values()), None)

    def close(self, timeout: float = 60.0) -> bool:
        """Stop training (the run at its next step, saving what it learned; waiting ones stay queued and wait again
        in the same order when the app starts next) and wait up to
        `timeout` seconds for it. A worker thread cut off mid-step when the process exits could leave a run with no
        adapter, and makes torch abort ("terminate called without an active exception")."""
        return self.jobs.shutdown(timeout, keep_waiting=True)


