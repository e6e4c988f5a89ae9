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
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from workbench.arena.votes import VoteStore
from workbench.classroom.access import NOBODY, SINGLE_USER, Viewer, not_yours
from workbench.classroom.accounts import TEACHER, Account, check_login
from workbench.config import ConfigError, ModelConfig, RunConfig
from workbench.data.files import SUFFIXES
from workbench.data.samples import SAMPLE_PREFIX
from workbench.fsio import slugify, write_atomic
from workbench.generate.engine import ChatEngine
from workbench.models.adapters import has_trained_weights
from workbench.runs.scoped import ScopedStore
from workbench.runs.store import RUN_ID_RE, RunRecord, RunStore, StoreError
from workbench.train.jobs import JobRunner

# What a person's choice, file or setting can cause: the UI shows these as a message that names the field, never
# as a trace. Anything else is a fault of the app and is reported as one.
USER_ERRORS = (ConfigError, StoreError, ValueError, OSError, RuntimeError)
NO_DATA = ("No data chosen (the last upload could not be used): pick a bundled sample or upload a fixed file on the "
           "Data tab")


class Workbench:
    """Store + job queue + chat engines, created once per app (or per test)."""

    def __init__(self, home: str | Path, data_dirs: list[str | Path] | tuple[str | Path, ...] = (),
                 accounts: dict[str, Account] | None = None, max_waiting: int = 0, step_budget: int = 0) -> None:
        self.home = Path(home).expanduser()
        self.accounts = accounts  # classroom mode's accounts by user name; None = the single-user workbench
        # Classroom mode: the most steps a student's run may take (0 = as its settings say): the app's flag, else
        # what the teacher last set in the Class tab.
        self.step_budget = step_budget or (self._saved_class_settings().get("step_budget", 0) if accounts else 0)
        # Folders the operator allows the app to read data from (app.py --data-dir), besides samples and uploads.
        self.data_dirs = tuple(Path(folder).expanduser().resolve() for folder in data_dirs)
        self.store = RunStore(self.home / "runs")
        self.jobs = JobRunner(self.store, max_waiting=max_waiting if accounts is not None else 0)
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

    @property
    def in_class(self) -> bool:
        return self.accounts is not None

    def page_viewer(self) -> Viewer:
        """Whom the page is drawn for before any request says who is asking (the lists the page opens with): the
        single user, or in classroom mode nobody (only what the teacher shared); each session's own lists come with
        its first request."""
        return NOBODY if self.in_class else SINGLE_USER

    @property
    def class_home(self) -> Path | None:
        """Where the teacher's shared presets and data sets are kept (classroom mode only)."""
        return self.home / "class" if self.in_class else None

    @property
    def class_data(self) -> Path | None:
        """The data sets shared with the class: every account may read them."""
        return self.class_home / "data" if self.class_home is not None else None

    def _saved_class_settings(self) -> dict:
        try:
            saved = json.loads((self.home / "class" / "settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def save_step_budget(self, steps: int) -> None:
        """Set the class's step budget and keep it for the app's next start."""
        self.step_budget = steps
        path = self.home / "class" / "settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({**self._saved_class_settings(), "step_budget": steps}))

    def preset_home(self, viewer: Viewer | None = None) -> Path:
        """Whose saved presets a viewer lists and saves: a student's own folder in classroom mode, else the home's."""
        viewer = self.who(viewer)
        if viewer.in_class and not viewer.teacher:
            return self.home / "students" / slugify(viewer.user, 60)
        return self.home

    def class_budget(self, config: RunConfig, viewer: Viewer | None = None) -> RunConfig:
        """A student's run within the teacher's step budget (classroom mode): max_steps at most the budget."""
        viewer = self.who(viewer)
        if not self.step_budget or not viewer.in_class or viewer.teacher:
            return config
        steps = config.train.max_steps
        return config if 0 < steps <= self.step_budget else \
            config.with_overrides({"train.max_steps": self.step_budget})

    def check_start_adapter(self, config: RunConfig, viewer: Viewer | None = None) -> RunConfig:
        """The run's "continue from adapter", checked for the viewer: in classroom mode a student continues only
        from a run they may see (its id), never from a folder of the server."""
        viewer = self.who(viewer)
        start = config.train.init_adapter.strip()
        if start and viewer.in_class and not viewer.teacher:
            if not RUN_ID_RE.fullmatch(start):
                raise ConfigError(not_yours("run"))
            self.store.run_for(viewer, start)
        return config

    def who(self, viewer: Viewer | None) -> Viewer:
        """The viewer a call names; a call that names none gets the page's (in classroom mode: nobody's rights)."""
        return self.page_viewer() if viewer is None else viewer

    def store_for(self, viewer: Viewer) -> ScopedStore:
        """The run store as this viewer may use it (every check of ownership in one place)."""
        return ScopedStore(self.store, viewer)

    def login(self, user: str, password: str) -> bool:
        """Whether a classroom account's password is right (the app's login form asks this)."""
        return self.accounts is not None and check_login(self.accounts, user, password)

    def upload_dir(self, viewer: Viewer | None = None) -> Path:
        """Where a viewer's uploads are kept: the shared uploads folder, or one per student in classroom mode."""
        viewer = self.who(viewer)
        return self.uploads / slugify(viewer.user, 60) if viewer.in_class and not viewer.teacher else self.uploads

    def engine(self, model: str) -> ChatEngine:
        """The chat engine of a base model; one per model, shared by every side and session."""
        with self._lock:
            if model not in self._engines:
                self._engines[model] = ChatEngine(ModelConfig(name_or_path=model))
            return self._engines[model]

    def save_upload(self, temp_path: str | Path, viewer: Viewer | None = None) -> Path:
        """Keep an uploaded file under the workbench home (uploads vanish from temp dirs; runs refer to it), in the
        viewer's own folder in classroom mode."""
        viewer = self.who(viewer)
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

    def check_data_path(self, path: str | Path, viewer: Viewer | None = None) -> str:
        """The data path a browser asked for, if the app may read it: a bundled sample (returned as given), or a file
        in the uploads folder or under a --data-dir folder (returned resolved). Anything else raises ValueError
        naming the path and the allowed sources.

        The app serves people who are not the operator: an absolute or ../ path would let them read (evaluate, train
        on) any file of the server. Symlinks and .. are resolved first, so neither can step out of a folder. The CLI
        runs as the operator and reads any path; it does not call this. In classroom mode a student reads only their
        own uploads (and the samples and --data-dir folders the teacher set up); the teacher reads every upload."""
        viewer = self.who(viewer)
        spec = os.fspath(path or "").strip()
        if not spec:
            raise ValueError(NO_DATA)
        if spec.startswith(SAMPLE_PREFIX):  # only bundled names resolve (resolve_data_path checks the name)
            return spec
        allowed = (self.upload_dir(viewer).resolve(), *self.data_dirs,
                   *([self.class_data.resolve()] if self.class_data is not None else []))
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
        return self.exports / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(8)}{suffix}"

    def adapters(self, viewer: Viewer | None = None) -> list[RunRecord]:
        """Runs the viewer may see whose adapter can be chatted with (finished or stopped, adapter saved)."""
        viewer = self.who(viewer)
        return [r for r in self.store.list_runs(viewer) if has_trained_weights(self.store.adapter_dir(r.run_id))]

    def run_label(self, run_id: str, viewer: Viewer | None = None) -> str:
        """A run's label where it must stay the same across sessions (Compare panes, Arena votes and leaderboards):
        its name (not unique) and the random tail of its id (unique). Charts and tables use `run_labels`."""
        name = self.store.run_for(self.who(viewer), run_id).name
        return run_id if name == run_id else f"{name} · {run_id.rsplit('-', 1)[-1]}"

    def run_labels(self, run_ids: Iterable[str], taken: Iterable[str] = ("base",),
                   viewer: Viewer | None = None) -> dict[str, str]:
        """{run id: short label} for the runs shown together in one chart or table: each run's name, with the tail
        of its id only where two names (or a `taken` label such as "base") would clash. A run listed twice is
        labelled once."""
        labels: dict[str, str] = {}
        used = set(taken)
        for run_id in dict.fromkeys(run_ids):
            name = self.store.run_for(self.who(viewer), run_id).name
            labels[run_id] = name if name not in used else f"{name} ({run_id[-6:]})"
            used.add(labels[run_id])
        return labels

    def run_choices(self, trained: bool = False, viewer: Viewer | None = None) -> list[tuple[str, str]]:
        """Runs as (label, run id) for a picker, newest first: every stored run, or only those with a saved adapter
        (`trained`, labelled with their step count). No status in a label: it would go stale in an open list."""
        viewer = self.who(viewer)
        if trained:
            return [(f"{r.name} · {r.method} · {r.steps} steps", r.run_id) for r in self.adapters(viewer)]
        return [(f"{r.name} · {r.method}", r.run_id) for r in self.store.list_runs(viewer)]

    def trained_runs(self, picks: Iterable[tuple[str, str]],
                     viewer: Viewer | None = None) -> tuple[list[RunRecord], str | None]:
        """The runs of (run id, the field that chose it) pairs, each checked to exist and to have a saved adapter,
        and the one base model they share (None when there are none). One copy of a base model serves every
        adapter on it, so runs of different base models are refused. Errors name the field and the way out."""
        viewer = self.who(viewer)
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


