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


class ChatEngine:
    """Holds one base model and the adapters loaded onto it; safe to share between browser sessions."""

    def __init__(self, model_config: ModelConfig) -> None:
        self.model_config = model_config
        self._loaded: LoadedModel | None = None
        self._adapters: dict[str, str] = {}
        self._lock = threading.RLock()

    @property
    def loaded(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.model_config)
            return self._loaded

    def ensure_adapter(self, name: str, path: str | Path) -> None:
        """Load an adapter folder under a name, once; later calls with the same name are free."""
        with self._lock:
            if name in self._adapters:
                return
            if not (Path(path) / "adapter_config.json").is_file():
                raise FileNotFoundError(f"no adapter at {path}: adapter_config.json is missing")
            from peft import PeftModel

            loaded = self.loaded
            if isinstance(loaded.model, PeftModel):
                loaded.model.load_adapter(str(path), adapter_name=name)
            else:
                loaded.model = PeftModel.from_pretrained(loaded.model, str(path), adapter_name=name)
            loaded.model.eval()
            self._adapters[name] = str(path)

    def unload(self) -> None:
        """Drop the model and adapters; the next request loads the base again."""
        import gc

        with self._lock:
            self._loaded, self._adapters = None, {}
        gc.collect()

    def _forward(self, adapter: str | None, input_ids: Any, past: Any) -> Any:
        import contextlib

        from peft import PeftModel

        model = self.loaded.model
        if isinstance(model, PeftModel):
            if adapter is None:
                context = model.disable_adapter()
            else:
                model.set_adapter(adapter)
                context = contextlib.nullcontext()
        else:
            if adapter is not None:
                raise ValueError(f"adapter {adapter!r} is not loaded; call ensure_adapter first")
            context = contextlib.nullcontext()
        with context:
            return model(input_ids=input_ids, past_key_values=past, use_cache=True)

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

