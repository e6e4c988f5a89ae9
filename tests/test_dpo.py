"""DPO end to end on the real embedded model with real trl and PEFT: events, a preference shift, continuing an SFT
adapter, stopping, and the errors for a wrong method or data without preference pairs."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from workbench.config import ModelConfig, RunConfig
from workbench.data.examples import DataError, read_examples, split_examples
from workbench.data.formatting import IGNORE_INDEX, encode_example
from workbench.models.loading import load_model, load_tokenizer
from workbench.train.dpo import run_dpo

PAIRS = [  # (prompt, chosen: polite and right, rejected: rude or wrong)
    ("What is the capital of France?", "The capital of France is Paris.", "Figure it out yourself."),
    ("How many days are in a week?", "There are seven days in a week.", "Who cares? Stop asking me."),
    ("What is 2 + 2?", "2 + 2 equals 4.", "Obviously 5, everyone knows that."),
    ("Can you help me reset my password?", "Of course! Click 'Forgot password' on the sign-in page.",
     "No. Do it yourself."),
    ("What colour is the sky on a clear day?", "On a clear day the sky is blue.", "Green. Now go away."),
    ("Thank you for your help!", "You're welcome, happy to help!", "Whatever."),
    ("How do I boil an egg?", "Put the egg in boiling water for about eight minutes, then cool it.",
     "Throw it at the wall."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.", "Pluto, obviously."),
    ("Can you recommend a good book?", "Sure! 'To Kill a Mockingbird' is a classic many people enjoy.",
     "Read whatever, I don't care."),
    ("한국의 수도는 어디인가요?", "한국의 수도는 서울입니다.", "몰라, 귀찮게 하지 마."),
    ("오늘 날씨 어때요?", "죄송하지만 실시간 날씨는 알 수 없어요. 기상청 누리집을 확인해 보세요.", "알아서 찾아봐."),
    ("감사합니다!", "천만에요, 도움이 되어 기뻐요!", "됐고."),
    ("물은 몇 도에서 끓나요?", "물은 1기압에서 섭씨 100도에서 끓습니다.", "50도. 그것도 몰라?"),
    ("What is the boiling point of water?", "Water boils at 100 °C at sea level.", "Water never boils, silly."),
]


@pytest.fixture(scope="module")
def preference_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}, ensure_ascii=False) + "\n"
                            for p, c, r in PAIRS), encoding="utf-8")
    return path


def dpo_config(data: Path | str, init_adapter: str = "", beta: float = 0.1, **overrides) -> RunConfig:
    """A tiny DPO run; the DPO-only fields are set as plain attributes until the config carries them."""
    base = {"data.path": str(data), "data.val_size": 0, "data.test_size": 0, "train.max_steps": 4,
            "train.batch_size": 2, "train.max_seq_len": 96, "train.learning_rate": 5e-3, "train.warmup_ratio": 0.0,
            "train.eval_every": 0, "train.general_every": 0, "train.eval_test": False}
    config = RunConfig().with_overrides({**base, **overrides})
    config.train.dpo_beta, config.train.init_adapter = beta, init_adapter
    return config


@functools.cache
def embedded_tokenizer():
    return load_tokenizer(ModelConfig())


def answer_logprob(model, example, answer: str) -> float:
    """Summed log-probability of the answer tokens (and the closing EOS) after the chat-formatted prompt."""
    encoded = encode_example(example.prompt_messages, answer, embedded_tokenizer(), 256)
    ids, labels = torch.tensor([encoded.input_ids]), torch.tensor([encoded.labels])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[:, :-1].float().log_softmax(-1)
    token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return float((token_logp * (labels[:, 1:] != IGNORE_INDEX)).sum())


def mean_margin(model, examples) -> float:
    """Mean of log p(chosen) − log p(rejected) over the pairs."""
    margins = [answer_logprob(model, e, e.chosen) - answer_logprob(model, e, e.rejected) for e in examples]
    return sum(margins) / len(margins)


def train_pairs(config: RunConfig):
    examples = read_examples(config.data.path, kind="preference").examples
    return split_examples(examples, config.data.val_size, config.data.test_size, config.data.split_seed)[0]


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def lora_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_dpo_lora_run_reports_events_and_raises_the_chosen_answers(tmp_path, preference_file):
    from peft import PeftModel

    config = dpo_config(preference_file, **{"data.val_size": 2})
    events = []
    result = run_dpo(config, tmp_path / "run", events.append, lambda: False)

    assert [e.kind for e in events] == ["start", "step", "step", "step", "step", "eval", "end"]
    start, steps, end = events[0], [e for e in events if e.kind == "step"], events[-1]
    assert start.total_steps == 4 and start.values["objective"] == "dpo"
    assert start.values["train_examples"] == 12 and start.values["val_examples"] == 2
    assert 0 < start.values["trainable_params"] < start.values["total_params"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert all(math.isfinite(e.values["train_loss"]) for e in steps)
    assert steps[0].values["train_loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert all(e.values["reward_accuracy"] is not None and e.values["reward_margin"] is not None for e in steps)
    assert steps[-1].values["tokens"] > steps[0].values["tokens"] > 0
    assert math.isfinite(events[-2].values["val_loss"])
    assert end.values == result.to_dict()
    assert result.status == "completed" and result.steps == 4 and result.val_loss == events[-2].values["val_loss"]

    adapter = Path(result.adapter_path)
    assert adapter == tmp_path / "run" / "adapter"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["adapter"]  # trl's work folder is gone
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    pairs = train_pairs(config)
    base = load_model(ModelConfig()).model
    before = mean_margin(base, pairs)
    after = mean_margin(PeftModel.from_pretrained(base, str(adapter)), pairs)
    assert after > before + 1.0, (before, after)


def test_dpo_continues_an_sft_adapter_against_it_as_reference(tmp_path, preference_file, tiny_config):
    from peft import PeftModel

    from workbench.train.loop import run_training

    sft = run_training(tiny_config(**{"train.max_steps": 3, "data.val_size": 0, "data.test_size": 0,
                                      "train.max_seq_len": 64, "train.learning_rate": 5e-3}), tmp_path / "sft")
    sft_adapter = Path(sft.adapter_path)
    sft_files = file_hashes(sft_adapter)

    events = []
    config = dpo_config(preference_file, init_adapter=str(sft_adapter), **{"train.max_steps": 3})
    result = run_dpo(config, tmp_path / "dpo", events.append, lambda: False)

    first = next(e for e in events if e.kind == "step")
    # The reference is the SFT adapter as it started, not the bare base: no reward and loss ln 2 at step 1 …
    assert first.values["reward_chosen"] == pytest.approx(0.0, abs=1e-4)
    assert first.values["train_loss"] == pytest.approx(math.log(2), abs=1e-4)
    # … which says something only because the SFT adapter scores the answers differently from the base.
    pair = train_pairs(config)[0]
    base = load_model(ModelConfig()).model
    base_logp = answer_logprob(base, pair, pair.chosen)
    sft_logp = answer_logprob(PeftModel.from_pretrained(base, str(sft_adapter)), pair, pair.chosen)
    assert abs(sft_logp - base_logp) > 1e-2

    assert result.status == "completed" and result.steps == 3
    assert file_hashes(sft_adapter) == sft_files  # the starting adapter is never written to
    dpo_adapter = Path(result.adapter_path)
    assert sorted(p.name for p in dpo_adapter.iterdir() if p.is_dir()) == []  # no frozen "ref" copy saved
    start, trained = lora_tensors(sft_adapter), lora_tensors(dpo_adapter)
    assert trained.keys() == start.keys()
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_dpo_stops_when_asked_and_keeps_what_it_trained(tmp_path, preference_file):
    events = []

    def stop_after_two() -> bool:
        return sum(e.kind == "step" for e in events) >= 2

    result = run_dpo(dpo_config(preference_file, beta=0.5, **{"train.max_steps": 6}), tmp_path / "run",
                     events.append, stop_after_two)
    assert result.status == "stopped" and result.steps == 2 and result.total_steps == 6
    assert [e.step for e in events if e.kind == "step"] == [1, 2]
    assert events[-1].kind == "end" and events[-1].values["status"] == "stopped"
    assert (Path(result.adapter_path) / "adapter_model.safetensors").is_file()


def test_dpo_refuses_a_method_that_is_not_lora(tmp_path, preference_file):
    with pytest.raises(ValueError, match=r"'ia3'.*lora"):
        run_dpo(dpo_config(preference_file, **{"method.name": "ia3"}), tmp_path, lambda e: None, lambda: False)


def test_dpo_explains_that_instruction_data_has_no_preference_pairs(tmp_path):
    with pytest.raises(DataError, match=r"no preference rows.*prompt, chosen, rejected.*in the Arena tab"):
        run_dpo(dpo_config("sample:en_ticket_triage"), tmp_path, lambda e: None, lambda: False)


def test_dpo_refuses_an_init_adapter_that_is_not_an_adapter(tmp_path, preference_file):
    with pytest.raises(ValueError, match=r"train\.init_adapter .*not a PEFT adapter folder"):
        run_dpo(dpo_config(preference_file, init_adapter=str(tmp_path)), tmp_path, lambda e: None, lambda: False)


def test_engine_runs_dpo_from_the_config_and_records_it(tmp_path):
    """objective: dpo goes through the same execute_run as SFT: store rows, metrics, a loadable adapter."""
    from workbench.config import RunConfig
    from workbench.runs.store import RunStore
    from workbench.train.jobs import execute_run

    store = RunStore(tmp_path / "runs")
    config = RunConfig().with_overrides({
        "data.path": "sample:ko_polite_preference", "train.objective": "dpo", "train.max_steps": 2,
        "train.batch_size": 2, "train.max_seq_len": 96, "train.eval_every": 0, "data.val_size": 2,
        "data.test_size": 2, "train.general_every": 0, "train.eval_test": False, "train.learning_rate": 0.005})
    record = store.create_run(config)
    result = execute_run(store, record.run_id, config)
    assert result.status == "completed" and result.steps == 2
    stored = store.get_run(record.run_id)
    assert stored.status == "completed" and stored.train_loss == pytest.approx(result.train_loss)
    steps = [row for row in store.read_metrics(record.run_id) if "train_loss" in row]
    assert [row["step"] for row in steps] == [1, 2] and "reward_accuracy" in steps[0]
    assert (store.adapter_dir(record.run_id) / "adapter_config.json").is_file()


def test_the_data_kind_decides_the_objective_before_anything_starts(tmp_path, preference_file):
    from workbench.data.examples import file_kind
    from workbench.data.view import describe_data
    from workbench.train.preflight import preflight

    assert file_kind(preference_file) == "preference"
    assert file_kind(Path("workbench/data/samples/en_ticket_triage.jsonl")) == "sft"
    view = describe_data(str(preference_file), 0.0, 0.0, 0)
    assert view.kind == "preference" and view.good == len(PAIRS) and "Preference pairs" in view.summary
    assert view.splits["train"][0]["answer"].startswith("✓ chosen: ") and "✗ rejected: " in \
        view.splits["train"][0]["answer"]
    assert describe_data("sample:en_ticket_triage", 0.1, 0.1, 0).kind == "sft"

    sft_on_pairs = " ".join(preflight(RunConfig().with_overrides({"data.path": str(preference_file)})).problems)
    assert "holds preference pairs" in sft_on_pairs and "set the objective to DPO" in sft_on_pairs
    dpo_on_instructions = " ".join(preflight(dpo_config("sample:en_ticket_triage", **{"train.objective": "dpo"}))
                                   .problems)
    assert "needs preference pairs" in dpo_on_instructions and "export your Arena votes" in dpo_on_instructions
    assert not preflight(dpo_config(preference_file, **{"train.objective": "dpo"})).problems
    missing = " ".join(preflight(RunConfig().with_overrides({"data.path": str(tmp_path / "nope.jsonl")})).problems)
    assert missing.startswith("data: ") and "nope.jsonl" in missing
