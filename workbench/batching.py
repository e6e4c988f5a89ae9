"""Several chat sides in one forward pass: left-padded rows, one KV cache, and peft's `adapter_names` per row.

The base model, "base + few-shot" and every LoRA-family adapter live on one PeftModel (or the plain base when no
adapter is loaded), so their rows can share each forward pass: peft switches the LoRA update on per row
("__base__" = off). Rows are left-padded to one length; explicit position ids make each row see the positions it
would see alone, so a greedy batched answer equals the one-at-a-time answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

BASE_ROW = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass
class Row:
    state: Any  # the side's SideState, updated in place
    prompt_ids: list[int]
    adapter: str | None
    generator: Any


class BatchedSides:
    """Steps all its rows by one token per call; finished rows ride along on padding until all are done."""

    def __init__(self, model: Any, rows: list[Row], use_adapter_names: bool, pad_id: int, device: str) -> None:
        self.model, self.rows, self.pad_id, self.device = model, rows, pad_id, device
        self.adapter_names = [row.adapter or BASE_ROW for row in rows] if use_adapter_names else None
        self.lora_layers = _lora_layers(model) if use_adapter_names else []
        self.past: Any = None
        self.next_ids: Any = None
        self.mask: Any = None
        self.positions: Any = None

    @property
    def done(self) -> bool:
        return all(row.state.done for row in self.rows)

    def _prefill_inputs(self) -> dict[str, Any]:
        import torch

        width = max(len(row.prompt_ids) for row in self.rows)
        ids = [[self.pad_id] * (width - len(row.prompt_ids)) + row.prompt_ids for row in self.rows]
        self.mask = torch.tensor([[0] * (width - len(row.prompt_ids)) + [1] * len(row.prompt_ids)
                                  for row in self.rows], device=self.device)
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": torch.tensor(ids, device=self.device), "attention_mask": self.mask,
                "position_ids": self.positions}

    def _decode_inputs(self) -> dict[str, Any]:
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        self.positions = self.positions[:, -1:] + 1
        return {"input_ids": self.next_ids, "attention_mask": self.mask, "position_ids": self.positions}

    def _inject_names(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs["adapter_names"] = self.adapter_names
        return args, kwargs

    def step(self, sampling: Any, stop_ids: set[int], tokenizer: Any) -> None:
        """One forward pass for every row, then each unfinished row takes its next token."""
        import torch

        from workbench.chat import sample_next

        inputs = self._prefill_inputs() if self.past is None else self._decode_inputs()
        started = time.perf_counter()
        # peft's own `adapter_names=` walks every module of the model twice per forward pass to set its hooks;
        # the LoRA layers are found once per batch here and handed the row names directly.
        hooks = [layer.register_forward_pre_hook(self._inject_names, with_kwargs=True) for layer in self.lora_layers]
        try:
            with torch.inference_mode():
                out = self.model(past_key_values=self.past, use_cache=True, **inputs)
        finally:
            for hook in hooks:
                hook.remove()
        with torch.inference_mode():
            tokens = [sample_next(out.logits[i, -1], sampling, row.generator) if not row.state.done else self.pad_id
                      for i, row in enumerate(self.rows)]
        self.past = out.past_key_values
        self.next_ids = torch.tensor([[token] for token in tokens], device=self.device)
        seconds = time.perf_counter() - started
        for row, token in zip(self.rows, tokens, strict=True):
            if not row.state.done:  # the pass is shared: each side waited for all of it
                row.state.record(token, seconds, stop_ids, tokenizer, sampling.max_new_tokens)


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]
