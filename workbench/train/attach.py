"""Set a registered method up on a base model, and count what it trains.
"""

from __future__ import annotations

from typing import Any

from workbench.config import RunConfig
from workbench.methods.registry import get_method
from workbench.models.loading import one_build_at_a_time


@one_build_at_a_time
def attach_method(model: Any, config: RunConfig, steps: int = 0) -> Any:
    """Set the configured method up on the base model; returns the model to train. `steps`: the run's optimiser
    steps (0: max_steps, else 100), for methods whose schedule depends on them (AdaLoRA's rank budget)."""
    spec = get_method(config.method.name)
    if not spec.uses_peft:
        return spec.prepare(config.method, model)
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_quantized", False):  # QLoRA: casts norms to fp32, enables input grads
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if config.train.init_adapter.strip():  # continue training a run's adapter (its own rank and targets)
        return PeftModel.from_pretrained(model, config.train.init_adapter.strip(), is_trainable=True)
    return get_peft_model(model, spec.build(config.method, model, steps or config.train.max_steps or 100))


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
