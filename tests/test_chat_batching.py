"""Sides generated together in one batched pass answer exactly as they do one at a time (real model, real PEFT).

Two LoRA adapters, a DoRA adapter (peft cannot mix it into a batch: it takes its turn), a prompt-tuning adapter (its
own wrapper: in turn) and a few-shot base side, on prompts of different lengths so the batch is left-padded.
"""

from __future__ import annotations

import pytest

from workbench.arena import Prices, few_shot_turns, parse_prompt_sheet, side_numbers
from workbench.chat import ChatEngine, SamplingConfig, Side
from workbench.config import ModelConfig, RunConfig
from workbench.training import run_training

TINY = {"train.max_steps": 3, "train.batch_size": 2, "train.max_seq_len": 96, "train.eval_every": 0,
        "train.learning_rate": 0.01, "train.warmup_ratio": 0.0, "data.val_size": 4, "data.test_size": 4,
        "train.general_every": 0, "train.eval_test": False}
HISTORY = [{"role": "user", "content": "Triage this customer message.\n\nI was charged twice for my order."}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = ChatEngine(ModelConfig())
    folder = tmp_path_factory.mktemp("adapters")
    for name, method, seed in (("lora_a", "lora", 0), ("lora_b", "rslora", 1), ("dora", "dora", 0),
                               ("prompt", "prompt_tuning", 0)):
        config = RunConfig().with_overrides({**TINY, "method.name": method, "train.seed": seed})
        engine.ensure_adapter(name, run_training(config, folder / name).adapter_path)
    return engine


def _answers(engine, sides, sampling, batched, histories=None):
    states = []
    for states in engine.stream(sides, histories or [HISTORY] * len(sides), sampling, batched=batched):  # noqa: B007
        pass
    return [state.token_ids for state in states]


def test_batchable_kinds(engine):
    assert engine.batchable(None) and engine.batchable("lora_a") and engine.batchable("lora_b")
    assert not engine.batchable("dora") and not engine.batchable("prompt")


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_batched_sides_equal_one_at_a_time(engine, temperature):
    shots = few_shot_turns("sample:en_ticket_triage", 2, seed=0)
    sides = [Side("base"), Side("a", "lora_a"), Side("b", "lora_b"), Side("few", None, shots), Side("d", "dora"),
             Side("p", "prompt")]
    sampling = SamplingConfig(temperature=temperature, top_p=0.9, max_new_tokens=12, seed=3)
    batched = _answers(engine, sides, sampling, batched=True)
    assert batched == _answers(engine, sides, sampling, batched=False)
    assert all(batched) and batched[0] != batched[1]  # the adapter changed something, the rows did not mix


def test_left_padded_rows_of_different_lengths_keep_their_answers(engine):
    short = [{"role": "user", "content": "Hi"}]
    sides = [Side("base"), Side("a", "lora_a")]
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=10)
    together = _answers(engine, sides, greedy, batched=True, histories=[short, HISTORY])
    assert together[0] == _answers(engine, [sides[0]], greedy, batched=False, histories=[short])[0]
    assert together[1] == _answers(engine, [sides[1]], greedy, batched=False, histories=[HISTORY])[0]


def test_few_shot_turns_are_seeded_and_never_the_asked_prompt():
    turns = few_shot_turns("sample:ko_review_sentiment", 3, seed=5)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 3
    assert turns == few_shot_turns("sample:ko_review_sentiment", 3, seed=5)
    assert turns[0]["content"] not in [t["content"] for t in few_shot_turns(
        "sample:ko_review_sentiment", 3, seed=5, exclude=turns[0]["content"])[::2]]
    with pytest.raises(ValueError, match="0 to 8"):
        few_shot_turns("sample:ko_review_sentiment", 9)
    side = Side("few", None, turns)
    system = [{"role": "system", "content": "Be brief."}, *HISTORY]
    assert side.messages(system)[0]["role"] == "system" and side.messages(system)[1:7] == list(turns)


def test_costs_and_numbers(engine):
    state = engine.answer(Side("base"), HISTORY, SamplingConfig(temperature=0.0, max_new_tokens=6))
    prices = Prices(prompt_per_1k=0.5, output_per_1k=2.0)
    row = side_numbers(state, prices)
    assert row["cost"] == pytest.approx(state.prompt_tokens / 1000 * 0.5 + state.new_tokens / 1000 * 2.0, abs=1e-6)
    assert "cost" not in side_numbers(state, Prices()) and row["new_tokens"] == state.new_tokens <= 6
    with pytest.raises(ValueError, match="prompt_per_1k"):
        Prices(prompt_per_1k=-1)
    assert parse_prompt_sheet("prompt\nfirst\n\n 둘째 \n") == ["first", "둘째"]
    with pytest.raises(ValueError, match="empty"):
        parse_prompt_sheet("\n \n")
