"""Sampling settings shared by every side of a compare, and drawing the next token from logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import ConfigError


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
