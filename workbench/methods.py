"""The registry of fine-tuning methods and of the knobs they use.

Everything that offers a method reads this module: the Train tab's choices and visible knobs, the CLI's
`--method` and knob flags, preset validation and the parametrised tests. Adding a method is one `register`
call here plus one preset (see CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # config imports this module; only the type is needed here
    from torch import nn

    from workbench.config import MethodConfig


@dataclass(frozen=True)
class Knob:
    """One setting of a method: its range, default and the help text shown beside it."""

    name: str  # the MethodConfig field it sets
    label: str
    help: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    step: float | None = None

    def check(self, value: Any) -> str | None:
        """Return an error message for a bad value, or None when it is fine."""
        if self.choices:
            if value not in self.choices:
                return f"method.{self.name} is {value!r}; choose one of: {', '.join(self.choices)}"
            return None
        kind = type(self.default)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"method.{self.name} must be a whole number; got {value!r}"
        if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"method.{self.name} must be a number; got {value!r}"
        if self.minimum is not None and self.maximum is not None and not self.minimum <= value <= self.maximum:
            return f"method.{self.name} must be between {self.minimum:g} and {self.maximum:g}; got {value!r}"
        return None


KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("rank", "Rank r", "Size of the low-rank update B·A. Higher learns more and costs more; step it up "
             "(4 → 8 → 16 → 32) until the validation loss stops improving.", 8, 1, 256, step=1),
        Knob("alpha", "Alpha", "Scale of the update: the change is multiplied by alpha / r. A common choice is "
             "alpha = 2 × r.", 16, 1, 512, step=1),
        Knob("dropout", "Dropout", "Dropout on the adapter's input during training; a little (0.05) helps on "
             "small data sets.", 0.05, 0.0, 0.5, step=0.01),
        Knob("targets", "Target layers", "Which linear layers get an adapter: the attention projections only "
             "(cheaper) or every linear layer of the blocks (more capacity, ~3× slower on CPU).",
             "attention", choices=("attention", "all-linear")),
    )
}

ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj", "query_key_value", "query",
                   "key", "value", "Wqkv", "out_proj", "dense")


@dataclass(frozen=True)
class MethodSpec:
    """One fine-tuning method: what it is, which knobs it reads and how to build its peft config."""

    name: str
    label: str
    family: str
    summary: str
    knobs: tuple[str, ...]
    build: Callable[[MethodConfig, nn.Module], Any]
    needs_cuda: bool = False


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry, checking that it is well formed."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is registered twice")
    unknown = [k for k in spec.knobs if k not in KNOBS]
    if unknown:
        raise ValueError(f"method {spec.name!r} uses unknown knobs {unknown}; define them in KNOBS first")
    METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """Look a method up by name, with an error that lists the valid names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown PEFT method {name!r}; choose one of: {', '.join(sorted(METHODS))}") from None


def resolve_targets(model: nn.Module, targets: str) -> list[str] | str:
    """Turn the `targets` knob into peft's `target_modules` for this model."""
    if targets == "all-linear":
        return "all-linear"
    from torch import nn as torch_nn

    found = sorted({
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch_nn.Linear) and name.rsplit(".", 1)[-1] in ATTENTION_NAMES
    })
    if not found:
        raise ValueError(
            "method.targets is 'attention' but no attention projections were found in this model "
            f"(looked for {', '.join(ATTENTION_NAMES)}); choose targets: all-linear"
        )
    return found


def _build_lora(cfg: MethodConfig, model: nn.Module) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=resolve_targets(model, cfg.targets),
        bias="none",
    )


register(MethodSpec(
    name="lora",
    label="LoRA",
    family="reparameterisation",
    summary="Freezes the model and learns a low-rank update W + (alpha/r)·B·A beside chosen linear layers.",
    knobs=("rank", "alpha", "dropout", "targets"),
    build=_build_lora,
))
