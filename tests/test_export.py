"""Export on real runs: zip, merge (the merged model answers like base + adapter), push refused offline."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workbench.config import ModelConfig
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.sampling import SamplingConfig
from workbench.models.export import ExportError, merge_adapter, push_adapter, zip_adapter
from workbench.runs.store import RunStore
from workbench.train.jobs import execute_run

PROMPT = [{"role": "user", "content": "Triage this customer message.\n\nMy parcel never arrived."}]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12)


def _train(store: RunStore, tiny_config, **overrides) -> str:
    config = tiny_config(**{"train.max_steps": 3, "train.eval_every": 0, **overrides})
    record = store.create_run(config)
    execute_run(store, record.run_id, config)
    return record.run_id


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_config):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    config = tiny_config(**{"train.max_steps": 4, "train.batch_size": 4, "train.eval_every": 0,
                            "train.learning_rate": 0.005, "data.val_size": 0, "data.test_size": 0})
    record = store.create_run(config)
    execute_run(store, record.run_id, config)
    return store, record.run_id


def test_zip_holds_the_adapter_and_config(lora_run):
    store, run_id = lora_run
    path = zip_adapter(store, run_id)
    names = set(zipfile.ZipFile(path).namelist())
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "config.yaml"} <= names


def test_merged_lora_answers_like_base_plus_adapter(lora_run):
    store, run_id = lora_run
    merged = merge_adapter(store, run_id)
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    with_adapter = ChatEngine(ModelConfig())
    with_adapter.ensure_adapter("a", store.adapter_dir(run_id))
    expected = with_adapter.answer(Side("a", "a"), PROMPT, GREEDY).text
    standalone = ChatEngine(ModelConfig(name_or_path=str(merged))).answer(Side("m"), PROMPT, GREEDY).text
    assert standalone == expected


def test_soft_prompts_cannot_be_merged_and_say_so(tmp_path, tiny_config):
    store = RunStore(tmp_path / "runs")
    run_id = _train(store, tiny_config, **{"method.name": "prefix_tuning", "train.learning_rate": 0.01})
    with pytest.raises(ExportError, match="cannot be merged into the weights"):
        merge_adapter(store, run_id)


def test_push_is_refused_offline_with_a_way_out(lora_run):
    store, run_id = lora_run
    with pytest.raises(ExportError, match="cannot be reached"):
        push_adapter(store, run_id, "someone/adapter")
    with pytest.raises(ExportError, match="must look like"):
        push_adapter(store, run_id, "no-slash")


def test_export_cli(lora_run, tmp_path):
    store, run_id = lora_run
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "workbench", "export", run_id, "--zip", "--output-dir",
                           str(store.root)], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout.strip().splitlines()[-1])["zip"]).is_file()
