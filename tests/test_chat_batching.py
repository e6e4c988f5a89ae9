"""Sides generated together in one batched pass answer exactly as they do one at a time (real model, real PEFT).

Two LoRA adapters, a DoRA adapter (peft cannot mix it into a batch: it takes its turn), a prompt-tuning adapter (its
own wrapper: in turn) and a few-shot base side, on prompts of different lengths so the batch is left-padded.
"""

from __future__ import annotations

import pytest

from workbench.config import ModelConfig
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.lineups import Prices, few_shot_turns, parse_prompt_sheet, prompt_sheet_csv, side_numbers
from workbench.generate.sampling import SamplingConfig

HISTORY = [{"role": "user", "content": "Triage this customer message.\n\nI was charged twice for my order."}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, make_adapter):
    engine = ChatEngine(ModelConfig())
    folder = tmp_path_factory.mktemp("adapters")
    for name, method, seed in (("lora_a", "lora", 0), ("lora_b", "rslora", 1), ("dora", "dora", 0),
                               ("prompt", "prompt_tuning", 0)):
        engine.ensure_adapter(name, make_adapter(folder / name, method, seed))
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
    sampling = SamplingConfig(temperature=temperature, top_p=0.9, max_new_tokens=8, seed=3)
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


@pytest.mark.parametrize(("encoding", "note"), [("utf-8", None), ("utf-8-sig", None), ("cp949", "CP949"),
                                               ("utf-16", "UTF-16")])
def test_a_prompt_csv_from_korean_excel_is_read_in_its_encoding(tmp_path, encoding, note):
    path = tmp_path / "prompts.csv"
    path.write_bytes('id,Prompt\n1,"한국의 수도는?"\n2,"두 줄로\n된 질문"\n3,Say hi.\n'.encode(encoding))
    prompts, notes = prompt_sheet_csv(str(path))
    assert prompts == ["한국의 수도는?", "두 줄로 된 질문", "Say hi."]
    assert (note is None and not notes) or any(note in n for n in notes), notes


def test_a_prompt_csv_without_a_prompt_column_names_its_columns(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text("질문,답\n수도는?,서울\n", encoding="cp949")
    with pytest.raises(ValueError, match=r"'questions.csv' has no 'prompt' column \(columns: 질문, 답\)"):
        prompt_sheet_csv(str(path))


def test_a_shared_context_is_read_once_and_answers_do_not_depend_on_the_cache(engine):
    """The few-shot examples are read once for every later question; a question asked after others gets the very
    answer it gets on an empty cache, batched and in turn, greedy and sampled."""
    from workbench.data.formatting import encode_prompt
    from workbench.generate.prompt_cache import MIN_CONTEXT, context_length

    shots = few_shot_turns("sample:en_ticket_triage", 2, seed=0)
    sides = [Side("few", None, shots), Side("a", "lora_a"), Side("base")]
    questions = [[{"role": "user", "content": text}] for text in
                 ("My invoice shows the wrong address.", "The app crashes when I log in.")]
    tokenizer = engine.loaded.tokenizer
    messages = sides[0].messages(questions[0])
    ids = encode_prompt(messages, tokenizer)
    context = context_length(messages, ids, tokenizer, sides[0].context_size(questions[0]))
    assert MIN_CONTEXT <= context < len(ids) and ids[:context] == encode_prompt(
        sides[0].messages(questions[1]), tokenizer)[:context]  # the examples, not the question
    assert context_length(questions[0], encode_prompt(questions[0], tokenizer), tokenizer, 0) == 0  # too short
    turns = [*questions[0], {"role": "assistant", "content": "Category: billing"}, *questions[1]]
    later = sides[0].messages(turns)  # a later turn: the same examples come first, so the same context
    assert context_length(later, encode_prompt(later, tokenizer), tokenizer, sides[0].context_size(turns)) == context

    for sampling in (SamplingConfig(temperature=0.0, max_new_tokens=3), SamplingConfig(0.8, 0.9, 3, seed=4)):
        for batched in (True, False):
            engine.prompt_cache.clear()
            cold = _answers(engine, sides, sampling, batched, histories=[questions[1]] * 3)
            engine.prompt_cache.clear()
            _answers(engine, sides, sampling, batched, histories=[questions[0]] * 3)
            hits = engine.prompt_cache.hits
            warm = _answers(engine, sides, sampling, batched, histories=[questions[1]] * 3)
            assert engine.prompt_cache.hits == hits + 1  # the few-shot side's examples came from the cache
            assert warm == cold
    assert len(engine.prompt_cache) and engine.prompt_cache.size_bytes <= engine.prompt_cache.max_bytes
    engine.prompt_cache.clear()
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=4)
    for batched in (True, False):  # each side's numbers say how much of its prompt was read before
        for expected in ([0, 0, 0], [context, 0, 0]):  # read, then read before
            states = []
            for states in engine.stream(sides, [questions[0]] * 3, greedy, batched=batched):  # noqa: B007
                pass
            assert [s.cached_tokens for s in states] == expected
        assert f"({context} read before)" in states[0].stats_line() and "read before" not in states[2].stats_line()
        assert side_numbers(states[0])["cached_prompt_tokens"] == context
    engine.prompt_cache.clear()
    assert len(engine.prompt_cache) == 0 and engine.prompt_cache.size_bytes == 0


def test_the_prompt_cache_drops_the_oldest_contexts_past_its_size():
    import torch

    from workbench.generate.prompt_cache import PromptCache

    def run(ids, past):  # a one-layer "model": keys and values of 4 floats per id
        keys = torch.ones(1, 1, len(ids), 4) if past is None else torch.ones(1, 1, len(ids) + 1, 4)
        return type("Out", (), {"past_key_values": type("Cache", (), {
            "layers": [type("Layer", (), {"keys": keys, "values": keys})()]})()})()

    cache = PromptCache(max_bytes=2 * 2 * 10 * 4 * 4)  # two contexts of 10 ids
    for first in (1, 2, 3):
        cache.prefill(run, "m", [first] * 10 + [9], 10)
    assert len(cache) == 2 and cache.misses == 3 and cache.size_bytes <= cache.max_bytes
    cache.prefill(run, "m", [3] * 10 + [8], 10)
    assert cache.hits == 1  # the newest is kept; the oldest went
    cache.prefill(run, "m", [1] * 10 + [8], 10)
    assert cache.misses == 4


def test_the_rows_cache_writes_in_place_and_makes_room_when_an_answer_runs_long():
    import torch

    from workbench.generate.batching import RowsLayer

    short, long = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    layer = RowsLayer([(short, short + 1), (long, long + 1)], width=5, room=1)
    assert torch.equal(layer.keys[0, :, 2:], short[0]) and not layer.keys[0, :, :2].any()  # zeros on the left
    assert torch.equal(layer.values[1], long[0] + 1) and layer.get_mask_sizes(1) == (6, 0)
    steps = [torch.randn(2, 2, 1, 4) for _ in range(3)]  # one more than the room planned: it grows
    for step in steps:
        keys, values = layer.update(step, step * 2)
    assert layer.get_seq_length() == 8 and keys.shape == (2, 2, 8, 4)
    assert torch.equal(keys[:, :, 5:], torch.cat(steps, dim=2)) and torch.equal(values[:, :, 5:], keys[:, :, 5:] * 2)
    assert torch.equal(keys[1, :, :5], long[0])  # what was there before it grew is kept
    layer.batch_select_indices(torch.tensor([1]))
    assert layer.keys.shape == (1, 2, 8, 4) and torch.equal(layer.keys[0, :, :5], long[0])


def test_a_korean_answer_cut_anywhere_never_ends_in_a_broken_character(engine):
    """A Hangul syllable is several tokens: an answer cut at any length (streaming, max new tokens, scoring) ends at
    its last whole character, never in U+FFFD."""
    from workbench.generate.engine import whole_text

    tokenizer = engine.loaded.tokenizer
    korean = [{"role": "user", "content": "한국의 수도는 어디인가요? 두 문장으로 설명해 주세요."}]
    streamed = []
    for states in engine.stream([Side("base")], [korean], SamplingConfig(temperature=0.0, max_new_tokens=40)):
        streamed.append(states[0].text)
    ids, full = states[0].token_ids, states[0].text
    assert any("\ufffd" in tokenizer.decode(ids[:n]) for n in range(1, len(ids))), \
        "no cut falls inside a character: the prompt no longer tests this"
    for n in range(1, len(ids) + 1):
        text = whole_text(tokenizer, ids[:n])
        assert "\ufffd" not in text and full.startswith(text), (n, text)
    assert all("\ufffd" not in text for text in streamed) and "\ufffd" not in full
    for cut in (3, 5, 7, 11):  # the scoring path (Evaluate, the test split after training) cuts the same way
        [state] = engine.generate_batch(None, [korean], cut)
        assert state.new_tokens == cut and "\ufffd" not in state.text and full.startswith(state.text), state.text
