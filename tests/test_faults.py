"""Faults on the real model and store: stop and resume exactly, stops at random steps, SIGKILL mid-run, an exception
in training, and memory given back.

`WORKBENCH_FAULT_ROUNDS` sets how many random stops the stop test makes (default 3; the report uses 20):

    WORKBENCH_FAULT_ROUNDS=20 .venv/bin/python -m pytest tests/test_faults.py -k random_steps
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from workbench.models.loading import free_memory
from workbench.runs.store import RunStore
from workbench.train.checkpoints import checkpoint_dir, load_counters
from workbench.train.jobs import JobRunner, execute_run
from workbench.train.loop import run_training

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("WORKBENCH_FAULT_ROUNDS", "3"))


def _short(tiny_config, **overrides):
    """Shorter still than tiny_config: batch 1, 64 tokens, no validation, no checkpoints unless asked."""
    return tiny_config(**{"train.batch_size": 1, "train.max_seq_len": 64, "train.eval_every": 0,
                          "data.val_size": 0, "data.test_size": 0, "train.checkpoint_every": 0, **overrides})


def _stop_after(step: int):
    seen = {"step": 0}

    def on_event(event):
        if event.kind == "step":
            seen["step"] = event.step

    return on_event, lambda: seen["step"] >= step


def test_a_stopped_run_resumes_exactly_where_it_stopped(tmp_path, tiny_config):
    config = _short(tiny_config, **{"train.max_steps": 4, "train.batch_size": 2})
    straight_losses: dict[int, float] = {}
    straight = run_training(config, tmp_path / "straight", on_event=lambda e: e.kind == "step" and
                            straight_losses.__setitem__(e.step, e.values["train_loss"]))

    on_event, should_stop = _stop_after(2)
    stopped = run_training(config, tmp_path / "cut", on_event=on_event, should_stop=should_stop)
    assert (stopped.status, stopped.steps) == ("stopped", 2)
    assert checkpoint_dir(tmp_path / "cut") is not None
    resumed_losses: dict[int, float] = {}
    events = []

    def record(event):
        events.append((time.perf_counter(), event))
        if event.kind == "step":
            resumed_losses[event.step] = event.values["train_loss"]

    first = load_counters(tmp_path / "cut")
    began = time.perf_counter()
    resumed = run_training(config, tmp_path / "cut", on_event=record, resume=True)
    second_segment = [at for at, event in events if event.kind == "end"][0] - began  # (the cleanup after: not)
    events = [event for _at, event in events]
    assert (resumed.status, resumed.steps) == ("completed", 4)
    # The run's time is both segments whole (loading, measuring, training), not the last one or the loop alone:
    # the checkpoint keeps the first segment's wall time up to the stop (loading included), the resumed run adds its
    # own.
    assert first["elapsed"] < first["seconds"] <= stopped.seconds
    assert first["seconds"] + second_segment - 0.1 <= resumed.seconds <= first["seconds"] + second_segment
    started = [e for e in events if e.kind != "phase"][0]  # phase events ("loading the model") may come first
    assert started.kind == "start" and started.values["resumed_from"] == 2
    assert sorted(resumed_losses) == [3, 4]  # the step count goes on; steps 1-2 are not trained again
    for step in (3, 4):  # same optimiser moments, scheduler, RNG and batches: the same losses as never stopped
        assert resumed_losses[step] == pytest.approx(straight_losses[step], rel=1e-4)
    assert resumed.tokens == straight.tokens
    a = load_file(Path(straight.adapter_path) / "adapter_model.safetensors")
    b = load_file(Path(resumed.adapter_path) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert checkpoint_dir(tmp_path / "cut") is None  # a completed run keeps no checkpoint
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_training(config, tmp_path / "never-ran", resume=True)


def test_stops_at_random_steps_always_leave_an_adapter_that_loads(home, tiny_config):
    from workbench.config import ModelConfig
    from workbench.generate.engine import ChatEngine, Side
    from workbench.generate.sampling import SamplingConfig

    rng, store = random.Random(7), RunStore(home / "runs")
    engine = ChatEngine(ModelConfig())
    for round_ in range(ROUNDS):
        target = rng.randint(1, 4)
        config = _short(tiny_config, **{"train.max_steps": 6, "train.seed": round_})
        record = store.create_run(config)
        on_event, should_stop = _stop_after(target)
        result = execute_run(store, record.run_id, config, should_stop=should_stop, on_event=on_event)
        assert (result.status, result.steps) == ("stopped", target), f"round {round_}"
        engine.ensure_adapter(record.run_id, store.adapter_dir(record.run_id))  # a whole adapter, or this fails
        answer = engine.answer(Side(record.run_id, record.run_id), [{"role": "user", "content": "Hi"}],
                               SamplingConfig(temperature=0.0, max_new_tokens=2))
        assert answer.done
        assert store.get_run(record.run_id).status == "stopped" and store.read_metrics(record.run_id)
    assert store.integrity_ok()


KILLED_APP = """
import sys, time
from workbench.app import Workbench
from workbench.config import RunConfig
home = sys.argv[1]
config = RunConfig().with_overrides({"train.max_steps": 6, "train.batch_size": 1, "train.max_seq_len": 64,
    "train.eval_every": 0, "train.general_every": 0, "train.eval_test": False, "data.val_size": 0,
    "data.test_size": 0, "train.checkpoint_every": 1, "train.learning_rate": 0.002})
record = Workbench(home).jobs.submit(config)
print(record.run_id, flush=True)
time.sleep(600)
"""


def test_sigkill_while_training_then_restart_shows_it_interrupted_and_it_resumes(home):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    app = subprocess.Popen([sys.executable, "-c", KILLED_APP, str(home)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           text=True)
    try:
        run_id = app.stdout.readline().strip()
        store = RunStore(home / "runs")
        deadline = time.monotonic() + 300
        while checkpoint_dir(store.run_dir(run_id)) is None or len(store.read_metrics(run_id)) < 2:
            assert app.poll() is None and time.monotonic() < deadline, "the app never reached step 2"
            time.sleep(0.2)
    finally:
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=60)
    assert app.returncode == -signal.SIGKILL

    runner = JobRunner(RunStore(home / "runs"))  # the app starting again
    record = runner.store.get_run(run_id)
    assert record.status == "interrupted" and "stopped before the run finished" in record.error
    assert runner.store.integrity_ok()
    logged = [row["step"] for row in runner.store.read_metrics(run_id)]
    assert logged and logged == sorted(logged) and logged[-1] >= 2  # metrics up to the last flush
    runner.resume(run_id)
    done = runner.wait(run_id, timeout=300)
    assert done.status == "completed" and done.step == 6
    steps = [row["step"] for row in runner.store.read_metrics(run_id) if "train_loss" in row]
    assert steps == list(range(1, 7))  # each step once: the rows after the checkpoint were logged again
    assert json.loads((runner.store.run_dir(run_id) / "result.json").read_text())["steps"] == 6
    with pytest.raises(ValueError, match="only a run that is stopped, interrupted, failed") as refused:
        runner.resume(run_id)
    name = runner.store.get_run(run_id).name
    assert f"run {name!r} is completed" in str(refused.value)  # by its name (an unnamed run is named by its id)
    runner.shutdown()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_on_the_app_stops_the_run_at_its_next_step_and_keeps_its_adapter(home, signum):
    """The app closed (Ctrl+C, or `kill`) while a run trains: it stops the run, saves it, and exits cleanly."""
    import types
    import urllib.request

    from appdriver import _free_port, _tiny_run_form
    from gradio_client import Client

    from workbench.models.adapters import has_trained_weights

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    app = subprocess.Popen([sys.executable, "app.py", "--home", str(home), "--port", str(port)], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 180
        while True:
            assert app.poll() is None and time.monotonic() < deadline, "the app did not start"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet
                time.sleep(0.5)
        client = Client(url, verbose=False)
        form = _tiny_run_form(types.SimpleNamespace(client=client), **{"Max steps": 500, "Batch size": 1,
                                                                          "Max seq len": 64, "Eval every": 0})
        run_id = client.submit(api_name="/start_run", **form).result(timeout=120)
        run_id = run_id["value"] if isinstance(run_id, dict) else run_id
        store = RunStore(home / "runs")
        while not any("train_loss" in row for row in store.read_metrics(run_id)):
            assert app.poll() is None and time.monotonic() < deadline + 120, "the run never logged a step"
            time.sleep(0.3)
        client.close()
        app.send_signal(signum)
        _out, err = app.communicate(timeout=180)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, err[-2000:]
    assert "Stopping the training run at its next step" in err
    assert "terminate called" not in err
    record = store.get_run(run_id)
    assert record.status == "stopped" and 1 <= record.steps < 500, record
    assert has_trained_weights(store.adapter_dir(run_id)) and checkpoint_dir(store.run_dir(run_id)) is not None
    assert store.integrity_ok()


def _rss_mb() -> float:
    free_memory()
    return psutil.Process().memory_info().rss / 2**20


def test_an_exception_in_training_fails_the_run_frees_its_memory_and_the_next_run_works(home, tiny_config):
    store = RunStore(home / "runs")
    config = _short(tiny_config, **{"train.max_steps": 3})
    warm = store.create_run(config)
    execute_run(store, warm.run_id, config)  # libraries loaded and caches warm: what stays is the baseline
    before = _rss_mb()

    def out_of_memory(event):
        if event.kind == "step":
            raise MemoryError("simulated: CPU out of memory at step 1")

    failed = store.create_run(config)
    with pytest.raises(MemoryError):
        execute_run(store, failed.run_id, config, on_event=out_of_memory)
    record = store.get_run(failed.run_id)
    assert record.status == "failed" and "MemoryError: simulated" in record.error
    assert "Traceback" in store.read_json(failed.run_id, "error.json")["traceback"]
    assert _rss_mb() - before < 200, "the failed run's model (~540 MB) was not freed"
    ok = store.create_run(config)
    assert execute_run(store, ok.run_id, config).status == "completed"


def test_unloading_the_chat_model_gives_its_memory_back():
    from workbench.config import ModelConfig
    from workbench.generate.engine import ChatEngine, Side
    from workbench.generate.sampling import SamplingConfig

    before = _rss_mb()
    engine = ChatEngine(ModelConfig())
    engine.answer(Side("base"), [{"role": "user", "content": "Hi"}], SamplingConfig(temperature=0.0,
                                                                                   max_new_tokens=2))
    loaded = _rss_mb()
    assert loaded - before > 300  # the weights (~540 MB in float32) are in memory
    engine.unload()
    assert _rss_mb() - before < 0.3 * (loaded - before), "unload kept most of the model's memory"


def test_models_built_in_several_threads_at_once_are_whole():
    """A run starting while Compare loads its model and the Train form counts parameters: transformers builds
    under process-wide switches, so unguarded builds in parallel leave models half on the meta device."""
    import threading

    from workbench.config import ModelConfig, RunConfig
    from workbench.models.loading import load_model
    from workbench.train.preflight import count_parameters_on_meta

    errors: list[str] = []
    counts: list[tuple[int, int]] = []

    def load() -> None:
        for _ in range(3):
            try:
                model = load_model(ModelConfig()).model
                if any(p.is_meta for p in model.parameters()):
                    errors.append("a parameter was left on the meta device")
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    def count() -> None:
        for _ in range(10):
            try:
                counts.append(count_parameters_on_meta(RunConfig()))
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    threads = [threading.Thread(target=load), threading.Thread(target=load), threading.Thread(target=count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
    assert len(set(counts)) == 1 and len(counts) == 10
