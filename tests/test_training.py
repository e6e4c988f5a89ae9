"""End to end on the real embedded model: train through the CLI and the job runner, stop, queue, fail, reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.config import ModelConfig
from workbench.data.examples import read_examples
from workbench.data.samples import resolve_data_path
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.sampling import SamplingConfig
from workbench.i18n import say
from workbench.models.loading import ModelError, load_model, resolve_model_source
from workbench.runs.store import RunStore
from workbench.train.jobs import JobRunner, execute_run

ROOT = Path(__file__).resolve().parents[1]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=24)


def _cli(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(env_home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def _assert_adapter_files(adapter: Path) -> None:
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").stat().st_size > 10_000
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_cli_train_prints_json_last_and_saves_a_loadable_adapter(tmp_path, home):
    out = tmp_path / "runs"
    # The preset probes forgetting and scores the test split; --set turns both off (they have their own tests).
    proc = _cli("train", "--preset", "presets/classroom-lora.yaml", "--max-steps", "2", "--output-dir", str(out),
                "--rank", "4", "--quiet", "--set", "train.eval_test=false", "--set", "train.general_every=0",
                "--set", "train.max_seq_len=128", env_home=home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"run_id", "adapter_path", "train_loss", "steps", "seconds"} <= set(summary)
    assert summary["steps"] == 2 and summary["status"] == "completed"
    assert summary["train_loss"] > 0 and summary["seconds"] > 0
    _assert_adapter_files(Path(summary["adapter_path"]))
    assert json.loads((Path(summary["adapter_path"]) / "adapter_config.json").read_text())["r"] == 4
    store = RunStore(out)
    record = store.get_run(summary["run_id"])
    assert record.status == "completed" and record.steps == 2
    saved = store.load_config(record.run_id)
    assert (saved.train.eval_test, saved.train.general_every, saved.train.max_seq_len) == (False, 0, 128)
    assert [row["step"] for row in store.read_metrics(record.run_id) if "train_loss" in row] == [1, 2]

    from peft import PeftModel

    loaded = load_model(ModelConfig())
    peft_model = PeftModel.from_pretrained(loaded.model, summary["adapter_path"])
    assert any("lora_A" in name for name, _ in peft_model.named_parameters())


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_on_the_cli_stops_the_run_at_its_next_step_and_says_how_to_resume(tmp_path, home, signame):
    import signal
    import time

    out = tmp_path / "runs"
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", "--preset", "classroom-lora", "--max-steps",
                             "500", "--output-dir", str(out), "--quiet", "--set", "train.batch_size=1", "--set",
                             "train.max_seq_len=64", "--set", "train.eval_every=0", "--set", "train.general_every=0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any("train_loss" in row for run in RunStore(out).list_runs()
                      for row in RunStore(out).read_metrics(run.run_id)):
            assert proc.poll() is None and time.monotonic() < deadline, "the CLI run never logged a step"
            time.sleep(0.3)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["status"] == "stopped" and 1 <= summary["steps"] < 500
    assert "Stopping at the next step" in stderr and f"--resume {summary['run_id']}" in stderr
    assert "Traceback" not in stderr
    _assert_adapter_files(Path(summary["adapter_path"]))
    assert RunStore(out).get_run(summary["run_id"]).status == "stopped"


def test_cli_reports_bad_settings_in_one_line(home):
    proc = _cli("train", "--preset", "presets/classroom-lora.yaml", "--rank", "0", env_home=home)
    assert proc.returncode == 2
    assert "method.rank" in proc.stderr and "between 1 and 256" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli("train", "--set", "train.eval_everyy=3", env_home=home)
    assert proc.returncode == 2 and "eval_everyy" in proc.stderr and "Traceback" not in proc.stderr


def test_data_check_cli_exit_codes_and_report(tmp_path, home):
    good = tmp_path / "mixed.jsonl"
    good.write_text('{"instruction": "a", "output": "b"}\nnot json\n{"instruction": "c", "output": ""}\n')
    proc = _cli("data", "check", str(good), env_home=home)
    assert proc.returncode == 0
    assert "good: 1" in proc.stdout and "bad: 2" in proc.stdout
    assert "line 2" in proc.stdout and "line 3" in proc.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n')
    proc = _cli("data", "check", str(bad), env_home=home)
    assert proc.returncode == 1
    assert "instruction" in proc.stderr + proc.stdout


def test_job_runner_trains_and_the_adapter_changes_answers(home, tiny_config):
    runner = JobRunner(RunStore(home / "runs"))
    config = tiny_config(**{"train.max_steps": 8, "train.eval_every": 4, "train.learning_rate": 0.004})
    record = runner.submit(config)
    snapshot = runner.wait(record.run_id, timeout=600)
    assert snapshot.status == "completed", snapshot.error
    assert snapshot.step == snapshot.total_steps == 8
    rows = runner.store.read_metrics(record.run_id)
    losses = [row["train_loss"] for row in rows if "train_loss" in row]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert [row["step"] for row in rows if "val_loss" in row] == [0, 4, 8]  # step 0: the starting point
    adapter = runner.store.adapter_dir(record.run_id)
    _assert_adapter_files(adapter)

    example = read_examples(resolve_data_path(config.data.path)).examples[0]
    history = list(example.prompt_messages)
    engine = ChatEngine(ModelConfig())
    base = engine.answer(Side("base"), history, GREEDY)
    engine.ensure_adapter("tuned", adapter)
    tuned = engine.answer(Side("tuned", "tuned"), history, GREEDY)
    base_again = engine.answer(Side("base"), history, GREEDY)
    assert tuned.text != base.text
    assert base_again.text == base.text  # the base side really runs with the adapter switched off
    assert tuned.text.startswith("Category:")  # the fixed answer format of the sample set
    runner.shutdown()


def test_stop_saves_a_usable_adapter_and_queue_is_fifo(home, tiny_config):
    runner = JobRunner(RunStore(home / "runs"))
    first = runner.submit(tiny_config(**{"train.max_steps": 500}))
    second = runner.submit(tiny_config(**{"train.max_steps": 1}))
    third = runner.submit(tiny_config(**{"train.max_steps": 1}))
    assert runner.queue_position(second.run_id) == 1 and runner.queue_position(third.run_id) == 2
    deadline = time.monotonic() + 300
    while runner.snapshot(first.run_id).step < 2:
        assert time.monotonic() < deadline, "the first run never reached step 2"
        time.sleep(0.2)
    assert runner.snapshot(second.run_id).status == "queued"
    assert runner.stop(third.run_id)  # cancel while waiting
    assert runner.stop(first.run_id)
    stopped = runner.wait(first.run_id, timeout=120)
    assert stopped.status == "stopped" and 2 <= stopped.step < 500
    _assert_adapter_files(runner.store.adapter_dir(first.run_id))
    assert runner.wait(second.run_id, timeout=300).status == "completed"
    assert runner.store.get_run(third.run_id).status == "cancelled"
    assert not runner.store.adapter_dir(third.run_id).exists()
    runner.shutdown()


def test_a_failing_run_is_recorded_and_the_next_one_works(home, tiny_config, tmp_path):
    runner = JobRunner(RunStore(home / "runs"))
    bad = tmp_path / "no-good-rows.jsonl"
    bad.write_text('{"foo": 1}\n')
    failed = runner.submit(tiny_config(**{"data.path": str(bad)}))
    assert runner.wait(failed.run_id, timeout=300).status == "failed"
    assert "DataError" in runner.store.get_run(failed.run_id).error
    assert "instruction" in runner.store.get_run(failed.run_id).error
    ok = runner.submit(tiny_config(**{"train.max_steps": 1}))
    assert runner.wait(ok.run_id, timeout=300).status == "completed"
    runner.shutdown()


def test_execute_run_records_the_same_as_the_cli(home, tiny_config):
    store = RunStore(home / "runs")
    config = tiny_config(**{"train.max_steps": 2})
    record = store.create_run(config)
    events = []
    result = execute_run(store, record.run_id, config, on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds[:kinds.index("start")] == ["phase"] * kinds.index("start") and kinds[-1] == "end"
    assert [say(e.values["phase"], "en") for e in events if e.kind == "phase"][0] == "loading the model"
    saved = store.get_run(record.run_id)
    assert saved.status == "completed" and saved.train_loss == pytest.approx(result.train_loss)
    assert store.read_json(record.run_id, "result.json")["steps"] == 2
    assert store.load_config(record.run_id) == config


def test_offline_hub_id_fails_fast_with_one_line():
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        resolve_model_source("someone/not-a-cached-model")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message and "not in the local Hugging Face cache" in message
    with pytest.raises(ModelError, match="not found or has no config.json"):
        resolve_model_source("./no/such/folder")
    with pytest.raises(ModelError, match="neither a local folder nor a Hub id"):
        resolve_model_source("not a model")


def test_embedded_model_loads_from_safetensors_cache():
    source, extra = resolve_model_source("embedded")
    assert (Path(source) / "model.safetensors").is_file() and extra == {}
    started = time.monotonic()
    loaded = load_model(ModelConfig())
    assert time.monotonic() - started < 20
    assert loaded.model.dtype == torch.float32 and loaded.device == "cpu"
    assert loaded.tokenizer.eos_token == "<|im_end|>"


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_gradient_checkpointing_trains_the_same_losses_and_lowers_the_estimate(tmp_path, tiny_config, method):
    """Recomputing activations in the backward pass changes the memory, not the arithmetic: same dropout masks,
    same losses, same adapter."""
    from safetensors.torch import load_file

    from workbench.train.loop import run_training
    from workbench.train.preflight import preflight

    results = {}
    for checkpointing in (False, True):
        config = tiny_config(**{"method.name": method, "train.gradient_checkpointing": checkpointing,
                                "train.eval_every": 0, "data.val_size": 0})
        losses: list[float] = []

        def on_event(event, losses=losses) -> None:
            if event.kind == "step":
                losses.append(event.values["train_loss"])

        result = run_training(config, tmp_path / str(checkpointing), on_event=on_event)
        weights = load_file(str(Path(result.adapter_path) / "adapter_model.safetensors"))
        results[checkpointing] = (losses, weights, preflight(config).memory.activations)
    (plain_losses, plain_weights, plain_memory), (ckpt_losses, ckpt_weights, ckpt_memory) = results.values()
    assert len(plain_losses) == 3 and ckpt_losses == pytest.approx(plain_losses, abs=1e-5)
    for name, tensor in plain_weights.items():
        assert torch.allclose(ckpt_weights[name], tensor, atol=1e-5), name
    assert ckpt_memory < plain_memory / 2
