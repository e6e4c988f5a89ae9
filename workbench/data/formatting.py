"""Turn examples into token ids with the model's own chat template, with the loss on the answer only.

Each example becomes `prompt ids + answer ids + EOS`. The prompt part (system, user and earlier turns, and the
assistant header) gets label -100 so it adds nothing to the loss; the answer and its closing EOS token are learned,
which is what teaches the model to stop. Batches are padded to their own longest row, never to a fixed length.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.i18n import message

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


def _token_counts(texts: list[str], tokenizer: Any) -> list[int]:
    """len(tokenizer(text, add_special_tokens=False)["input_ids"]) of each text, in one batched call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    # The Rust tokenizer itself, as tokenizer(...) calls it, but without building Python lists of the ids; only when
    # it is set up as tokenizer(...) would set it (no truncation or padding, special tokens kept whole).
    if backend is not None and backend.truncation is None and backend.padding is None \
            and not getattr(backend, "encode_special_tokens", False) and not getattr(tokenizer, "split_special_tokens",
                                                                                      False):
        return [len(encoding.ids) for encoding in backend.encode_batch(texts, add_special_tokens=False)]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]]


def example_lengths(examples: Sequence[Any], tokenizer: Any) -> list[int]:
    """The lengths encode_examples gives `examples` when nothing is cut (prompt + answer + EOS tokens), token for
    token: the same chat template and tokenizer, but batched calls for them all instead of three per example."""
    if not examples:
        return []
    template = None if getattr(tokenizer, "chat_template", None) else FALLBACK_TEMPLATE
    prompts = tokenizer.apply_chat_template([list(ex.prompt_messages) for ex in examples], tokenize=False,
                                            add_generation_prompt=True, chat_template=template)
    counts = _token_counts(list(prompts) + [ex.answer for ex in examples], tokenizer)
    size = len(examples)
    return [counts[i] + counts[size + i] + 1 for i in range(size)]


# Normalizers that never make text longer than _utf8_size counts it: a Replace of " " by "▁" keeps one character for
# one, and NFC's form is measured too (Qwen's tokenizers use NFC; NFKC, which can make 18 characters of one, is out).
_SHORT_NORMALIZERS = {"Prepend", "Replace", "Strip", "StripAccents", "NFC"}


def _keeps_length(normalizer: dict | None) -> bool:
    if normalizer is None:
        return True
    if normalizer.get("type") == "Sequence":
        return all(_keeps_length(part) for part in normalizer.get("normalizers", []))
    if normalizer.get("type") == "Replace":
        return len(normalizer.get("content", "")) <= 1
    return normalizer.get("type") in _SHORT_NORMALIZERS


def _bytes_bounded(tokenizer: Any) -> bool:
    """Whether this tokenizer never makes more tokens from a text than the text has UTF-8 bytes (plus a prefix space):
    true of every tokenizer model (BPE, byte fallback, Unigram, WordPiece: each token covers at least one character,
    an unknown character becomes at most its bytes) unless a normalizer lengthens the text first (NFKC turns one
    character into up to 18; NFC's form is counted by _utf8_size). Checked on the fast tokenizer's own description;
    a slow one is not trusted."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return _keeps_length(json.loads(backend.to_str()).get("normalizer"))


def _utf8_size(text: str) -> int:
    """UTF-8 bytes of `text`, or of its NFC form where that is longer (what a tokenizer with an NFC normalizer sees).
    ASCII text is its own NFC form, and isascii() is O(1): most texts cost one len()."""
    if text.isascii():
        return len(text)
    return max(len(text.encode("utf-8", "surrogatepass")),
               len(unicodedata.normalize("NFC", text).encode("utf-8", "surrogatepass")))


def length_bounds(examples: Sequence[Any], tokenizer: Any) -> list[int] | None:
    """For each example an upper bound of its example_lengths from byte counts alone, without tokenizing: the bytes of
    its rendered prompt and answer, 2 tokens for a prefix space per text and 1 for EOS. The prompt's bytes are the
    chat template's own text for that order of roles (rendered once per order) plus the contents' bytes.

    None when the tokenizer may make more tokens than bytes (see _bytes_bounded): then only counting tells."""
    if not _bytes_bounded(tokenizer):
        return None
    frame: dict[tuple[str, ...], int] = {}  # the template's bytes around the contents, per order of roles
    bounds = []
    for ex in examples:  # a tight loop: it runs once per example of a file of any size
        turns = ex.prompt_messages
        roles = tuple([turn["role"] for turn in turns])
        total = frame.get(roles)
        if total is None:
            rendered = render_prompt([{"role": role, "content": "x"} for role in roles], tokenizer)
            total = frame[roles] = _utf8_size(rendered) - len(roles)
        answer = ex.answer
        total += 5 + (len(answer) if answer.isascii() else _utf8_size(answer))  # inlined for ASCII: 1 call less
        for turn in turns:
            content = turn["content"]
            total += len(content) if content.isascii() else _utf8_size(content)
        bounds.append(total)
    return bounds


class TokenLengths:
    """Token lengths of a list of examples, as exact as each question needs and no more: a 1,000-row file is counted
    whole in a moment, but tokenizing 500,000 rows through the chat template takes a minute.

    - sample(): the exact lengths of the first `sample` examples (a random sample when the list was shuffled), for a
      chart;
    - count_over(max_len): how many examples are longer than max_len, exactly: an example whose byte bound
      (length_bounds) is within max_len cannot be longer, so only the others are counted, each once.

    `bounds` are length_bounds(examples, tokenizer), or None: then (or when one fails on the sample, which is checked)
    every example is counted.
    """

    CHUNK = 2_000  # examples per tokenizer call: big enough to batch, small enough to report progress

    def __init__(self, examples: Sequence[Any], tokenizer: Any, bounds: list[int] | None, sample: int,
                 on_progress: Any = None) -> None:
        self.examples, self.tokenizer = examples, tokenizer
        bounds = None if bounds is None else list(bounds)  # filled in with exact lengths as they are counted
        self.sampled = min(sample, len(examples)) if bounds is not None else len(examples)
        measured = self._count(range(self.sampled), on_progress)
        if bounds is not None and any(n > bound for n, bound in zip(measured, bounds)):
            bounds = None  # a bound failed on a counted example: trust none
        self.upper = bounds if bounds is not None else [0] * len(examples)
        self.upper[:self.sampled] = measured
        self.exact = bytearray(len(examples))  # 1 where upper[i] is the exact length, not a bound
        self.exact[:self.sampled] = b"\x01" * self.sampled
        if bounds is None:
            self._fill(range(self.sampled, len(examples)), on_progress)
        self.sampled = min(sample, len(examples))

    def _count(self, indices: Sequence[int], on_progress: Any = None) -> list[int]:
        lengths: list[int] = []
        for start in range(0, len(indices), self.CHUNK):
            chunk = indices[start:start + self.CHUNK]
            lengths += example_lengths([self.examples[i] for i in chunk], self.tokenizer)
            if on_progress is not None:
                on_progress((start + len(chunk)) / len(indices), message("core.data.progress.tokens",
                                                                         done=f"{start + len(chunk):,}",
                                                                         total=f"{len(indices):,}"))
        return lengths

    def _fill(self, indices: Sequence[int], on_progress: Any = None) -> None:
        for i, n in zip(indices, self._count(indices, on_progress), strict=True):
            self.upper[i], self.exact[i] = n, 1

    def sample(self) -> list[int]:
        return self.upper[:self.sampled]

    def count_over(self, max_len: int, on_progress: Any = None) -> int:
        unsure = [i for i, bound in enumerate(self.upper) if bound > max_len and not self.exact[i]]
        if unsure:
            self._fill(unsure, on_progress)
        return sum(1 for n in self.upper if n > max_len)
