"""Every registered method, all the way through on the real embedded model: train, save, reload, answer differently.

Parametrised over the registry, so a new method is tested by adding its entry. Methods that need a CUDA GPU
skip here with the reason, and their refusal message is checked instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.config import ConfigError, ModelConfig, RunConfig
from workbench.data.examples import read_examples
from workbench.data.formatting import encode_examples
from workbench.data.samples import resolve_data_path
from workbench.evaluate.loss import evaluate_loss
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.sampling import SamplingConfig
from workbench.methods.registry import KNOBS, METHODS, get_method
from workbench.models.adapters import MANIFEST_FILE, WEIGHTS_FILE, read_weights
from workbench.models.loading import load_model
from workbench.train.attach import attach_method
from workbench.train.loop import run_training
from workbench.train.preflight import PreflightError, check_runnable, cuda_available, preflight

PROMPT = [{"role": "user", "content": "Triage this customer message.\n\nI was charged twice for my order."}]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=8)
CPU_METHODS = [name for name, spec in METHODS.items() if not spec.needs_cuda]
GPU_METHODS = [name for name, spec in METHODS.items() if spec.needs_cuda]


# Session-wide (built once per test worker): the tests of this module are shared out one by one (conftest.py).
@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The first 16 rows of the English sample: small enough that every method visibly fits it in 4 steps."""
    path = tmp_path_factory.mktemp("data") / "tiny.jsonl"
    lines = resolve_data_path("sample:en_ticket_triage").read_text(encoding="utf-8").splitlines()[:16]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(method: str, data: Path | None = None, **overrides) -> RunConfig:
    spec = get_method(method)
    settings = {"method.name": method, "train.learning_rate": spec.learning_rate * 2, "train.max_steps": 4,
                "train.batch_size": 2, "train.max_seq_len": 128, "train.eval_every": 0, "train.warmup_ratio": 0.0,
                "data.val_size": 0, "data.test_size": 0, "train.general_every": 0, **overrides}
    if data is not None:
        settings["data.path"] = str(data)
    return RunConfig().with_overrides(settings)


@pytest.fixture(scope="session")
def engine() -> ChatEngine:
    """One engine for every method, as in the app: each run's result is loaded beside the others on one base."""
    return ChatEngine(ModelConfig())


@pytest.fixture(scope="session")
def base_answer(engine) -> str:
    return engine.answer(Side("base"), PROMPT, GREEDY).text


@pytest.mark.parametrize("method", CPU_METHODS)
def test_method_trains_saves_reloads_and_changes_answers(method, tmp_path, engine, base_answer, tiny_data):
    config = _config(method, tiny_data)
    loaded = load_model(config.model)
    examples = read_examples(tiny_data).examples
    batch, _ = encode_examples(examples[:4], loaded.tokenizer, 128)
    model = attach_method(loaded.model, config)
    before = evaluate_loss(model, batch, 4, loaded.tokenizer.pad_token_id, "cpu")
    del model, loaded

    result = run_training(config, tmp_path)
    assert result.status == "completed" and result.steps == 4
    adapter = Path(result.adapter_path)
    if get_method(method).uses_peft:
        saved = json.loads((adapter / "adapter_config.json").read_text())
        assert (adapter / "adapter_model.safetensors").is_file()
        assert not list(adapter.glob("*.bin")), "weights must be safetensors only"
        assert saved["peft_type"]
    else:
        tensors = read_weights(adapter)
        assert json.loads((adapter / MANIFEST_FILE).read_text())["method"] == method
        assert sum(t.numel() for t in tensors.values()) == result.trainable_params
        assert (adapter / WEIGHTS_FILE).stat().st_size >= result.trainable_params * 4

    engine.ensure_adapter(method, adapter)
    tuned = engine.answer(Side(method, method), PROMPT, GREEDY)
    assert tuned.text != base_answer, f"{method} answers exactly like the base model"
    assert engine.answer(Side("base"), PROMPT, GREEDY).text == base_answer  # one base, untouched

    after_model = load_model(config.model)
    from workbench.models.adapters import load_trained

    reloaded = load_trained(after_model.model, adapter)
    after = evaluate_loss(reloaded, batch, 4, after_model.tokenizer.pad_token_id, "cpu")
    assert after < before, f"{method}: loss on its training examples went from {before:.3f} to {after:.3f}"


@pytest.mark.parametrize("method", GPU_METHODS)
def test_gpu_methods_are_refused_without_cuda_with_a_way_out(method):
    if cuda_available():
        pytest.skip("this machine has a CUDA GPU; the refusal path is for CPU-only machines")
    config = _config(method)
    with pytest.raises(PreflightError, match="needs a CUDA GPU; this machine has none — choose LoRA"):
        check_runnable(config)
    assert "needs a CUDA GPU" in " ".join(preflight(config).problems)


@pytest.mark.parametrize("method", GPU_METHODS)
def test_gpu_methods_train_on_a_gpu(method, tmp_path):
    if not cuda_available():
        pytest.skip(f"{method} needs a CUDA GPU with bitsandbytes; this machine has none")
    result = run_training(_config(method, **{"train.max_steps": 2}), tmp_path)
    assert result.status == "completed"
    assert (Path(result.adapter_path) / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("method", list(METHODS))
def test_preflight_counts_match_training(method):
    if get_method(method).needs_cuda:
        pytest.skip("counted on the meta device like LoRA; trained only on a GPU")
    config = _config(method)
    plan = preflight(config)
    model = attach_method(load_model(config.model).model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert plan.trainable == trainable > 0
    assert plan.memory.total > plan.memory.weights > 0 and plan.memory.available > 0
    assert "Trainable parameters" in plan.summary() and "Memory (estimate)" in plan.summary()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_knob_of_every_method_validates(method):
    for name in get_method(method).knobs:
        knob = KNOBS[name]
        bad = "no-such-choice" if knob.choices else (knob.maximum + 1 if knob.maximum is not None else 10**9)
        if isinstance(knob.default, str) and not knob.choices:
            bad = "x" * 5000
        with pytest.raises(ConfigError) as info:
            RunConfig().with_overrides({"method.name": method, f"method.{name}": bad})
        assert f"method.{name}" in str(info.value)


def test_preflight_refuses_what_does_not_fit_in_memory():
    huge = _config("full", **{"train.batch_size": 1024, "train.max_seq_len": 131_072})
    problems = preflight(huge).problems
    assert any("lower the batch size" in p for p in problems)
