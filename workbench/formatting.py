"""Turn examples into token ids with the model's own chat template, with the loss on the answer only.

Each example becomes `prompt ids + answer ids + EOS`. The prompt part (system, user and earlier turns, and the
assistant header) gets label -100 so it adds nothing to the loss; the answer and its closing EOS token are learned,
which is what teaches the model to stop. Batches are padded to their own longest row, never to a fixed length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE_INDEX = -100
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ '### ' + m['role'].capitalize() + ':\\n' + m['content'] + '\\n\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0
    lengths: list[int] = field(default_factory=list)


def render_prompt(messages: Sequence[dict], tokenizer: Any) -> str:
    """The prompt text up to and including the assistant header, in the model's chat template."""
    template = None if getattr(tokenizer, "chat_template", None) else FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=True, chat_template=template
    )


def encode_prompt(messages: Sequence[dict], tokenizer: Any) -> list[int]:
    """Token ids of a chat prompt, ready for generation."""
    return tokenizer(render_prompt(messages, tokenizer), add_special_tokens=False)["input_ids"]


def encode_example(prompt_messages: Sequence[dict], answer: str, tokenizer: Any, max_len: int) -> TokenizedExample:
    """Ids and labels for one example; over-long prompts lose their start, so the answer survives."""
    prompt = encode_prompt(prompt_messages, tokenizer)
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    truncated = len(prompt) + len(answer_ids) > max_len
    if truncated:
        keep_prompt = max(max_len - len(answer_ids), min(len(prompt), max_len // 2))
        prompt = prompt[len(prompt) - keep_prompt:] if keep_prompt > 0 else []
        answer_ids = answer_ids[: max_len - len(prompt)]
    return TokenizedExample(
        input_ids=prompt + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt) + answer_ids,
        truncated=truncated,
    )


def encode_examples(examples: Sequence[Any], tokenizer: Any, max_len: int) -> tuple[list[TokenizedExample],
                                                                                      EncodeStats]:
    """Encode every example; rows left with no answer token after truncation are dropped and counted."""
    stats, encoded = EncodeStats(), []
    for example in examples:
        item = encode_example(example.prompt_messages, example.answer, tokenizer, max_len)
        stats.examples += 1
        if item.answer_tokens == 0:
            stats.dropped += 1
            continue
        stats.truncated += item.truncated
        stats.lengths.append(len(item.input_ids))
        encoded.append(item)
    return encoded, stats


def collate(batch: Sequence[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Pad a batch on the right to its own longest row; padding is masked out of attention and loss."""
    import torch

    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
