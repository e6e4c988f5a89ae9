"""Runs training in a background thread: one run at a time, in a fair order, stop at the next step, snapshots.

`execute_run` is the one path from a RunConfig to a recorded run: the CLI calls it in the foreground and the
JobRunner's worker thread calls it in the background. Both therefore write the same store rows and metrics.

The JobRunner starts the waiting runs in `workbench.classroom.fairness.fair_order`: first come, first served for
one user; round-robin across students in classroom mode, the teacher's pins first. Scoring a finished run's test
split is a job of its own, on a second thread, so the next run starts training at once. Runs left waiting when the
app stopped wait again, in the same order, when it starts.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.classroom.fairness import Waiting, expected_starts, fair_order, queue_refusal
from workbench.config import RunConfig
from workbench.evaluate.multiple_choice import MC_SETS, MCStopped, score_run_mc
from workbench.evaluate.scoring import EvaluationStopped, score_run
from workbench.i18n import Message, message
from workbench.models.adapters import is_peft_adapter
from workbench.models.loading import free_memory
from workbench.runs.store import ACTIVE, RUN_ID_RE, RunRecord, RunStore, StoreError
from workbench.train.checkpoints import checkpoint_step
from workbench.train.events import RunResult, TrainEvent, resume_problem
from workbench.train.loop import run_training
from workbench.train.preflight import preflight

log = logging.getLogger(__name__)
RESUMABLE = ("stopped", "interrupted", "failed")


def resolve_init_adapter(store: RunStore, config: RunConfig) -> RunConfig:
    """A run id in train.init_adapter becomes that run's adapter folder; a folder must hold an adapter."""
    value = config.train.init_adapter.strip()
    if not value:
        return config
    path = store.adapter_dir(value) if RUN_ID_RE.fullmatch(value) else Path(value).expanduser()
    if not is_peft_adapter(path):
        raise ValueError(f"train.init_adapter {value!r}: no PEFT adapter at {path}; give a finished run's id or an "
                         "adapter folder (adapter_config.json and adapter_model.safetensors; .bin files are not read)")
    return config.with_overrides({"train.init_adapter": str(path)})


def launch_problems(store: RunStore, config: RunConfig) -> list[str]:
    """Why this run cannot start here (method needs, data, memory), each with a way out; [] when it can. The
    Train tab and the CLI ask the same question before they launch anything."""
    return preflight(resolve_init_adapter(store, config)).problems


def execute_run(store: RunStore, run_id: str, config: RunConfig, should_stop: Callable[[], bool] | None = None,
                on_event: Callable[[TrainEvent], None] | None = None, resume: bool = False,
                score_later: Callable[[RunResult], None] | None = None) -> RunResult:
    """Train a registered run, writing status, metrics and result to the store as it goes.

    resume: go on from the run's checkpoint; the rows logged after it (by the attempt that was cut short) go.
    score_later: hand the test-split scoring to this (the job runner's scoring thread) instead of scoring here.
    """
    store.claim(run_id, "training")  # one trainer per run: refused (RunBusyError) while another process has it
    try:
        if resume:
            step = checkpoint_step(store.run_dir(run_id))
            if step is None:
                raise ValueError(f"run {store.get_run(run_id).name!r} has no checkpoint to resume from; start it "
                                 "again")
            store.trim_metrics(run_id, step)
        store.update_run(run_id, status="running", error="", owner_pid=os.getpid(), started_at=time.time())
        return _train_and_record(store, run_id, config, should_stop, on_event, resume, score_later)
    finally:
        store.release(run_id)  # after the final status: no reader sees the run active without its trainer


def _train_and_record(store: RunStore, run_id: str, config: RunConfig, should_stop: Callable[[], bool] | None,
                      on_event: Callable[[TrainEvent], None] | None, resume: bool,
                      score_later: Callable[[RunResult], None] | None = None) -> RunResult:

    def record(event: TrainEvent) -> None:
        if event.kind == "start":
            store.update_run(run_id, total_steps=event.total_steps,
                             trainable_params=event.values["trainable_params"],
                             total_params=event.values["total_params"])
            store.write_json(run_id, "data_notes.json", event.values)
        elif event.kind in ("step", "eval"):
            row = {"step": event.step, **{k: v for k, v in event.values.items() if k != "eta"}}
            store.append_metrics(run_id, [row])
            if event.kind == "step":
                store.update_run(run_id, steps=event.step, train_loss=event.values["train_loss"],
                                 tokens=event.values["tokens"], seconds=event.values["elapsed"])
            elif event.values.get("val_loss") is not None:
                store.update_run(run_id, val_loss=event.values["val_loss"])
        if on_event:
            on_event(event)

    try:
        config = resolve_init_adapter(store, config)
        result = run_training(config, store.run_dir(run_id), on_event=record, should_stop=should_stop,
                              resume=resume)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}".strip()
        store.update_run(run_id, status="failed", error=error[:2000])
        store.write_json(run_id, "error.json", {"error": error, "traceback": traceback.format_exc()})
        raise
    completed = bool(result.steps) and result.status == "completed"
    scored = completed and (bool(config.train.eval_test and result.test_examples) or config.train.eval_mc != "none")
    if scored and score_later is None:
        score_after_training(store, run_id, result, record, should_stop)
    # A run stopped while getting ready has no step count of its own yet: the stored ones stay.
    counts = {"total_steps": result.total_steps} if result.total_steps else {}
    store.update_run(run_id, status=result.status, steps=result.steps, train_loss=result.train_loss,
                     val_loss=result.val_loss, seconds=result.seconds, tokens=result.tokens, **counts)
    store.write_json(run_id, "result.json", result.to_dict())
    if scored and score_later is not None:
        score_later(result)
    return result


def _planned_steps(config: RunConfig) -> int:
    """A run's step count as planned (max_steps, or a guess for epochs-only runs)."""
    return config.train.max_steps or 100


def score_after_training(store: RunStore, run_id: str, result: RunResult, record: Callable[[TrainEvent], None],
                         should_stop: Callable[[], bool] | None = None) -> None:
    """What a finished run asks to be scored on: its test split (train.eval_test), then the bundled
    multiple-choice sets (train.eval_mc)."""
    config = store.load_config(run_id)
    if config.train.eval_test and result.test_examples:
        score_test_split(store, run_id, result, record, should_stop)
    if config.train.eval_mc != "none" and not (should_stop and should_stop()):
        score_mc_sets(store, run_id, result, record, should_stop)


def score_mc_sets(store: RunStore, run_id: str, result: RunResult, record: Callable[[TrainEvent], None],
                  should_stop: Callable[[], bool] | None = None) -> None:
    """The base and the run on the bundled multiple-choice sets (mc.json beside the run). A failure is noted as
    mc_error.json and does not fail the run; Stop ends it between batches."""
    config = store.load_config(run_id)

    def progress(fraction: float, detail: Message | str) -> None:
        phase = message("train.phase.mc", detail=detail) if detail else ""
        record(TrainEvent("score", result.steps, result.total_steps, {"fraction": fraction, "phase": phase}))

    try:
        score_run_mc(store, run_id, MC_SETS[config.train.eval_mc], config.train.eval_mc_shots, progress, should_stop)
    except MCStopped as stop:
        store.write_json(run_id, "mc_error.json", {"error": str(stop)})
    except Exception as exc:  # noqa: BLE001 - any scoring failure is recorded beside the run, not raised
        log.exception("multiple choice of run %s failed", run_id)
        store.write_json(run_id, "mc_error.json", {"error": f"{type(exc).__name__}: {exc}",
                                                    "traceback": traceback.format_exc()})
    progress(1.0, "")


def score_test_split(store: RunStore, run_id: str, result: RunResult, record: Callable[[TrainEvent], None],
                     should_stop: Callable[[], bool] | None = None) -> None:
    """Score the run's test split (base vs adapter). A failure here is noted but does not fail the run: the
    adapter is trained and saved, and the Evaluate tab can score it again. Stop ends the scoring too."""
    def progress(fraction: float, detail: str) -> None:  # the phase is put into words where it is shown
        phase = message("train.phase.scoring", detail=detail) if detail else ""
        record(TrainEvent("score", result.steps, result.total_steps, {"fraction": fraction, "phase": phase}))

    try:
        score_run(store, run_id, on_progress=progress, should_stop=should_stop)
    except EvaluationStopped as stop:
        store.write_json(run_id, "eval_error.json", {"error": f"Stop was pressed {stop}, so the test split was not "
                                                               "scored; Evaluate scores it"})
    except Exception as exc:  # noqa: BLE001 - any scoring failure is recorded beside the run, not raised
        log.exception("scoring run %s failed", run_id)
        store.write_json(run_id, "eval_error.json", {"error": f"{type(exc).__name__}: {exc}",
                                                      "traceback": traceback.format_exc()})
    progress(1.0, "")


@dataclass
class JobSnapshot:
    """What the UI shows of one run right now (plain data; the UI maps it to components)."""

    run_id: str
    status: str
    step: int = 0
    total_steps: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    elapsed: float = 0.0
    eta: float | None = None
    queue_position: int | None = None
    expected_start: float | None = None  # when a waiting run should start (epoch seconds), from the runs ahead
    error: str = ""
    phase: Message | str = ""  # what it is doing besides steps, e.g. scoring the test split (say(phase, lang))

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE


@dataclass
class _Job:
    run_id: str
    config: RunConfig
    stop_event: threading.Event = field(default_factory=threading.Event)
    live: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    owner: str = ""
    queued_at: float = field(default_factory=time.time)
    pinned_at: float | None = None

    def waiting(self) -> Waiting:
        return Waiting(self.run_id, self.owner, self.queued_at, self.pinned_at)


# Until a run of this app has finished, a waiting run is expected to take this long (seconds per step).
FALLBACK_STEP_SECONDS = 1.5


class JobRunner:
    """One worker thread that trains the waiting runs one at a time, in a fair order, and one that scores finished
    runs' test splits. Shared by every browser session, on purpose.

    max_waiting: how many runs one owner may have waiting at once (0 = no limit; classroom mode sets one)."""

    def __init__(self, store: RunStore, max_waiting: int = 0) -> None:
        self.store = store
        self.max_waiting = max_waiting
        self._jobs: dict[str, _Job] = {}
        self._order: list[str] = []  # the waiting runs, in the order they were queued
        self._current: str | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._scoring: list[tuple[_Job, RunResult]] = []
        self._scoring_now: str | None = None
        self._score_ready = threading.Condition(self._lock)
        self._requeue_waiting()
        self.store.mark_orphans_interrupted()
        self._thread = threading.Thread(target=self._work, name="workbench-trainer", daemon=True)
        self._thread.start()
        self._scorer = threading.Thread(target=self._score_work, name="workbench-scorer", daemon=True)
        self._scorer.start()

    def _requeue_waiting(self) -> None:
        """Runs that were waiting when the app stopped (queued, their trainer gone) wait again, in their order."""
        for record in self.store.waiting_runs():
            try:
                self.store.claim(record.run_id, "queued")
                config = self.store.load_config(record.run_id)
            except (StoreError, OSError, ValueError):  # held by a live process, or its config is unreadable
                continue
            resume = checkpoint_step(self.store.run_dir(record.run_id)) is not None
            self._jobs[record.run_id] = _Job(record.run_id, config, resume=resume, owner=record.owner,
                                             queued_at=record.created_at, pinned_at=record.pinned_at)
            self._order.append(record.run_id)

    def submit(self, config: RunConfig, name: str = "", owner: str = "") -> RunRecord:
        """Register a run and put it in the waiting line (its fair place); refused when its owner already has
        `max_waiting` runs waiting."""
        with self._lock:
            refusal = queue_refusal(owner, self._waiting(), self.max_waiting)
        if refusal is not None:
            raise ValueError(refusal)
        record = self.store.create_run(config, name=name, claim="queued", owner=owner)  # held until it ends
        job = _Job(record.run_id, config, owner=owner, queued_at=record.created_at)
        with self._lock:
            self._jobs[record.run_id] = job
            self._order.append(record.run_id)
            self._done.notify_all()
        return record

    def resume(self, run_id: str) -> RunRecord:
        """Queue a stopped, interrupted or failed SFT run again; it goes on from its last checkpoint."""
        record = self.store.get_run(run_id)
        name = f"{record.name!r}"  # people know a run by its name; the id is in the Runs table
        if record.status not in RESUMABLE:
            raise ValueError(f"run {name} is {record.status}; only a run that is {', '.join(RESUMABLE)} can be "
                             "resumed")
        config = self.store.load_config(run_id)
        if resume_problem(config):
            raise ValueError(f"run {name}: {resume_problem(config)}")
        step = checkpoint_step(self.store.run_dir(run_id))
        if step is None:
            raise ValueError(f"run {name} has no checkpoint: it stopped before it saved one (a stopped run saves one; "
                             "a training one every 'Checkpoint every' steps, train.checkpoint_every); start it again")
        job = _Job(run_id, config, resume=True, owner=record.owner)
        self.store.claim(run_id, "queued")  # refused while another process trains or queues it
        with self._lock:
            self._jobs[run_id] = job
            self._order.append(run_id)
            self.store.update_run(run_id, status="queued", error="", owner_pid=os.getpid())
            self._done.notify_all()
        return self.store.get_run(run_id)

    def pin(self, run_id: str, pinned: bool = True) -> bool:
        """The teacher moves a waiting run to the front (after earlier pins), or back to its fair place."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or run_id not in self._order:
                return False
            job.pinned_at = time.time() if pinned else None
            self.store.update_run(run_id, pinned_at=job.pinned_at)
        return True

    def _waiting(self) -> list[Waiting]:
        return [self._jobs[run_id].waiting() for run_id in self._order]

    def waiting_order(self) -> list[str]:
        """The waiting runs' ids in the order they will start."""
        with self._lock:
            return [w.run_id for w in fair_order(self._waiting(), self.store.last_started())]

    def stop(self, run_id: str) -> bool:
        """Stop a running run at its next step (it saves what it learned), or cancel a queued one."""
        with self._lock:
            job = self._jobs.get(run_id)
            scoring = run_id == self._scoring_now or any(queued.run_id == run_id for queued, _ in self._scoring)
            if job is None or run_id not in self._order and run_id != self._current and not scoring:
                return False
            job.stop_event.set()
            if scoring and run_id != self._current:  # a finished run's scoring ends after its current batch
                return True
            if run_id != self._current:
                self._order.remove(run_id)
                self.store.update_run(run_id, status="cancelled", error="cancelled before it started")
                self.store.release(run_id)
                self._done.notify_all()
            else:  # says so at once; the trainer ends at its next check
                try:
                    if self.store.get_run_raw(run_id).status == "running":
                        self.store.update_run(run_id, status="stopping")
                except StoreError:  # finished and deleted while its thread was still tidying up
                    pass
        return True

    def queue_position(self, run_id: str) -> int | None:
        """1-based place in the waiting line (its fair order), or None when not waiting."""
        order = self.waiting_order()
        return order.index(run_id) + 1 if run_id in order else None

    def expected_start(self, run_id: str) -> float | None:
        """When a waiting run should start (epoch seconds): after the run training now and every run ahead of it,
        each taking its steps at the pace of this machine's recent runs."""
        order = self.waiting_order()
        if run_id not in order:
            return None
        pace = self._step_seconds()
        with self._lock:
            jobs = {r: self._jobs[r] for r in order if r in self._jobs}
            current = self._jobs.get(self._current) if self._current else None
        durations = {r: pace * _planned_steps(job.config) for r, job in jobs.items()}
        busy = 0.0
        if current is not None:
            busy = current.live.get("eta") or pace * _planned_steps(current.config)
        waiting = [Waiting(r, jobs[r].owner, jobs[r].queued_at) for r in order if r in jobs]
        return expected_starts(waiting, time.time(), busy, durations).get(run_id)

    def _step_seconds(self) -> float:
        """Seconds per step of this store's recent finished runs (the median), or a first guess."""
        paces = [r.seconds / r.steps for r in self.store.list_runs()[:20] if r.status == "completed" and r.steps]
        return statistics.median(paces) if paces else FALLBACK_STEP_SECONDS

    @property
    def current(self) -> str | None:
        return self._current

    def snapshot(self, run_id: str) -> JobSnapshot:
        """Live numbers when this process runs the job, else what the store knows."""
        record = self.store.get_run(run_id)
        job = self._jobs.get(run_id)
        live = dict(job.live) if job else {}
        return JobSnapshot(
            run_id=run_id, status=record.status, step=record.steps, total_steps=record.total_steps,
            train_loss=record.train_loss, val_loss=record.val_loss, tokens_per_s=live.get("tokens_per_s"),
            elapsed=live.get("elapsed", record.seconds), eta=live.get("eta") if record.status == "running" else None,
            queue_position=self.queue_position(run_id), error=record.error,
            expected_start=self.expected_start(run_id) if record.status == "queued" else None,
            phase=live.get("phase", "") if record.status in ("running", "stopping") or run_id in self.scoring()
            else "",
        )

    def wait(self, run_id: str, timeout: float | None = None) -> JobSnapshot:
        """Block until a run has finished, its test split scored too (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self.store.get_run(run_id).status in ACTIVE or run_id in self._scoring_ids():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"run {run_id} still {self.store.get_run(run_id).status} after {timeout}s")
                self._done.wait(timeout=min(left, 1.0) if left is not None else 1.0)
        return self.snapshot(run_id)

    def _next_job(self) -> _Job | None:
        """Wait for a waiting run and take the first in the fair order (None when closing)."""
        with self._done:
            while not self._order and not self._closing:
                self._done.wait()
            if self._closing:
                return None
            run_id = fair_order(self._waiting(), self.store.last_started())[0].run_id
            self._order.remove(run_id)
            self._current = run_id
            return self._jobs[run_id]

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return

            def on_event(event: TrainEvent, live: dict = job.live) -> None:
                live.update({k: v for k, v in event.values.items() if isinstance(v, (int, float))})
                if event.kind in ("score", "phase"):
                    live["phase"] = event.values["phase"]

            def score_later(result: RunResult, job: _Job = job) -> None:
                with self._lock:
                    self._scoring.append((job, result))
                    self._score_ready.notify_all()

            try:
                execute_run(self.store, job.run_id, job.config, job.stop_event.is_set, on_event, job.resume,
                            score_later)
            except Exception:  # recorded as failed by execute_run; the worker lives on for the next run
                log.exception("run %s failed", job.run_id)
            finally:
                free_memory()  # a failed run's model goes now, not whenever the collector gets to it
                with self._lock:
                    self._current = None
                    self._done.notify_all()

    def scoring(self) -> list[str]:
        """Finished runs whose test split is being scored or waits to be."""
        with self._lock:
            return self._scoring_ids()

    def _scoring_ids(self) -> list[str]:
        return ([self._scoring_now] if self._scoring_now else []) + [job.run_id for job, _ in self._scoring]

    def _score_work(self) -> None:
        """The scoring thread: each finished run's test split, base vs adapter, while the next run trains."""
        while True:
            with self._score_ready:
                while not self._scoring and not self._closing:
                    self._score_ready.wait()
                if not self._scoring:
                    return
                job, result = self._scoring.pop(0)
                self._scoring_now = job.run_id

            def record(event: TrainEvent, live: dict = job.live) -> None:
                if event.kind == "score":
                    live["phase"] = event.values["phase"]

            try:
                score_after_training(self.store, job.run_id, result, record, job.stop_event.is_set)
            finally:
                with self._lock:
                    self._scoring_now = None
                    self._done.notify_all()

    def shutdown(self, timeout: float = 0.0, keep_waiting: bool = False) -> bool:
        """Stop the training run at its next step and the scoring of finished ones; wait up to `timeout` seconds
        for the run to save its adapter and checkpoint. True when the worker has finished.

        The waiting runs are cancelled, or with keep_waiting left queued in the store, to wait again in the same
        order when the app starts next (an app stopping mid-lesson)."""
        with self._lock:
            waiting, current = list(self._order), self._current
            scoring = [self._jobs[run_id] for run_id in self._scoring_ids()]
        for run_id in waiting:
            if keep_waiting:
                self.store.release(run_id)  # still "queued" in the store: the next start picks it up
            else:
                self.stop(run_id)
        if current:
            self.stop(current)
        for job in scoring:
            job.stop_event.set()
        with self._lock:
            self._order.clear()
            self._closing = True
            self._done.notify_all()
            self._score_ready.notify_all()
        if timeout > 0:
            self._thread.join(timeout)
            self._scorer.join(max(1.0, timeout / 4))
        return not self._thread.is_alive()
