"""Streaming chat for several sides at once: the base model and adapters, on one copy of the base in memory.

Each side keeps its own seeded sampler. The base, few-shot and LoRA-family sides advance together, one batched
forward pass per token (workbench.generate.batching); the others (DoRA, soft prompts, own-copy methods) take their
turn, each with its own KV cache and its adapter switched on for its pass. A side's time is the compute it waited for:
a batched side is charged the whole shared pass, a side in turn only its own passes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import ModelConfig
from workbench.data.formatting import encode_prompt
from workbench.generate.batching import BatchedSides, Row, speed_up_small_batches
from workbench.generate.prompt_cache import PromptCache, context_length
from workbench.generate.sampling import SamplingConfig, sample_next
from workbench.i18n import text
from workbench.methods.registry import for_adapter
from workbench.models.adapters import has_trained_weights, is_peft_adapter, load_trained
from workbench.models.loading import BUILD_LOCK, LoadedModel, free_memory, load_model


@dataclass(frozen=True)
class Side:
    """One pane: a label, the adapter to use (None = the base model) and optional few-shot turns.

    `shots` are example user/assistant turns placed before the conversation (after a system turn, if any): the
    base model with k examples in its prompt, in-context learning, to set beside the fine-tune.
    """

    label: str
    adapter: str | None = None
    shots: tuple[dict, ...] = ()

    def messages(self, history: Sequence[dict]) -> list[dict]:
        head = [turn for turn in history[:1] if turn["role"] == "system"]
        return head + list(self.shots) + list(history[len(head):])

    def context_size(self, history: Sequence[dict]) -> int:
        """How many of `messages(history)` come before the conversation: the system turn and the shots."""
        return int(bool(history) and history[0]["role"] == "system") + len(self.shots)


def whole_text(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """The text of generated tokens, ending at the last whole character.

    A byte-level tokenizer splits a Hangul syllable (3 bytes in UTF-8) over several tokens; an answer cut at max new
    tokens, or read while it streams, can end inside one, which decodes as U+FFFD ("�"). Those trailing bytes are
    left out, so no cut answer shows, scores or exports a broken character."""
    return tokenizer.decode(list(token_ids), skip_special_tokens=True).rstrip("\ufffd")


@dataclass
class SideState:
    label: str
    text: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of the prompt's tokens, those whose keys and values came from the prompt cache
    new_tokens: int = 0
    ttft: float | None = None
    seconds: float = 0.0
    done: bool = False
    token_ids: list[int] = field(default_factory=list)

    def record(self, token: int, seconds: float, stop_ids: set[int], tokenizer: Any, max_new_tokens: int) -> None:
        """Take one sampled token (or stop on an end token); `seconds` is the compute this side waited for."""
        self.seconds += seconds
        self.ttft = self.seconds if self.ttft is None else self.ttft
        if token in stop_ids:
            self.done = True
            return
        self.token_ids.append(token)
        self.new_tokens += 1
        self.text = whole_text(tokenizer, self.token_ids)
        self.done = self.new_tokens >= max_new_tokens

    @property
    def tokens_per_s(self) -> float | None:
        return self.new_tokens / self.seconds if self.seconds > 0 and self.new_tokens else None

    def stats_line(self, lang: str | None = None) -> str:
        """Tokens, time to the first token, total time and speed, in `lang` (None: the environment's language)."""
        ttft = f"{self.ttft * 1000:.0f} ms" if self.ttft is not None else "–"
        rate = f"{self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else "–"
        cached = text("compare.stats.cached", lang, count=self.cached_tokens) if self.cached_tokens else ""
        return text("compare.stats", lang, tokens=self.new_tokens, ttft=ttft, seconds=f"{self.seconds:.2f}", rate=rate,
                    prompt=self.prompt_tokens, cached=cached)


def _adapter_config(path: str | Path) -> dict[str, Any]:
    import json

    return json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))


def _peft_type(path: str | Path) -> str:
    return _adapter_config(path)["peft_type"]


@dataclass
class _Adapter:
    kind: str  # "shared": in the shared LoRA model | "soft": a prompt wrapper on the shared base | "own": own copy
    path: str
    model: Any = None
    mixed_batch: bool = False  # may share a forward pass with other rows (peft's adapter_names; not DoRA)
    same_length: bool = False  # a soft prompt that ignores position ids: batch prompts of one length only


class ChatEngine:
    """One base model and the adapters loaded around it; safe to share between browser sessions.

    LoRA-family adapters (LoRA, DoRA, rsLoRA, QLoRA) live side by side in one PeftModel on the base. Soft prompts
    (prompt tuning, P-tuning, prefix tuning) change no weights: a thin wrapper on the same base adds their virtual
    tokens at the first forward pass, and decoding continues on the base with that cache. Methods that change the
    layers in other ways (IA3, LLaMA-Adapter) or the weights themselves (selective, full) get their own copy.
    """

    def __init__(self, model_config: ModelConfig) -> None:
        self.model_config = model_config
        self._loaded: LoadedModel | None = None
        self._lora: Any = None
        self._adapters: dict[str, _Adapter] = {}
        self._lock = threading.RLock()
        self.prompt_cache = PromptCache()  # contexts (system prompt, few-shot examples) read once, for every side

    @property
    def loaded(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.model_config)
                speed_up_small_batches(self._loaded.model)
            return self._loaded

    def ensure_adapter(self, name: str, path: str | Path) -> None:
        """Load a run's trained result under a name, once; later calls with the same name are free."""
        from peft import PeftModel


        # The engine's lock first, then the build lock: the order `loaded` takes them in (never the other way round).
        with self._lock, BUILD_LOCK:
            if name in self._adapters:
                return
            if not has_trained_weights(path):
                raise FileNotFoundError(f"no trained weights at {path}: the run saved no adapter")
            spec = for_adapter(_peft_type(path) if is_peft_adapter(path) else "")
            serve = spec.serve if spec else "own"  # an adapter of a kind no method here saves: its own copy
            raw = self.loaded.model
            if serve == "shared":
                if self._lora is None:
                    self._lora = PeftModel.from_pretrained(raw, str(path), adapter_name=name)
                else:
                    self._lora.load_adapter(str(path), adapter_name=name)
                mixed = not _adapter_config(path).get("use_dora")  # peft's per-row adapters skip DoRA
                entry = _Adapter("shared", str(path), self._lora, mixed_batch=mixed)
            elif serve == "soft":  # what it needs is read once here, not at every batch
                entry = _Adapter("soft", str(path), PeftModel.from_pretrained(raw, str(path)),
                                 same_length=spec.batch_same_length)
            else:
                own = speed_up_small_batches(load_model(self.model_config, device=self.loaded.device).model)
                entry = _Adapter("own", str(path), load_trained(own, path))
            entry.model.eval()
            self._adapters[name] = entry
            self.prompt_cache.clear()  # the base rows now run through the LoRA model: their contexts are read anew

    def unload(self) -> None:
        """Drop the model and adapters; the next request loads the base again."""
        with self._lock:
            self._loaded, self._lora, self._adapters = None, None, {}
            self.prompt_cache.clear()
        free_memory()

    @contextlib.contextmanager
    def model_for(self, adapter: str | None) -> Iterator[Any]:
        """The model that answers as `adapter` (None = the base), held under the engine's lock while in use."""
        with self._lock:
            entry = self._adapters.get(adapter) if adapter else None
            if adapter and entry is None:
                raise ValueError(f"adapter {adapter!r} is not loaded; call ensure_adapter first")
            if entry is not None and entry.kind == "own":
                yield entry.model
            elif entry is not None and entry.kind == "shared":
                self._lora.set_adapter(adapter)
                yield self._lora
            else:  # the base, or a soft prompt around it: LoRA layers (if any are loaded) must be off
                with self._lora.disable_adapter() if self._lora is not None else contextlib.nullcontext():
                    yield entry.model if entry is not None else self.loaded.model

    def generate_batch(self, adapter: str | None, histories: Sequence[Sequence[dict]], max_new_tokens: int,
                       batch_size: int = 8, on_batch: Callable[[int, int], None] | None = None) -> list[SideState]:
        """Greedy answers to many prompts, in left-padded batches of similar length (for scoring, not chat).

        on_batch(answered, total) is called before each batch and at the end; an exception it raises (a stop)
        ends the work there.
        """
        import torch

        tokenizer, device = self.loaded.tokenizer, self.loaded.device
        pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        encoded = [encode_prompt(history, tokenizer) for history in histories]
        results: list[SideState] = [SideState(label=str(adapter or "base")) for _ in encoded]
        answered = 0
        for chunk in self._chunks(adapter, [len(e) for e in encoded], batch_size):
            if on_batch:
                on_batch(answered, len(encoded))
            answered += len(chunk)
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.tensor([[pad_id] * (width - len(encoded[i])) + encoded[i] for i in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in chunk],
                                device=device)
            started = time.perf_counter()
            with self.model_for(adapter) as model, torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, temperature=None, top_p=None, top_k=None,
                                     pad_token_id=pad_id, eos_token_id=eos_id)
            seconds = (time.perf_counter() - started) / len(chunk)
            for row, index in enumerate(chunk):
                new = out[row, width:].tolist()
                new = new[:new.index(eos_id)] if eos_id in new else new
                results[index] = SideState(label=results[index].label, prompt_tokens=len(encoded[index]),
                                           new_tokens=len(new), seconds=seconds, done=True, token_ids=new,
                                           text=whole_text(tokenizer, new))
        if on_batch:
            on_batch(answered, len(encoded))
        return results

    def _chunks(self, adapter: str | None, lengths: list[int], batch_size: int) -> list[list[int]]:
        """Batches of prompt indices, sorted by length. Prompt tuning and P-tuning ignore position ids, so left
        padding would shift their positions: they batch only prompts of the same length."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        entry = self._adapters.get(adapter) if adapter else None
        same_length_only = entry is not None and entry.same_length
        chunks: list[list[int]] = []
        for index in order:
            last = chunks[-1] if chunks else None
            if last and len(last) < batch_size and (not same_length_only or lengths[last[0]] == lengths[index]):
                last.append(index)
            else:
                chunks.append([index])
        return chunks

    def _prompt_pass(self, adapter: str | None, input_ids: Any, context: int) -> tuple[Any, int]:
        """A side's prompt, in turn: through the prompt cache where the side runs on the shared base or LoRA model.
        Returns the output and how many prompt ids the cache held."""
        entry = self._adapters.get(adapter) if adapter else None
        if not context or (entry is not None and entry.kind != "shared"):
            return self._forward(adapter, input_ids, None), 0

        def run(ids: list[int], cached: Any) -> Any:
            return self._forward(adapter, input_ids.new_tensor([ids]), cached)

        return self.prompt_cache.prefill(run, (adapter, "turn"), input_ids[0].tolist(), context)

    def _forward(self, adapter: str | None, input_ids: Any, past: Any) -> Any:
        entry = self._adapters.get(adapter) if adapter else None
        if adapter and entry is None:
            raise ValueError(f"adapter {adapter!r} is not loaded; call ensure_adapter first")
        raw, kwargs = self.loaded.model, {}
        if entry is None or entry.kind == "soft":
            # The base, or a soft prompt: LoRA layers (if any are loaded) must be off.
            target = entry.model if entry is not None and past is None else raw
            if target is not raw:
                kwargs["attention_mask"] = input_ids.new_ones(input_ids.shape)
            context_manager = self._lora.disable_adapter() if self._lora is not None else contextlib.nullcontext()
        elif entry.kind == "shared":
            self._lora.set_adapter(adapter)
            target, context_manager = self._lora, contextlib.nullcontext()
        else:
            target, context_manager = entry.model, contextlib.nullcontext()
        with context_manager:
            return target(input_ids=input_ids, past_key_values=past, use_cache=True, logits_to_keep=1, **kwargs)

    def _batch(self, rows: list[Row]) -> BatchedSides | None:
        """The base, few-shot and LoRA-family rows as one batch on the shared model (None when there are none)."""
        if not rows:
            return None
        model = self._lora if self._lora is not None else self.loaded.model
        return BatchedSides(model, rows, self._lora is not None, self.loaded.tokenizer.pad_token_id,
                            self.loaded.device, self.prompt_cache)

    def batchable(self, adapter: str | None) -> bool:
        entry = self._adapters.get(adapter) if adapter else None
        return adapter is None or (entry is not None and entry.mixed_batch)

    def stream(self, sides: Sequence[Side], histories: Sequence[Sequence[dict]], sampling: SamplingConfig,
               batched: bool = True) -> Iterator[list[SideState]]:
        """Answer each side's history (ending with the new user turn); yields all sides after every round.

        With `batched`, the base, few-shot and LoRA-family sides share one forward pass per token; other sides
        (soft prompts, own-copy methods) and all sides without `batched` take their turn one after another.
        """
        import torch

        tokenizer, device = self.loaded.tokenizer, self.loaded.device
        stop_ids = {tokenizer.eos_token_id}
        states, runs, rows = [], [], []
        for side, history in zip(sides, histories, strict=True):
            messages = side.messages(history)
            ids = encode_prompt(messages, tokenizer)
            context = context_length(messages, ids, tokenizer, side.context_size(history))
            generator = torch.Generator().manual_seed(sampling.seed)
            states.append(SideState(label=side.label, prompt_tokens=len(ids)))
            if batched and self.batchable(side.adapter):
                rows.append(Row(states[-1], ids, side.adapter, generator, context))
            else:
                runs.append({"side": side, "next": torch.tensor([ids], device=device), "past": None,
                             "gen": generator, "state": states[-1], "context": context})
        batch = self._batch(rows)
        while not all(state.done for state in states):
            if batch is not None and not batch.done:
                with self._lock:
                    batch.step(sampling, stop_ids, tokenizer)
            for state, run in ((run["state"], run) for run in runs):
                if state.done:
                    continue
                started = time.perf_counter()
                with self._lock, torch.inference_mode():
                    if run["past"] is None:
                        out, state.cached_tokens = self._prompt_pass(run["side"].adapter, run["next"], run["context"])
                    else:
                        out = self._forward(run["side"].adapter, run["next"], run["past"])
                    token = sample_next(out.logits[0, -1], sampling, run["gen"])
                run["past"], run["next"] = out.past_key_values, torch.tensor([[token]], device=device)
                state.record(token, time.perf_counter() - started, stop_ids, tokenizer, sampling.max_new_tokens)
            yield states
        for state in states:
            state.text = whole_text(tokenizer, state.token_ids)
        yield states

    def answer(self, side: Side, history: Sequence[dict], sampling: SamplingConfig) -> SideState:
        """The whole answer of one side (no streaming), for the CLI and tests."""
        states: list[SideState] = []
        for states in self.stream([side], [history], sampling):  # noqa: B007 - the last yield is the answer
            pass
        return states[0]

