"""One trainer per run across processes, dead trainers read as interrupted, every CLI flag honoured or refused with
--resume, the CLI's checks before launch, and Stop at any moment: on real processes, the real model and store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.i18n import say
from workbench.runs.store import RunBusyError, RunStore
from workbench.train.jobs import JobRunner

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train.batch_size=1", "--set", "train.max_seq_len=64", "--set", "train.eval_every=0",
        "--set", "train.general_every=0", "--set", "train.eval_test=false", "--set", "data.val_size=0",
        "--set", "data.test_size=0", "--set", "train.checkpoint_every=1", "--set", "train.learning_rate=0.002"]

HOLDER = """
import sys, time
from workbench.runs.store import RunStore
store = RunStore(sys.argv[1])
store.claim(sys.argv[2], "training")
print("held", flush=True)
time.sleep(600)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_the_lock_is_held_across_processes_and_freed_by_the_kernel_when_its_holder_dies(home, tiny_config):
    store = RunStore(home / "runs")
    record = store.create_run(tiny_config())
    store.update_run(record.run_id, status="running")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home / "runs"), record.run_id], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusyError, match=rf"is being trained by process {holder.pid} since \d\d:\d\d"):
            store.claim(record.run_id, "training")
        assert store.get_run(record.run_id).status == "running"  # its trainer lives
        assert RunStore(home / "runs").get_run(record.run_id).status == "running"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # kill -9: no clean-up ran, yet the kernel let go of the lock. Every reader now sees the run interrupted.
    assert RunStore(home / "runs").list_runs()[0].status == "interrupted"
    store.claim(record.run_id, "training")  # and it can be taken again
    store.release(record.run_id)


def test_a_claim_inside_one_process_conflicts_with_another_store_of_that_process(home, tiny_config):
    first, second = RunStore(home / "runs"), RunStore(home / "runs")
    record = first.create_run(tiny_config(), claim="queued")
    with pytest.raises(RunBusyError, match="is queued in process"):
        second.claim(record.run_id, "training")
    assert second.get_run(record.run_id).status == "queued"
    first.release(record.run_id)
    assert second.get_run(record.run_id).status == "interrupted"  # queued, but nobody holds it any more


def _wait_for_steps(store: RunStore, proc: subprocess.Popen, steps: int) -> str:
    deadline = time.monotonic() + 240
    while True:
        runs = store.list_runs()
        if runs and runs[0].steps >= steps:
            return runs[0].run_id
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the CLI run never reached its steps"
        time.sleep(0.2)


def test_a_second_trainer_is_refused_a_killed_cli_run_reads_interrupted_and_max_steps_is_honoured(home, capsys):
    cli = subprocess.Popen([sys.executable, "-m", "workbench", "train", "--max-steps", "200", "--quiet", *TINY],
                           cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = RunStore(home / "runs")
    try:
        run_id = _wait_for_steps(store, cli, 2)
        logged_before = len(store.read_metrics(run_id))
        assert main(["train", "--resume", run_id, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"is being trained by process {cli.pid}" in err and "stop it there first" in err
        assert store.get_run(run_id).status == "running"
        rows = store.read_metrics(run_id)  # the refused trainer wrote nothing: each step once, in order
        assert len(rows) >= logged_before and [r["step"] for r in rows] == sorted({r["step"] for r in rows})
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
    assert main(["runs"]) == 0
    assert f"{run_id}  interrupted" in capsys.readouterr().out
    done = store.get_run(run_id).steps

    assert main(["train", "--resume", run_id, "--data", "sample:ko_chat_polite"]) == 2
    assert "--data cannot change them" in capsys.readouterr().err
    assert main(["train", "--resume", run_id, "--max-steps", "500"]) == 2
    assert "from " in capsys.readouterr().err and store.get_run(run_id).status == "interrupted"

    assert main(["train", "--resume", run_id, "--max-steps", str(done + 2), "--quiet"]) == 0
    record = store.get_run(run_id)
    assert (record.status, record.steps, record.total_steps) == ("stopped", done + 2, 200)
    steps = [row["step"] for row in store.read_metrics(run_id) if "train_loss" in row]
    assert steps == list(range(1, done + 3))


def test_the_cli_refuses_a_run_that_cannot_fit_unless_forced(home, capsys):
    code = main(["train", "--set", "train.batch_size=1024", "--set", "train.max_seq_len=131072", "--max-steps", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot start here" in err and "this run needs about" in err and "--force" in err
    assert RunStore(home / "runs").list_runs() == []  # nothing registered, nothing started


def test_stop_during_the_first_validation_ends_the_run_at_once_and_says_stopping(home, tiny_config):
    # Half of the sample as validation, one row at a time: the starting measurement takes many forward passes.
    config = tiny_config(**{"data.val_size": 0.5, "train.batch_size": 1, "train.max_steps": 50})
    runner = JobRunner(RunStore(home / "runs"))
    record = runner.submit(config)
    deadline = time.monotonic() + 240
    while say(runner.snapshot(record.run_id).phase, "en") != "measuring the starting validation loss":
        assert runner.snapshot(record.run_id).status in ("queued", "running") and time.monotonic() < deadline
        time.sleep(0.02)
    assert runner.stop(record.run_id)
    assert runner.snapshot(record.run_id).status == "stopping"  # at once, before the trainer notices
    with pytest.raises(RunBusyError):
        RunStore(home / "runs").claim(record.run_id, "training")  # a second trainer, even in this process
    done = runner.wait(record.run_id, timeout=60)
    assert (done.status, done.step) == ("stopped", 0)
    assert not any(row["step"] == 0 and "val_loss" in row for row in runner.store.read_metrics(record.run_id))
    assert not (runner.store.adapter_dir(record.run_id) / "adapter_config.json").exists()  # nothing trained
    runner.store.delete_run(record.run_id)  # no longer "running"
    runner.shutdown()


def test_stop_before_the_model_is_loaded_ends_the_run_without_training(tmp_path, tiny_config):
    from workbench.train.loop import run_training

    phases = []
    result = run_training(tiny_config(), tmp_path, on_event=lambda e: phases.append(e.kind),
                          should_stop=lambda: True)
    assert (result.status, result.steps) == ("stopped", 0) and "step" not in phases
    assert not (tmp_path / "adapter").exists()
