"""Several chat sides in one forward pass: left-padded rows, one KV cache, and peft's `adapter_names` per row.

The base model, "base + few-shot" and every LoRA-family adapter live on one PeftModel (or the plain base when no
adapter is loaded), so their rows can share each forward pass: peft switches the LoRA update on per row
("__base__" = off). Each prompt is read alone (padding a short prompt to a long few-shot one would multiply the
work), then the caches are left-padded into one buffer with room for the answers (RowsLayer: a decode step writes in
place); explicit position ids make each row see the positions it would see alone, so a greedy batched answer
equals the one-at-a-time answer.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from workbench.generate.prompt_cache import PromptCache
from workbench.generate.sampling import sample_next

BASE_ROW = "__base__"  # peft's name for "no adapter" in a mixed batch
SMALL_ROWS = (1, 16)  # token rows per matmul for which weight @ x.T beats x @ weight.T on a CPU


@dataclass
class Row:
    state: Any  # the side's SideState, updated in place
    prompt_ids: list[int]
    adapter: str | None
    generator: Any
    context: int = 0  # how many prompt ids are the context (system prompt, few-shot examples)


class BatchedSides:
    """Steps all its unfinished rows by one token per call."""

    def __init__(self, model: Any, rows: list[Row], use_adapter_names: bool, pad_id: int, device: str,
                 prompt_cache: PromptCache | None = None) -> None:
        self.model, self.rows, self.pad_id, self.device = model, rows, pad_id, device
        self.prompt_cache = prompt_cache if prompt_cache is not None else PromptCache(max_bytes=0)
        self.adapter_names = [row.adapter or BASE_ROW for row in rows] if use_adapter_names else None
        layers = _lora_layers(model) if use_adapter_names else []
        self.stacked = {id(layer): st for layer in layers if (st := _stack_lora(layer, self.adapter_names))}
        self.lora_layers = [layer for layer in layers if id(layer) not in self.stacked]  # handed adapter_names
        self.stacked_layers = [layer for layer in layers if id(layer) in self.stacked]
        self.active: list[int] = list(range(len(rows)))  # the rows in the cache, in cache order
        self.selected: tuple[int, ...] = ()  # the rows whose stacked LoRA weights are selected
        self.past: Any = None
        self.next_ids: Any = None
        self.mask: Any = None
        self.positions: Any = None
        self.current_names: list[str] | None = None

    @property
    def done(self) -> bool:
        return all(row.state.done for row in self.rows)

    def _run(self, rows: list[int], **inputs: Any) -> Any:
        """One forward pass of `rows`, each row through its own adapter (or none)."""
        import torch

        if tuple(rows) != self.selected:
            self.selected = tuple(rows)
            for stacked in self.stacked.values():
                stacked.select(rows)
        self.current_names = [self.adapter_names[i] for i in rows] if self.adapter_names else None
        # peft's own `adapter_names=` walks every module twice per forward pass to set its hooks, then loops over
        # the adapters in every layer. Plain LoRA layers get a stacked forward instead (two batched matmuls for all
        # rows); any other LoRA layer is handed the row names directly.
        hooks = [layer.register_forward_pre_hook(self._inject_names, with_kwargs=True) for layer in self.lora_layers]
        for layer in self.stacked_layers:
            layer.forward = functools.partial(_stacked_forward, layer, self)
        try:
            with torch.inference_mode():
                # Only the last position's logits are needed: the whole prompt's would cost length × vocab.
                return self.model(use_cache=True, logits_to_keep=1, **inputs)
        finally:
            for hook in hooks:
                hook.remove()
            for layer in self.stacked_layers:
                del layer.forward  # the class's forward again

    def _prefill(self, room: int) -> list[Any]:
        """Each prompt alone (no work on padding: a few-shot prompt may be 10× longer than the others), then one
        left-padded cache with `room` free places per row for the shared decode steps. Returns each row's last
        logits."""
        import torch

        width = max(len(row.prompt_ids) for row in self.rows)
        # A context read in this batch is kept for the same adapters only: the stacked LoRA weights of a batch are
        # padded to its largest rank, and a cached context must hold the numbers this batch would compute.
        batch_key = ("batched", tuple(sorted({row.adapter or "" for row in self.rows})))
        logits, caches = [], []
        for i, row in enumerate(self.rows):
            def run(ids: list[int], past: Any, i: int = i) -> Any:
                return self._run([i], input_ids=torch.tensor([ids], device=self.device), past_key_values=past)

            out, row.state.cached_tokens = self.prompt_cache.prefill(run, (row.adapter, batch_key), row.prompt_ids,
                                                                     row.context)
            logits.append(out.logits[0, -1])
            caches.append(out.past_key_values)
        self.past = rows_cache(caches, width, room)
        self.mask = torch.tensor([[0] * (width - len(row.prompt_ids)) + [1] * len(row.prompt_ids)
                                  for row in self.rows], device=self.device)
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)[:, -1:]
        return logits

    def _decode(self) -> dict[int, Any]:
        """One token for every unfinished row in one forward pass; returns their logits by row.

        A finished row leaves the cache: the others go on at the cost of a smaller batch."""
        import torch

        keep = [i for i in self.active if not self.rows[i].state.done]
        if len(keep) < len(self.active):
            where = torch.tensor([self.active.index(i) for i in keep], device=self.device)
            self.past.batch_select_indices(where)
            self.mask, self.positions, self.next_ids = self.mask[where], self.positions[where], self.next_ids[where]
            self.active = keep
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(keep), 1))], dim=1)
        self.positions = self.positions + 1
        out = self._run(keep, input_ids=self.next_ids, attention_mask=self.mask, position_ids=self.positions,
                        past_key_values=self.past)
        self.past = out.past_key_values
        return {i: out.logits[j, -1] for j, i in enumerate(keep)}

    def _inject_names(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs["adapter_names"] = self.current_names
        return args, kwargs

    def step(self, sampling: Any, stop_ids: set[int], tokenizer: Any) -> None:
        """One forward pass for every row (the prompts: one each), then each unfinished row takes its next token."""
        import torch


        started = time.perf_counter()
        logits = dict(enumerate(self._prefill(sampling.max_new_tokens))) if self.past is None else self._decode()
        with torch.inference_mode():
            tokens = {i: sample_next(logits[i], sampling, self.rows[i].generator) for i in self.active}
        self.next_ids = torch.tensor([[tokens[i]] for i in self.active], device=self.device)
        seconds = time.perf_counter() - started
        for i, token in tokens.items():  # the pass is shared: each side waited for all of it
            self.rows[i].state.record(token, seconds, stop_ids, tokenizer, sampling.max_new_tokens)


class RowsLayer:
    """One layer's keys and values for every row, left-padded, in a buffer with room for the answers.

    transformers' DynamicLayer appends a token with torch.cat, which copies the whole layer's cache every step (and
    leaves the heap strewn with ever larger freed blocks); here a decode step writes its one position in place.
    The model reads `keys` / `values` through the same calls as a DynamicLayer's, so the attention sees the same
    numbers.
    """

    is_sliding = False
    is_compileable = False
    is_croppable = False
    is_initialized = True

    def __init__(self, prompts: list[tuple[Any, Any]], width: int, room: int) -> None:
        keys, _ = prompts[0]
        _, heads, _, dim = keys.shape
        # Zeros, not empty memory, in the padding: masked positions must hold finite numbers (0 × NaN is NaN).
        self._keys = keys.new_zeros((len(prompts), heads, width + room, dim))
        self._values = keys.new_zeros((len(prompts), heads, width + room, dim))
        for row, (k, v) in enumerate(prompts):
            self._keys[row, :, width - k.shape[-2]:width] = k[0]
            self._values[row, :, width - v.shape[-2]:width] = v[0]
        self.length = width
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        new = key_states.shape[-2]
        if self.length + new > self._keys.shape[-2]:  # more steps than planned: double the room
            size = max(self.length + new, 2 * self._keys.shape[-2])
            for name in ("_keys", "_values"):
                old = getattr(self, name)
                grown = old.new_zeros(old.shape[:2] + (size, old.shape[-1]))
                grown[:, :, :self.length] = old[:, :, :self.length]
                setattr(self, name, grown)
        self._keys[:, :, self.length:self.length + new] = key_states
        self._values[:, :, self.length:self.length + new] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def batch_select_indices(self, indices: Any) -> None:
        """Keep only these rows (a finished side leaves the batch)."""
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._views()


def rows_cache(caches: list[Any], width: int, room: int) -> Any:
    """One transformers Cache of RowsLayers from the prompts' own caches (one prompt each). Each prompt layer is let
    go as soon as it is copied, so the prompts' caches and the merged one are never all held at once."""
    from transformers.cache_utils import Cache, CacheLayerMixin

    CacheLayerMixin.register(RowsLayer)  # Cache tells attention layers by isinstance; no code is inherited
    merged = []
    for index in range(len(caches[0].layers)):
        prompts = [(cache.layers[index].keys, cache.layers[index].values) for cache in caches]
        merged.append(RowsLayer(prompts, width, room))
        for cache in caches:
            cache.layers[index].keys = cache.layers[index].values = None
    return Cache(layers=merged)


@dataclass
class _Stacked:
    """One plain LoRA layer's weights for every row of a batch (zeros where a row has no adapter here)."""

    lora_a: Any  # [rows, r_max, in]
    lora_b: Any  # [rows, out, r_max]
    scaling: Any  # [rows, 1, 1]
    any_adapter: bool
    current: tuple = ()  # (a, b, scaling) of the rows in the forward pass now

    def select(self, rows: list[int]) -> None:
        if list(rows) == list(range(len(self.lora_a))):  # every row, in order: no copy
            self.current = (self.lora_a, self.lora_b, self.scaling)
        else:
            self.current = (self.lora_a[rows], self.lora_b[rows], self.scaling[rows])


def _stack_lora(layer: Any, names: list[str] | None) -> _Stacked | None:
    """The stacked weights of a plain (not DoRA, not merged, no LoRA bias) peft LoRA Linear, else None."""
    import torch
    from peft.tuners.lora import Linear as LoraLinear

    if names is None or type(layer) is not LoraLinear or layer.merged:
        return None
    present = [name for name in names if name in layer.lora_A]
    if any(name in layer.lora_variant or layer.lora_B[name].bias is not None for name in present):
        return None
    weight = layer.lora_A[present[0]].weight if present else layer.base_layer.weight
    r_max = max((layer.r[name] for name in present), default=1)
    a = weight.new_zeros((len(names), r_max, layer.in_features))
    b = weight.new_zeros((len(names), layer.out_features, r_max))
    scaling = weight.new_zeros((len(names), 1, 1))
    with torch.no_grad():
        for row, name in enumerate(names):
            if name in layer.lora_A:
                r = layer.r[name]
                a[row, :r], b[row, :, :r] = layer.lora_A[name].weight, layer.lora_B[name].weight
                scaling[row] = layer.scaling[name]
    return _Stacked(a, b, scaling, bool(present))


def _stacked_forward(layer: Any, batch: BatchedSides, x: Any, *args: Any, **kwargs: Any) -> Any:
    """result + lora_B(lora_A(x)) * scaling with each row's own A, B and scaling (dropout is off in eval)."""
    import torch

    result = layer.base_layer(x, *args, **kwargs)
    stacked = batch.stacked[id(layer)]
    if not stacked.any_adapter:
        return result
    lora_a, lora_b, scaling = stacked.current
    inputs = x.to(lora_a.dtype).reshape(x.shape[0], -1, x.shape[-1])
    update = torch.bmm(torch.bmm(inputs, lora_a.transpose(1, 2)), lora_b.transpose(1, 2))
    return (result + (update * scaling).reshape(result.shape)).to(result.dtype)


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


def _small_batch_linear(self: Any, x: Any) -> Any:
    """nn.Linear.forward, faster for a few token rows on a CPU (a decode step of 1-16 sides).

    A decode step streams every weight from memory once per token, so its speed is how fast the matrix product reads
    the weight. x @ W.T with a few rows takes MKL's general path, and one row its matrix-vector path; both read the
    weight about half as fast as W @ x.T with two or more columns does. So: W @ x.T, and a lone row gets a zero row
    beside it. Measured on 2 cores, one 1536×576 weight out of 120 (not in cache): 217 µs for one row as x @ W.T,
    98 µs with the zero row; 331 µs → 96 µs for two rows.
    """
    import torch
    import torch.nn.functional as F

    rows = x.numel() // x.shape[-1] if x.dim() else 0
    if SMALL_ROWS[0] <= rows <= SMALL_ROWS[1] and x.device.type == "cpu" and x.dtype == self.weight.dtype:
        flat = x.reshape(rows, x.shape[-1])
        if rows == 1:
            flat = torch.cat([flat, flat.new_zeros(flat.shape)])
        # contiguous: a transposed view here would reach attention with a last-dim stride of 2 and push SDPA off
        # its flash kernel onto the slow math path
        y = (self.weight @ flat.T)[:, :rows].T.contiguous().reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias
    return F.linear(x, self.weight, self.bias)


def speed_up_small_batches(model: Any) -> Any:
    """Give every plain nn.Linear of a model used for generation the small-batch path above (same results up to
    float rounding; nothing changes on a GPU or for long inputs). Returns the model."""
    import types

    import torch

    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.forward = types.MethodType(_small_batch_linear, module)
    return model
