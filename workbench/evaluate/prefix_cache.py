"""Run each shared piece of the harness's prompts once: the k-shot examples across every call, a question across its
choices; and run no padding.

Every question of a k-shot run starts with the same description and the same k examples (the bundled sets take the
first k of their dev split), often nine tenths of the prompt; and in cloze form each of a question's choices is a
row of its own that repeats the question. The harness's HF wrapper runs every row whole, padded to the batch's
longest. Here its model call runs the k-shot prefix once and keeps its keys and values across calls; within a batch
it runs the part that rows share (a question) once for them all, then each row's own rest up to its own end. The
logits of a position depend only on the tokens up to it, so a shared part's logits are the same for every row that
shares it: each row gets exactly the logits a full pass would give (to float rounding; a test checks) at every
position after the kept prefix up to its end (zeros on its padding, which the wrapper never reads). The wrapper
reads the continuation's log-likelihood from the last positions of what it gets back (the way it skips a
prompt-tuned model's virtual tokens), so its scoring is untouched.

The kept prefix never reaches into a continuation: it is capped at the tokens of the text that every context of the
call shares, less a margin for a token merged across its end. A row's end is known from the rows the caller says
are coming (`expect`); a row it does not recognise runs to the batch's end. Prompt-learning adapters (prefix or
prompt tuning bring keys, values or tokens of their own), encoder-decoder models and sliding-window attention
shorter than the prompt get the harness's own call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_PREFIX = 32  # tokens: a shorter prefix shared by a whole call is not worth keeping
MIN_SHARED = 16  # tokens: rows of a batch that share fewer are run apart
_MARGIN = 2  # tokens kept off the end of the shared text: the tokenizer may merge across it


@dataclass
class _Kept:
    limit: int = 0  # tokens that every row of the coming calls shares at least (0: keep nothing)
    tokens: Any = None  # the prefix whose keys and values are kept (a 1-D tensor)
    keys_values: list[tuple[Any, Any]] | None = None
    inputs: dict[int, set[tuple[int, ...]]] | None = None  # the coming rows' tokens, by length (to drop padding)


def _usable(model: Any) -> bool:
    peft_config = getattr(model, "active_peft_config", None)
    return not getattr(peft_config, "is_prompt_learning", False) and \
        not getattr(getattr(model, "config", None), "is_encoder_decoder", False)


def _agreement(first: Any, second: Any) -> int:
    """How many tokens two 1-D tensors share from their start."""
    return int((first == second).int().cumprod(dim=0).sum())


def _groups(inps: Any, start: int, lengths: list[int]) -> list[tuple[list[int], int]]:
    """The batch's rows in groups that share at least MIN_SHARED tokens after `start`, each with how many they all
    share (never a row's last position: every row keeps a token of its own to run)."""
    groups: list[tuple[list[int], int]] = []
    for row in range(inps.shape[0]):
        for index, (members, shared) in enumerate(groups):
            agree = _agreement(inps[members[0], start:], inps[row, start:])
            if agree >= MIN_SHARED:
                groups[index] = (members + [row], min(shared, agree, lengths[row] - start - 1))
                break
        else:
            groups.append(([row], lengths[row] - start - 1))
    return [(members, shared if len(members) > 1 else 0) for members, shared in groups]


def reuse_shared_prefix(harness_model: Any) -> Any:
    """Patch this harness model's `_model_call` (this instance only); returns `expect(contexts, inputs)`, to be
    called before the harness scores requests with their contexts and the token rows it will run (context and
    continuation less its last token), so that each row runs without its padding."""
    import torch
    from transformers import DynamicCache

    model, plain = harness_model.model, harness_model._model_call
    kept, usable = _Kept(), _usable(model)
    window = getattr(getattr(model, "config", None), "sliding_window", None)

    def expect(contexts: Sequence[str], inputs: Sequence[Sequence[int]] = ()) -> None:
        common = os.path.commonprefix(list(contexts)) if contexts else ""
        kept.limit = len(harness_model.tok_encode(common)) - _MARGIN if common else 0
        kept.inputs = {}
        for tokens in inputs:
            kept.inputs.setdefault(len(tokens), set()).add(tuple(tokens))

    def length_of(row: Any) -> int:
        """A row's length without the harness's padding: the longest expected row it starts with (else all of it)."""
        for length in sorted(kept.inputs or {}, reverse=True):
            if length <= len(row) and tuple(row[:length].tolist()) in kept.inputs[length]:
                return length
        return len(row)

    def run(tokens: Any, past: list[tuple[Any, Any]] | None) -> tuple[Any, list[tuple[Any, Any]]]:
        rows = tokens.shape[0]
        cache = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                                             for k, v in past]) if past else None
        out = model(tokens, past_key_values=cache, use_cache=True)
        return out.logits, [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def keep_prefix(inps: Any) -> int:
        """The length of the kept prefix this batch starts with (computed when it has a new one); 0 for none."""
        length = min([kept.limit, inps.shape[1] - 1, *(_agreement(inps[0], row) for row in inps[1:])])
        if length < MIN_PREFIX:
            return 0
        if kept.tokens is None or len(kept.tokens) > length or not torch.equal(inps[0, :len(kept.tokens)],
                                                                                kept.tokens):
            kept.tokens = inps[0, :length].clone()
            kept.keys_values = run(kept.tokens[None, :], None)[1]
        return len(kept.tokens)

    def model_call(inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
        if attn_mask is not None or labels is not None or not usable or (window and inps.shape[1] > window):
            return plain(inps, attn_mask, labels)
        with torch.no_grad():
            start = keep_prefix(inps)
            groups = _groups(inps, start, [max(length_of(row), start + 1) for row in inps])
            if not start and all(shared == 0 for _, shared in groups):
                return plain(inps, attn_mask, labels)
            return run_groups(inps, start, groups)

    def run_groups(inps: Any, start: int, groups: list[tuple[list[int], int]]) -> Any:
        """The rows alone together (one call, padded only to the longest of them), then each group: its shared part
        once, its rows' rests together. Each call reads all the weights: few calls, little padding."""
        lengths = [max(length_of(row), start + 1) for row in inps]
        logits: list[Any] = []  # one tensor, made when the vocabulary size is known

        def place(rows: list[int], offset: int, out: Any) -> None:
            if not logits:
                logits.append(out.new_zeros((inps.shape[0], inps.shape[1] - start, out.shape[-1])))
            for at, row in enumerate(rows):
                count = min(out.shape[1], lengths[row] - start - offset)  # the row's positions, none of its padding
                logits[0][row, offset:offset + count] = out[at, :count]

        past = kept.keys_values if start else None
        alone = [members[0] for members, shared in groups if not shared]
        if alone:
            place(alone, 0, run(inps[alone, start:max(lengths[row] for row in alone)], past)[0])
        for members, shared in groups:
            if shared:
                head, head_past = run(inps[members[0]:members[0] + 1, start:start + shared], past)
                place(members, 0, head.expand(len(members), -1, -1))
                place(members, shared, run(inps[members, start + shared:max(lengths[r] for r in members)],
                                           head_past)[0])
        return logits[0]

    harness_model._model_call = model_call
    return expect
