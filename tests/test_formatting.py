"""Tests for workbench.data.formatting with the real embedded SmolLM2 tokenizer: chat template, loss masks, truncation,
per-batch padding."""

from __future__ import annotations

import copy

import pytest
import torch

from workbench.config import ModelConfig
from workbench.data.examples import Example
from workbench.data.formatting import (
    IGNORE_INDEX,
    TokenizedExample,
    collate,
    encode_example,
    encode_examples,
    encode_prompt,
    render_prompt,
)
from workbench.models.loading import load_tokenizer

ASSISTANT_HEADER = "<|im_start|>assistant\n"
USER = [{"role": "user", "content": "Classify this ticket: my printer is on fire."}]
ANSWER = "category: hardware\npriority: high"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(ModelConfig())


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def answer_part(item: TokenizedExample) -> list[int]:
    return [label for label in item.labels if label != IGNORE_INDEX]


def prompt_len(item: TokenizedExample) -> int:
    return sum(1 for label in item.labels if label == IGNORE_INDEX)


def example(prompt_messages: list[dict], answer: str, line: int = 1) -> Example:
    return Example(messages=(*prompt_messages, {"role": "assistant", "content": answer}), line=line,
                   shape="messages")


# ---------------------------------------------------------------- one example


def test_tokenizer_is_the_real_chat_tokenizer(tok):
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id is not None
    assert tok.pad_token_id is not None


def test_labels_mask_the_prompt_and_learn_the_answer(tok):
    item = encode_example(USER, ANSWER, tok, max_len=256)
    prompt_ids = encode_prompt(USER, tok)
    answer_ids = ids(tok, ANSWER)
    assert not item.truncated
    assert len(item.input_ids) == len(item.labels) == len(prompt_ids) + len(answer_ids) + 1
    assert item.input_ids == prompt_ids + answer_ids + [tok.eos_token_id]
    n = len(prompt_ids)
    assert item.labels[:n] == [IGNORE_INDEX] * n
    assert item.labels[n:] == item.input_ids[n:]
    assert IGNORE_INDEX not in item.labels[n:]
    assert item.answer_tokens == len(answer_ids) + 1


def test_eos_is_last_and_learned(tok):
    item = encode_example(USER, ANSWER, tok, max_len=256)
    assert item.input_ids[-1] == tok.eos_token_id
    assert item.labels[-1] == tok.eos_token_id
    assert item.input_ids.count(tok.eos_token_id) > 1  # the prompt's own <|im_end|> turns are masked...
    masked_eos = [i for i, (t, lab) in enumerate(zip(item.input_ids, item.labels))
                  if t == tok.eos_token_id and lab == IGNORE_INDEX]
    assert masked_eos and masked_eos[-1] < prompt_len(item)  # ...only the closing one is learned


def test_labelled_tokens_decode_to_answer_plus_eos(tok):
    item = encode_example(USER, ANSWER, tok, max_len=256)
    assert tok.decode(answer_part(item)) == ANSWER + tok.eos_token
    assert tok.decode(answer_part(item), skip_special_tokens=True) == ANSWER


def test_prompt_decodes_to_chat_template_text(tok):
    item = encode_example(USER, ANSWER, tok, max_len=256)
    prompt_text = tok.decode(item.input_ids[:prompt_len(item)])
    expected = tok.apply_chat_template(USER, tokenize=False, add_generation_prompt=True)
    assert prompt_text == expected == render_prompt(USER, tok)
    assert prompt_text.endswith(ASSISTANT_HEADER)
    assert "<|im_start|>user\n" + USER[0]["content"] + "<|im_end|>" in prompt_text
    assert ANSWER not in prompt_text


def test_system_message_appears_in_prompt(tok):
    system = "You answer in exactly two lines, lower case."
    messages = [{"role": "system", "content": system}, *USER]
    item = encode_example(messages, ANSWER, tok, max_len=256)
    prompt_text = tok.decode(item.input_ids[:prompt_len(item)])
    assert prompt_text.startswith("<|im_start|>system\n" + system + "<|im_end|>")
    assert "SmolLM" not in prompt_text  # the template's default system prompt is replaced, not added
    default = tok.decode(encode_prompt(USER, tok))
    assert system not in default and "SmolLM" in default


def test_multi_turn_trains_only_the_final_answer(tok):
    first_answer = "Earlier answer that must not be learned."
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "And now?"},
    ]
    final = "Final answer only."
    item = encode_example(messages, final, tok, max_len=512)
    n = prompt_len(item)
    prompt_text = tok.decode(item.input_ids[:n])
    assert first_answer in prompt_text and "And now?" in prompt_text
    assert prompt_text.endswith("<|im_start|>user\nAnd now?<|im_end|>\n" + ASSISTANT_HEADER)
    assert tok.decode(answer_part(item)) == final + tok.eos_token
    assert item.labels[:n] == [IGNORE_INDEX] * n and all(label != IGNORE_INDEX for label in item.labels[n:])


@pytest.mark.parametrize("answer", ["안녕하세요! 주문하신 상품은 내일 도착합니다.", "가격: 12,000원 (부가세 포함) 😊",
                                    "  leading and trailing spaces  "])
def test_answers_round_trip_exactly(tok, answer):
    item = encode_example([{"role": "user", "content": "배송은 언제 되나요?"}], answer, tok, max_len=256)
    learned = answer_part(item)
    assert learned[-1] == tok.eos_token_id
    assert tok.decode(learned[:-1]) == answer
    assert "배송은 언제 되나요?" in tok.decode(item.input_ids[:prompt_len(item)])


def test_empty_answer_still_learns_eos(tok):
    item = encode_example(USER, "", tok, max_len=256)
    assert answer_part(item) == [tok.eos_token_id]


# ---------------------------------------------------------------- truncation


LONG_PROMPT = [{"role": "user", "content": " ".join(f"word{i}" for i in range(400))}]


def test_long_prompt_is_cut_from_the_left_and_answer_kept(tok):
    max_len = 64
    full_prompt = encode_prompt(LONG_PROMPT, tok)
    answer_ids = ids(tok, ANSWER)
    assert len(full_prompt) > 4 * max_len and len(answer_ids) + 1 < max_len // 2
    item = encode_example(LONG_PROMPT, ANSWER, tok, max_len=max_len)
    assert item.truncated
    assert len(item.input_ids) == len(item.labels) == max_len
    assert item.answer_tokens == len(answer_ids) + 1
    assert item.input_ids[-len(answer_ids) - 1:] == answer_ids + [tok.eos_token_id]
    kept = item.input_ids[:prompt_len(item)]
    assert kept == full_prompt[-len(kept):]  # the start of the prompt is what goes
    assert tok.decode(kept).endswith(ASSISTANT_HEADER)
    assert tok.decode(answer_part(item)) == ANSWER + tok.eos_token


def test_exact_fit_is_not_truncated(tok):
    full = encode_example(USER, ANSWER, tok, max_len=10_000)
    exact = encode_example(USER, ANSWER, tok, max_len=len(full.input_ids))
    assert exact == full and not exact.truncated
    shorter = encode_example(USER, ANSWER, tok, max_len=len(full.input_ids) - 1)
    assert shorter.truncated and len(shorter.input_ids) == len(full.input_ids) - 1
    assert shorter.answer_tokens == full.answer_tokens  # the prompt lost a token, not the answer


def test_answer_longer_than_max_len_is_cut_but_kept(tok):
    max_len = 32
    answer = " ".join(f"token{i}" for i in range(200))
    answer_ids = ids(tok, answer)
    assert len(answer_ids) > 2 * max_len
    item = encode_example(USER, answer, tok, max_len=max_len)
    assert item.truncated
    assert len(item.input_ids) == max_len
    assert 0 < item.answer_tokens < len(answer_ids)
    learned = answer_part(item)
    assert learned == answer_ids[:len(learned)]  # the answer keeps its start
    assert prompt_len(item) > 0 and tok.decode(item.input_ids[:prompt_len(item)]).endswith(ASSISTANT_HEADER)


@pytest.mark.parametrize("max_len", [1, 2, 3, 5, 16, 17, 40, 128])
def test_truncated_length_never_exceeds_max_len(tok, max_len):
    for prompt, answer in [(LONG_PROMPT, ANSWER), (USER, "x " * 300), (LONG_PROMPT, "y " * 300)]:
        item = encode_example(prompt, answer, tok, max_len=max_len)
        assert len(item.input_ids) == len(item.labels) <= max_len
        assert item.answer_tokens >= 1
        n = prompt_len(item)
        assert item.labels[:n] == [IGNORE_INDEX] * n  # mask is a prefix, then answer tokens only
        assert item.labels[n:] == item.input_ids[n:]


# ---------------------------------------------------------------- many examples


def test_encode_examples_counts_truncated(tok):
    examples = [example(USER, ANSWER, 1), example(LONG_PROMPT, ANSWER, 2), example(USER, "ok", 3),
                example(LONG_PROMPT, "short", 4)]
    encoded, stats = encode_examples(examples, tok, max_len=64)
    assert stats.examples == 4 and stats.dropped == 0 and stats.truncated == 2
    assert [item.truncated for item in encoded] == [False, True, False, True]
    assert stats.lengths == [len(item.input_ids) for item in encoded]
    assert encoded[0] == encode_example(USER, ANSWER, tok, 64)
    assert tok.decode(answer_part(encoded[2])) == "ok" + tok.eos_token


def test_encode_examples_drops_examples_without_answer_tokens(tok):
    examples = [example(USER, ANSWER, 1), example(LONG_PROMPT, "short", 2)]
    encoded, stats = encode_examples(examples, tok, max_len=0)  # no room for any answer token
    assert encoded == []
    assert stats.examples == 2 and stats.dropped == 2 and stats.truncated == 0 and stats.lengths == []


def test_encode_examples_keeps_preference_chosen(tok):
    pref = Example(messages=tuple(USER), line=1, shape="preference", chosen="good", rejected="bad")
    (item,), stats = encode_examples([pref], tok, max_len=128)
    assert tok.decode(answer_part(item)) == "good" + tok.eos_token and stats.dropped == 0


# ---------------------------------------------------------------- batches


def test_collate_pads_to_longest_row_of_the_batch(tok):
    items = [encode_example(USER, "a", tok, 256), encode_example(USER, ANSWER, tok, 256),
             encode_example([{"role": "user", "content": "hi"}], "b", tok, 256)]
    lengths = [len(item.input_ids) for item in items]
    assert len(set(lengths)) == 3
    width = max(lengths)
    batch = collate(items, tok.pad_token_id)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    for key in batch:
        assert batch[key].shape == (3, width) and batch[key].dtype == torch.long
    assert width < 256  # padded to the batch, not to max_len
    for row, item in enumerate(items):
        n = len(item.input_ids)
        assert batch["input_ids"][row, :n].tolist() == item.input_ids
        assert batch["labels"][row, :n].tolist() == item.labels
        assert batch["attention_mask"][row, :n].tolist() == [1] * n
        assert batch["attention_mask"][row, n:].tolist() == [0] * (width - n)
        assert batch["labels"][row, n:].tolist() == [IGNORE_INDEX] * (width - n)
        assert batch["input_ids"][row, n:].tolist() == [tok.pad_token_id] * (width - n)
    assert int(batch["attention_mask"].sum()) == sum(lengths)
    learned = int((batch["labels"] != IGNORE_INDEX).sum())
    assert learned == sum(item.answer_tokens for item in items)


def test_collate_equal_lengths_has_no_padding(tok):
    item = encode_example(USER, ANSWER, tok, 256)
    batch = collate([item, item, item], tok.pad_token_id)
    assert batch["input_ids"].shape == (3, len(item.input_ids))
    assert bool(batch["attention_mask"].all())
    assert batch["labels"][0].tolist() == item.labels


def test_collate_single_row_with_unusual_pad_id(tok):
    item = encode_example(USER, "a", tok, 256)
    longer = encode_example(USER, ANSWER, tok, 256)
    batch = collate([item, longer], pad_id=12345)
    n = len(item.input_ids)
    assert batch["input_ids"][0, n:].tolist() == [12345] * (len(longer.input_ids) - n)
    assert batch["input_ids"][1].tolist() == longer.input_ids


# ---------------------------------------------------------------- fallback template


def test_tokenizer_without_chat_template_uses_plain_template(tok):
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    assert tok.chat_template  # the shared tokenizer is untouched
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    text = render_prompt(messages, plain)
    assert text == "### System:\nBe brief.\n\n### User:\n" + USER[0]["content"] + "\n\n### Assistant:\n"
    assert "<|im_start|>" not in text
    item = encode_example(USER, ANSWER, plain, max_len=256)
    prompt_text = plain.decode(item.input_ids[:prompt_len(item)])
    assert prompt_text.startswith("### User:\n") and prompt_text.endswith("### Assistant:\n")
    assert plain.decode(answer_part(item)) == ANSWER + plain.eos_token
    assert render_prompt(USER, tok).endswith(ASSISTANT_HEADER)
