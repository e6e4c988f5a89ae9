"""The teacher's view of a class (classroom mode): every student's runs and scores, the shared queue, leaderboards
and what is shared with the class. Plain data for the Class tab and the CLI; every call checks the viewer is the
teacher, so a student who calls the Class tab's endpoints gets a refusal and learns nothing.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.app import Workbench
from workbench.arena.ratings import leaderboard
from workbench.classroom.access import Viewer
from workbench.data.files import SUFFIXES
from workbench.evaluate.scoring import read_scores
from workbench.fsio import slugify, write_csv
from workbench.i18n import message
from workbench.presets import Preset, list_presets, share_preset
from workbench.runs.store import StoreError

# The class table's columns, by key (headers come from the catalogue: class.column.KEY).
COLUMNS = ("owner", "name", "status", "method", "steps", "seconds", "val_loss", "test rougeL", "test token_f1",
           "test exact_match", "test chrf", "shared", "queue", "run_id")
# Metrics a leaderboard can rank by: lower is better for the losses and perplexity, higher for the rest.
RANK_METRICS = ("test rougeL", "test token_f1", "test exact_match", "test chrf", "val_loss")
LOWER_IS_BETTER = {"val_loss"}


class NotTeacher(PermissionError):
    """A call of the teacher's view by an account that is not the teacher."""


def require_teacher(workbench: Workbench, viewer: Viewer) -> None:
    if not workbench.in_class:
        raise NotTeacher(message("class.error.not_class"))
    if not viewer.teacher:
        raise NotTeacher(message("class.error.teacher_only"))


def class_rows(workbench: Workbench, viewer: Viewer) -> list[dict[str, Any]]:
    """One row per run of the class, newest first: who made it, its status, its scores, its place in the queue."""
    require_teacher(workbench, viewer)
    order = workbench.jobs.waiting_order()
    rows = []
    for record in workbench.store.list_runs(viewer):
        scores = read_scores(workbench.store, record.run_id).get("adapter", {})
        place = order.index(record.run_id) + 1 if record.run_id in order else None
        rows.append({"owner": record.owner or viewer.user, "name": record.name, "status": record.status,
                     "method": record.method, "steps": record.steps, "seconds": round(record.seconds or 0, 1),
                     "val_loss": None if record.val_loss is None else round(record.val_loss, 4),
                     **{f"test {m}": _round(scores.get(m)) for m in ("rougeL", "token_f1", "exact_match", "chrf")},
                     "shared": bool(record.shared), "queue": place, "run_id": record.run_id})
    return rows


def _round(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, (int, float)) else None


def class_leaderboard(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The runs that have `metric`, best first, numbered; a student's best run only (one line per student)."""
    if metric not in RANK_METRICS:
        raise ValueError(message("class.error.metric", metric=metric, choices=", ".join(RANK_METRICS)))
    lower = metric in LOWER_IS_BETTER
    scored = sorted((row for row in rows if row.get(metric) is not None),
                    key=lambda row: row[metric] if lower else -row[metric])
    best: dict[str, dict[str, Any]] = {}
    for row in scored:
        best.setdefault(row["owner"], row)
    return [{"place": n, "owner": row["owner"], "name": row["name"], "method": row["method"], metric: row[metric],
             "run_id": row["run_id"]} for n, row in enumerate(best.values(), start=1)]


def pooled_votes(workbench: Workbench, viewer: Viewer, base_model: str | None = None) -> list[dict[str, Any]]:
    """The arena leaderboard over every student's votes (one base model's; the most voted on when none is given)."""
    require_teacher(workbench, viewer)
    voted = workbench.votes.base_models(viewer)
    names = [name for name, _count in voted]
    base_model = base_model if base_model in names else (names[0] if names else None)
    return leaderboard(workbench.votes.battles(base_model, viewer)) if base_model else []


def queue_rows(workbench: Workbench, viewer: Viewer) -> list[dict[str, Any]]:
    """The run training now, then the waiting runs in the order they will start, with when each should start."""
    require_teacher(workbench, viewer)
    rows = []
    current = workbench.jobs.current
    ids = ([current] if current else []) + workbench.jobs.waiting_order()
    for place, run_id in enumerate(ids, start=0 if current else 1):
        try:
            record = workbench.store.get_run(run_id)
        except StoreError:
            continue
        start = workbench.jobs.expected_start(run_id)
        rows.append({"place": place, "owner": record.owner or viewer.user, "name": record.name,
                     "status": record.status, "pinned": record.pinned_at is not None,
                     "starts": time.strftime("%H:%M", time.localtime(start)) if start else "",
                     "run_id": run_id})
    return rows


def export_class_csv(workbench: Workbench, viewer: Viewer) -> Path:
    """The class table as a CSV file (UTF-8 with a BOM, so Excel opens Korean names right), in the exports folder."""
    path = workbench.new_export("class")
    write_csv(path, pd.DataFrame(class_rows(workbench, viewer), columns=list(COLUMNS)))
    return path


def share_run(workbench: Workbench, viewer: Viewer, run_id: str, shared: bool = True) -> str:
    """Show a run to every student (read-only), or stop showing it; the run's name."""
    require_teacher(workbench, viewer)
    return workbench.store_for(viewer).share_run(run_id, shared).name


def share_data(workbench: Workbench, viewer: Viewer, path: str) -> Path:
    """Copy a data file the teacher may read (an upload, a --data-dir file) into the class's shared data folder,
    where every student may train and evaluate on it; the copy's path."""
    require_teacher(workbench, viewer)
    source = Path(workbench.check_data_path(path, viewer))
    if not source.is_file() or source.suffix.lower() not in SUFFIXES:
        raise ValueError(message("class.error.share_data", path=str(path), suffixes=", ".join(SUFFIXES)))
    folder = workbench.class_data
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{slugify(source.stem, 60)}{source.suffix.lower()}"
    shutil.copyfile(source, target)
    return target


def shared_data(workbench: Workbench) -> list[Path]:
    """The data files shared with the class, by name."""
    folder = workbench.class_data
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES) if folder and folder.is_dir() else []


def share_teacher_preset(workbench: Workbench, viewer: Viewer, name: str) -> Preset:
    """Copy one of the teacher's saved presets into the class's presets (every student can load it)."""
    require_teacher(workbench, viewer)
    return share_preset(name, workbench.preset_home(viewer), workbench.class_home)


def teacher_presets(workbench: Workbench, viewer: Viewer) -> list[str]:
    """The teacher's own saved presets' names (what can be shared)."""
    require_teacher(workbench, viewer)
    return [p.name for p in list_presets(workbench.preset_home(viewer)) if p.saved and not p.shared]


def set_step_budget(workbench: Workbench, viewer: Viewer, steps: int) -> int:
    """The most steps a student's run may take from now on (0: no budget); kept for the next start of the app."""
    require_teacher(workbench, viewer)
    steps = int(steps)
    if steps < 0:
        raise ValueError(message("class.error.budget", steps=steps))
    workbench.save_step_budget(steps)
    return steps


def stop_run(workbench: Workbench, viewer: Viewer, run_id: str) -> bool:
    """Stop a student's training run at its next step (it keeps what it learned), or take a waiting one out of the
    queue; False when the run is neither training nor waiting."""
    require_teacher(workbench, viewer)
    workbench.store.run_for(viewer, run_id)
    return workbench.jobs.stop(run_id)


def pin_run(workbench: Workbench, viewer: Viewer, run_id: str, pinned: bool = True) -> bool:
    """Move a waiting run to the front of the queue (after earlier pins), or back to its fair place."""
    require_teacher(workbench, viewer)
    workbench.store.run_for(viewer, run_id)
    return workbench.jobs.pin(run_id, pinned)
