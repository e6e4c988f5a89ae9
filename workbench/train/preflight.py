"""Before launch: trainable parameters, adapter size, a memory estimate, and whether the run can go here at all.

The counts come from an empty copy of the model on PyTorch's meta device (no memory, well under a second), with
the method attached exactly as training will attach it. The memory estimate adds weights, gradients, AdamW state
and activations (the per-layer activation formula of Korthikanti et al., 2022, plus the logits) and compares the
sum with what this machine has free: the GPU's memory on a GPU, otherwise RAM.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from workbench.config import RunConfig
from workbench.data.examples import DataError, file_kind
from workbench.data.samples import resolve_data_path
from workbench.i18n import text
from workbench.methods.registry import dpo_methods, get_method
from workbench.models.loading import one_build_at_a_time, pick_dtype, resolve_model_source
from workbench.train.attach import attach_method, count_parameters

GIB = 1024**3


class PreflightError(ValueError):
    """A run that cannot go on this machine; the message says why and what to do instead."""


@dataclass
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    available: int
    device: str

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations


@dataclass
class Preflight:
    trainable: int
    total: int
    adapter_bytes: int
    memory: MemoryEstimate
    problems: list[str] = field(default_factory=list)

    def summary(self, lang: str | None = None) -> str:
        """What the Train tab shows above Start, in `lang` (None: the environment's); the problems as they are."""
        m = self.memory
        lines = [
            text("train.summary.trainable", lang, trainable=f"{self.trainable:,}", total=f"{self.total:,}",
                 percent=f"{100 * self.trainable / self.total:.3f}"),
            text("train.summary.saved_size", lang, size=_size(self.adapter_bytes)),
            text("train.summary.memory", lang, total=_size(m.total), weights=_size(m.weights),
                 gradients=_size(m.gradients), optimizer=_size(m.optimizer), activations=_size(m.activations),
                 available=_size(m.available), device=m.device),
        ]
        return "  \n".join(lines + [f"⛔ {p}" for p in self.problems])


def _size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def quantize_bits(config: RunConfig) -> int | None:
    return int(config.method.bits) if get_method(config.method.name).quantizes else None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def available_memory(device: str) -> int:
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


@functools.lru_cache(maxsize=8)
def _model_config(name_or_path: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig


    source, extra = resolve_model_source(name_or_path)
    return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)


@one_build_at_a_time
def count_parameters_on_meta(config: RunConfig) -> tuple[int, int]:
    """Trainable and total parameters of a config, on an empty copy of the model."""
    import torch
    from transformers import AutoModelForCausalLM

    model_config = _model_config(config.model.name_or_path, config.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    # Text initialisation reads real embeddings; it does not change the count, so count without it.
    counting = config.with_overrides({"method.init_text": ""}) if config.method.init_text else config
    model = attach_method(model, counting, steps=config.train.max_steps or 100)
    for name, param in model.named_parameters():  # what peft marks frozen on a real model but not on meta
        if any(f".{frozen}." in name for frozen in get_method(config.method.name).frozen_on_meta):
            param.requires_grad_(False)
    return count_parameters(model)


def needs_problems(config: RunConfig) -> list[str]:
    """Reasons this method cannot run here, each with a way out."""
    spec, problems = get_method(config.method.name), []
    if spec.needs_cuda and not cuda_available():
        problems.append(f"{spec.label} needs a CUDA GPU; this machine has none — choose LoRA, or run on a GPU "
                        "machine")
    if spec.needs_cuda and cuda_available():
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            problems.append(f"{spec.label} needs the bitsandbytes package: pip install bitsandbytes")
    if spec.needs_model_types:
        model_type = _model_config(config.model.name_or_path, config.model.trust_remote_code).model_type
        if model_type not in spec.needs_model_types:
            problems.append(f"{spec.label} works with llama-family models ({', '.join(spec.needs_model_types)}); "
                            f"this model is {model_type!r} — choose LoRA or prefix tuning")
    if config.train.objective == "dpo" and not spec.dpo:
        problems.append(f"DPO trains a LoRA-family adapter; {spec.label} is not one — choose "
                        f"{', '.join(dpo_methods())}, or set the objective to sft")
    if config.train.init_adapter.strip() and not spec.dpo:
        problems.append(f"continuing from an adapter works for the LoRA family ({', '.join(dpo_methods())}); "
                        f"{spec.label} is not one — clear init_adapter or choose LoRA")
    return problems


def weight_bytes_on(config: RunConfig, device: str) -> int:
    """Bytes per weight in the dtype training will use (the same choice load_model makes)."""
    return pick_dtype(config.model, device).itemsize


def estimate_memory(config: RunConfig, trainable: int, total: int) -> MemoryEstimate:
    """Peak training memory, roughly: weights + grads + AdamW state + activations."""
    model_config = _model_config(config.model.name_or_path, config.model.trust_remote_code)
    device = "cuda" if cuda_available() else "cpu"
    weight_bytes = weight_bytes_on(config, device)
    bits = quantize_bits(config)
    frozen = total - trainable
    weights = int(frozen * (bits / 8 + 0.05 if bits else weight_bytes)) + trainable * 4
    b, s = config.train.batch_size, config.train.max_seq_len
    hidden, layers = model_config.hidden_size, model_config.num_hidden_layers
    heads = model_config.num_attention_heads
    per_layer = b * s * hidden * 34 + 5 * heads * s * s * b  # bytes at 16 bits (Korthikanti et al.)
    # Checkpointing keeps each layer's input (2 bytes per value at 16 bits) and one layer's worth while recomputing.
    kept = layers * b * s * hidden * 2 + per_layer if config.train.gradient_checkpointing else per_layer * layers
    activations = int(kept * weight_bytes / 2 + b * s * model_config.vocab_size * 4 * 3)
    return MemoryEstimate(weights=weights, gradients=trainable * 4, optimizer=trainable * 8,
                          activations=activations, available=available_memory(device), device=device)


def preflight(config: RunConfig) -> Preflight:
    """Everything the Train tab shows before launch; problems listed rather than raised."""
    problems = needs_problems(config) + data_problems(config)
    trainable, total = count_parameters_on_meta(config)
    spec = get_method(config.method.name)
    # PEFT keeps adapter weights in float32; selective / full save the model's own tensors in its dtype.
    device = "cuda" if cuda_available() else "cpu"
    adapter_bytes = trainable * (4 if spec.uses_peft else weight_bytes_on(config, device))
    memory = estimate_memory(config, trainable, total)
    if memory.total > 0.9 * memory.available:
        problems.append(f"this run needs about {_size(memory.total)} but only {_size(memory.available)} is free — "
                        "lower the batch size or max sequence length, or choose a lighter method (LoRA, IA3)")
    return Preflight(trainable=trainable, total=total, adapter_bytes=adapter_bytes, memory=memory,
                     problems=problems)


def data_problems(config: RunConfig) -> list[str]:
    """The data file is unusable, or its kind does not fit the objective (SFT needs instructions, DPO pairs)."""
    path = config.data.path
    try:
        kind = file_kind(resolve_data_path(path))
    except (DataError, OSError) as err:
        return [f"data: {str(err).splitlines()[0]}"]
    if config.train.objective == "sft" and kind == "preference":
        return [f"data {path} holds preference pairs (prompt/chosen/rejected): set the objective to DPO, or choose "
                "instruction data for SFT"]
    if config.train.objective == "dpo" and kind == "sft":
        return [f"the DPO objective needs preference pairs (prompt/chosen/rejected), but {path} holds instructions: "
                "upload a preference file or export your Arena votes, or set the objective to SFT"]
    return []


def check_runnable(config: RunConfig) -> None:
    """Raise PreflightError when the method's needs are not met here (training calls this first)."""
    problems = needs_problems(config)
    if problems:
        raise PreflightError("; ".join(problems))
