"""Streaming chat for several sides at once: the base model and adapters, on one copy of the base in memory.

Each side keeps its own KV cache and its own seeded sampler. The sides advance one token each in turn, so they
stream together; before each forward pass the side's adapter is switched on (or all adapters off for the base).
Timings are each side's own compute time, so a side is not charged for the time its neighbours take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import ConfigError, ModelConfig
from workbench.formatting import encode_prompt
from workbench.models import LoadedModel, load_model


@dataclass(frozen=True)
class SamplingConfig:
    """The same sampling settings go to every side, so differences come from the weights alone."""

    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [("temperature", self.temperature, 0.0, 2.0), ("top_p", self.top_p, 0.01, 1.0),
                  ("max_new_tokens", self.max_new_tokens, 1, 4096), ("seed", self.seed, 0, 2**31 - 1)]
        for name, value, lo, hi in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(f"sampling.{name} must be between {lo:g} and {hi:g}; got {value!r}")


@dataclass(frozen=True)
class Side:
    """One pane: a label and the adapter to use (None = the base model)."""

    label: str
    adapter: str | None = None


@dataclass
class SideState:
    label: str
    text: str = ""
    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft: float | None = None
    seconds: float = 0.0
    done: bool = False
    token_ids: list[int] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float | None:
        return self.new_tokens / self.seconds if self.seconds > 0 and self.new_tokens else None

    def stats_line(self) -> str:
        ttft = f"{self.ttft * 1000:.0f} ms" if self.ttft is not None else "–"
        rate = f"{self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else "–"
        return (f"{self.new_tokens} tokens · first token {ttft} · total {self.seconds:.2f} s · {rate} · "
                f"prompt {self.prompt_tokens} tokens")


def _peft_type(path: str | Path) -> str:
    import json

    return json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))["peft_type"]


def sample_next(logits: Any, sampling: SamplingConfig, generator: Any) -> int:
    """Greedy at temperature 0, else temperature + nucleus (top-p) sampling."""
    import torch

    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < sampling.top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


LORA_FAMILY = ("LORA",)
SOFT_PROMPTS = ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")


@dataclass
class _Adapter:
    kind: str  # "lora": in the shared LoRA model | "soft": a prompt wrapper on the shared base | "own": own copy
    path: str
    model: Any = None


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

    @property
    def loaded(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.model_config)
            return self._loaded

    def ensure_adapter(self, name: str, path: str | Path) -> None:
        """Load a run's trained result under a name, once; later calls with the same name are free."""
        from peft import PeftModel

        from workbench.adapters import has_trained_weights, is_peft_adapter, load_trained

        with self._lock:
            if name in self._adapters:
                return
            if not has_trained_weights(path):
                raise FileNotFoundError(f"no trained weights at {path}: the run saved no adapter")
            peft_type = _peft_type(path) if is_peft_adapter(path) else "WEIGHTS"
            raw = self.loaded.model
            if peft_type in LORA_FAMILY:
                if self._lora is None:
                    self._lora = PeftModel.from_pretrained(raw, str(path), adapter_name=name)
                else:
                    self._lora.load_adapter(str(path), adapter_name=name)
                entry = _Adapter("lora", str(path), self._lora)
            elif peft_type in SOFT_PROMPTS:
                entry = _Adapter("soft", str(path), PeftModel.from_pretrained(raw, str(path)))
            else:
                own = load_model(self.model_config, device=self.loaded.device).model
                entry = _Adapter("own", str(path), load_trained(own, path))
            entry.model.eval()
            self._adapters[name] = entry

    def unload(self) -> None:
        """Drop the model and adapters; the next request loads the base again."""
        import gc

        with self._lock:
            self._loaded, self._lora, self._adapters = None, None, {}
        gc.collect()

    def _forward(self, adapter: str | None, input_ids: Any, past: Any) -> Any:
        import contextlib

        entry = self._adapters.get(adapter) if adapter else None
        if adapter and entry is None:
            raise ValueError(f"adapter {adapter!r} is not loaded; call ensure_adapter first")
        raw, kwargs = self.loaded.model, {}
        if entry is None or entry.kind == "soft":
            # The base, or a soft prompt: LoRA layers (if any are loaded) must be off.
            target = entry.model if entry is not None and past is None else raw
            if target is not raw:
                kwargs["attention_mask"] = input_ids.new_ones(input_ids.shape)
            context = self._lora.disable_adapter() if self._lora is not None else contextlib.nullcontext()
        elif entry.kind == "lora":
            self._lora.set_adapter(adapter)
            target, context = self._lora, contextlib.nullcontext()
        else:
            target, context = entry.model, contextlib.nullcontext()
        with context:
            return target(input_ids=input_ids, past_key_values=past, use_cache=True, **kwargs)

    def stream(self, sides: Sequence[Side], histories: Sequence[Sequence[dict]], sampling: SamplingConfig,
               ) -> Iterator[list[SideState]]:
        """Answer each side's history (ending with the new user turn); yields all sides after every round."""
        import torch

        tokenizer, device = self.loaded.tokenizer, self.loaded.device
        stop_ids = {tokenizer.eos_token_id}
        states, runs = [], []
        for side, history in zip(sides, histories, strict=True):
            ids = encode_prompt(history, tokenizer)
            generator = torch.Generator().manual_seed(sampling.seed)
            states.append(SideState(label=side.label, prompt_tokens=len(ids)))
            runs.append({"side": side, "next": torch.tensor([ids], device=device), "past": None, "gen": generator})
        while not all(state.done for state in states):
            for state, run in zip(states, runs):
                if state.done:
                    continue
                started = time.perf_counter()
                with self._lock, torch.inference_mode():
                    out = self._forward(run["side"].adapter, run["next"], run["past"])
                    token = sample_next(out.logits[0, -1], sampling, run["gen"])
                run["past"], run["next"] = out.past_key_values, torch.tensor([[token]], device=device)
                state.seconds += time.perf_counter() - started
                state.ttft = state.seconds if state.ttft is None else state.ttft
                if token in stop_ids:
                    state.done = True
                    continue
                state.token_ids.append(token)
                state.new_tokens += 1
                state.text = tokenizer.decode(state.token_ids, skip_special_tokens=True).rstrip("\ufffd")
                state.done = state.new_tokens >= sampling.max_new_tokens
            yield states
        for state in states:
            state.text = tokenizer.decode(state.token_ids, skip_special_tokens=True)
        yield states

    def answer(self, side: Side, history: Sequence[dict], sampling: SamplingConfig) -> SideState:
        """The whole answer of one side (no streaming), for the CLI and tests."""
        states: list[SideState] = []
        for states in self.stream([side], [history], sampling):  # noqa: B007 - the last yield is the answer
            pass
        return states[0]

