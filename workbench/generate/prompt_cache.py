"""The KV cache of prompt contexts, kept between requests: the next prompt with the same context reads only its new
message.

A prompt's *context* is what comes before the conversation itself: the system prompt and the few-shot examples of
a "base + few-shot" side. Every question and every turn to a side starts with the same one. Each prompt is read in
two passes, context then the rest, whether the context is cached or not, so an answer never depends on what was
asked before: a cached context holds the very numbers a fresh pass would compute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from workbench.data.formatting import encode_prompt

MAX_BYTES = 32 * 2**20  # about 700 context tokens of the embedded model; the oldest contexts go first
# A context shorter than this is read with the rest, in one pass: on a CPU a second pass costs about as much as
# reading ~50 more tokens (each pass streams every weight from memory), so a short system prompt is not worth it.
MIN_CONTEXT = 64


def context_length(messages: Sequence[dict], ids: Sequence[int], tokenizer: Any, start: int) -> int:
    """How many of a prompt's `ids` come before message `start`'s own words (0: no context worth sharing).

    `messages[:start]` is the part that repeats: the system prompt and the few-shot examples, the same for every
    question and every turn. Found by rendering them with two other messages after them: the ids those share are
    the template's and the first messages', whatever the template."""
    if not 0 <= start < len(messages):
        return 0
    a, b = (encode_prompt([*messages[:start], {"role": "user", "content": text}], tokenizer) for text in ("a", "b"))
    shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if list(ids[:shared]) != a[:shared]:  # the template renders this conversation otherwise: read it in one pass
        return 0
    shared = min(shared, len(ids) - 1)  # at least one id is read with the rest: its logits start the answer
    return shared if shared >= MIN_CONTEXT else 0


def _nbytes(layers: list[tuple[Any, Any]]) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)


class PromptCache:
    """Contexts' per-layer keys and values by (model key, context ids), least recently used dropped first."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, list[tuple[Any, Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def prefill(self, run: Callable[[list[int], Any], Any], key: Any, ids: Sequence[int],
                context: int) -> tuple[Any, int]:
        """Read a prompt: `run(ids, past)` is one forward pass of the model that `key` names (it returns the model
        output with its cache); `context` ids come from the cache when they are there. Returns the last output and
        how many ids came from the cache."""
        from transformers import DynamicCache

        if context <= 0:
            return run(list(ids), None), 0
        entry = (key, tuple(ids[:context]))
        with self._lock:
            layers = self._entries.get(entry)
            if layers is not None:
                self._entries.move_to_end(entry)
                self.hits += 1
        if layers is None:
            past = run(list(ids[:context]), None).past_key_values
            self._store(entry, [(layer.keys, layer.values) for layer in past.layers])
            self.misses += 1
        else:  # a copy: the next pass appends to it, the cached tensors stay as they are
            past = DynamicCache(ddp_cache_data=layers)
        return run(list(ids[context:]), past), 0 if layers is None else context

    def _store(self, entry: tuple, layers: list[tuple[Any, Any]]) -> None:
        size = _nbytes(layers)
        if size > self.max_bytes:
            return
        with self._lock:
            if entry in self._entries:
                return
            self._entries[entry] = layers
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= _nbytes(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
