"""The registry of fine-tuning methods and of the knobs they use.

Everything that offers a method reads this module: the Train tab's choices and visible knobs, the CLI's
`--method` and knob flags, preset validation and the parametrised tests. Adding a method is one `register`
call here, its texts in the catalogues (`workbench/i18n/*/methods.yaml`: its name, summary and card, in Korean and
English) and one preset (see CONTRIBUTING.md). A method's and a knob's words are looked up by key (`label_key`,
`help_key`, ...); `label`, `help` and `summary` give them in English, for the core's own messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.i18n import Message, message, text

if TYPE_CHECKING:  # config imports this module; only the types are needed here
    from torch import nn

    from workbench.config import MethodConfig



@dataclass(frozen=True)
class Knob:
    """One setting of a method: its range and default; its name, help and choices' names are in the catalogues
    (`method.<name>.label`, `.help`, `.choice.<value>`)."""

    name: str  # the MethodConfig field it sets
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    step: float | None = None

    @property
    def label_key(self) -> str:
        return f"method.{self.name}.label"

    @property
    def help_key(self) -> str:
        return f"method.{self.name}.help"

    def choice_key(self, choice: str) -> str:
        """The catalogue key of one choice's name on screen (the value itself is what configs hold)."""
        return f"method.{self.name}.choice.{choice}"

    @property
    def label(self) -> str:
        """The knob's name on the form, in English (messages of the core name knobs by it)."""
        return text(self.label_key, "en")

    @property
    def help(self) -> str:
        """The knob's help in English (the catalogues hold it in Korean too)."""
        return text(self.help_key, "en")

    def check(self, value: Any) -> Message | None:
        """Return an error message for a bad value (a catalogue Message), or None when it is fine."""
        return check_value(f"method.{self.name}", value, self.default, self.minimum, self.maximum, self.choices,
                           max_chars=2000)


def check_value(where: str, value: Any, default: Any, minimum: float | None = None, maximum: float | None = None,
                choices: tuple[str, ...] = (), max_chars: int | None = None) -> Message | None:
    """The one check of a setting's value against its kind (the default's type), range and choices: an error message
    that names the setting, the value and what would be right (a catalogue Message, `core.setting.*`: str() in the
    environment's language, say(problem, lang) in any), or None. Method knobs and every config field use it."""
    if choices:
        return None if value in choices else message("core.setting.choice", where=where, value=repr(value),
                                                      choices=", ".join(choices))
    kind = type(default)
    if kind is bool and not isinstance(value, bool):
        return message("core.setting.boolean", where=where, value=repr(value))
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return message("core.setting.whole", where=where, value=repr(value))
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return message("core.setting.number", where=where, value=repr(value))
    if kind is str:
        if not isinstance(value, str):
            return message("core.setting.text", where=where, value=repr(value))
        if max_chars is not None and len(value) > max_chars:
            return message("core.setting.too_long", where=where, limit=max_chars, value=f"{value!r:.60}")
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        return message("core.setting.range", where=where, minimum=f"{minimum:g}", maximum=f"{maximum:g}",
                       value=repr(value))
    return None


KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("rank", 8, 1, 256, step=1),
        Knob("alpha", 16, 1, 512, step=1),
        Knob("dropout", 0.05, 0.0, 0.5, step=0.01),
        Knob("targets", "attention", choices=("attention", "all-linear")),
        Knob("bits", "4", choices=("4", "8")),
        Knob("num_virtual_tokens", 16, 1, 256, step=1),
        Knob("init_text", ""),
        Knob("encoder_hidden_size", 128, 16, 4096, step=16),
        Knob("adapter_len", 10, 1, 128, step=1),
        Knob("adapter_layers", 8, 1, 200, step=1),
        Knob("trainable_layers", 2, 1, 200, step=1),
        Knob("train_modules", "all", choices=("all", "attention", "mlp")),
    )
}

ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj", "query_key_value", "query",
                   "key", "value", "Wqkv", "out_proj")
MLP_NAMES = ("gate_proj", "up_proj", "down_proj", "fc1", "fc2", "c_fc", "dense_h_to_4h", "dense_4h_to_h", "w1",
             "w2", "w3")
LLAMA_FAMILY = ("llama", "mistral", "gemma", "gemma2", "qwen2", "qwen3", "mixtral")


@dataclass(frozen=True)
class MethodSpec:
    """One fine-tuning method: everything the rest of the code asks about it.

    `build(cfg, model, steps)` returns a peft config (`steps`: the run's optimiser steps, for methods whose schedule
    depends on them), or `prepare(cfg, model)` sets requires_grad on the model's own weights. `serve` says how
    Compare answers with a saved result: "shared" shares the base model's LoRA batch (one PeftModel holds them all),
    "soft" wraps the shared base with the virtual tokens, "own" loads a copy of the base. `after_step(model, step)`
    runs after each optimiser step (before the gradients are cleared) and `extra_loss(model)` adds a regulariser
    to each step's loss. Its name on screen, one-line summary and explanation card are in the catalogues
    (`methods.<name>.label`, `.summary`, `.card`), its family's words under `methods.family.<family>`.
    """

    name: str
    family: str  # one of FAMILIES
    knobs: tuple[str, ...]
    build: Callable[[MethodConfig, nn.Module, int], Any] | None = None  # -> a peft config
    prepare: Callable[[MethodConfig, nn.Module], nn.Module] | None = None  # sets requires_grad itself
    learning_rate: float = 1e-3  # a sensible default for presets and the UI hint
    needs_cuda: bool = False
    needs_model_types: tuple[str, ...] = ()
    peft_type: str = ""  # what peft writes in adapter_config.json; "" for methods that save plain weights
    serve: str = "own"  # "shared" | "soft" | "own" (see above)
    batch_same_length: bool = False  # soft prompts that ignore position ids: batch prompts of one length only
    merges: bool = False  # its update folds into the base weights (export: merge)
    dpo: bool = False  # DPO can train it, and a run can continue from its adapter
    after_step: Callable[[Any, int], None] | None = None
    extra_loss: Callable[[Any], Any] | None = None
    frozen_on_meta: tuple[str, ...] = ()  # parameters peft leaves trainable on the meta device only (preflight)

    @property
    def label_key(self) -> str:
        return f"methods.{self.name}.label"

    @property
    def summary_key(self) -> str:
        return f"methods.{self.name}.summary"

    @property
    def card_key(self) -> str:
        return f"methods.{self.name}.card"

    @property
    def family_key(self) -> str:
        """The family's catalogue prefix: `<it>.name` is its name, `<it>.about` one line on what it changes."""
        return f"methods.family.{self.family.replace(' ', '_')}"

    @property
    def label(self) -> str:
        """The method's name in English (the core's messages name it so; the page and CLI ask the catalogue)."""
        return text(self.label_key, "en")

    @property
    def summary(self) -> str:
        return text(self.summary_key, "en")

    @property
    def uses_peft(self) -> bool:
        return self.build is not None

    @property
    def quantizes(self) -> bool:
        """The frozen base is loaded in 4 or 8 bits (the `bits` knob)."""
        return "bits" in self.knobs


METHODS: dict[str, MethodSpec] = {}
FAMILIES = ("reparameterisation", "additive", "soft prompt", "selective", "full")


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry, checking that it is well formed."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is registered twice")
    unknown = [k for k in spec.knobs if k not in KNOBS]
    if unknown:
        raise ValueError(f"method {spec.name!r} uses unknown knobs {unknown}; define them in KNOBS first")
    if (spec.build is None) == (spec.prepare is None):
        raise ValueError(f"method {spec.name!r} needs exactly one of build (peft) or prepare (plain weights)")
    if spec.uses_peft != bool(spec.peft_type) or spec.serve not in SERVING:
        raise ValueError(f"method {spec.name!r}: a peft method names its peft_type (and only it), and serve is one of "
                         f"{', '.join(SERVING)}")
    METHODS[spec.name] = spec
    return spec


SERVING = ("shared", "soft", "own")


def for_adapter(peft_type: str) -> MethodSpec | None:
    """The registered method that saves adapters of this peft type ("" or None for plain saved weights); methods
    that share a type (LoRA, DoRA, rsLoRA, QLoRA all save "LORA") agree on how it is served and merged."""
    for spec in METHODS.values():
        if spec.peft_type == (peft_type or ""):
            return spec
    return None


def dpo_methods() -> list[str]:
    """The methods DPO trains and a run can continue from."""
    return [name for name, spec in METHODS.items() if spec.dpo]


def get_method(name: str) -> MethodSpec:
    """Look a method up by name, with an error that lists the valid names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(message("core.setting.unknown_method", name=repr(name),
                                 choices=", ".join(sorted(METHODS)))) from None


def linear_names(model: nn.Module, wanted: tuple[str, ...]) -> list[str]:
    """Short names of the model's linear layers that are among `wanted`."""
    from torch import nn as torch_nn

    leaves = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
              if isinstance(module, torch_nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")}
    return sorted(leaves & set(wanted))


def resolve_targets(model: nn.Module, targets: str) -> list[str] | str:
    """Turn the `targets` knob into peft's `target_modules` for this model."""
    if targets == "all-linear":
        return "all-linear"
    found = linear_names(model, ATTENTION_NAMES)
    if not found:
        raise ValueError(
            "method.targets is 'attention' but no attention projections were found in this model "
            f"(looked for {', '.join(ATTENTION_NAMES)}); choose targets: all-linear"
        )
    return found


def _lora(**extra: Any) -> Callable[[MethodConfig, nn.Module, int], Any]:
    def build(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=resolve_targets(model, cfg.targets), bias="none", **extra)

    return build


def _ia3(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import IA3Config, TaskType

    # The IA3 recipe scales keys, values and the feed-forward output; "attention" keeps to keys and values.
    attention = [n for n in linear_names(model, ATTENTION_NAMES) if n in ("k_proj", "v_proj", "key", "value")]
    feedforward = [n for n in linear_names(model, MLP_NAMES) if n in ("down_proj", "fc2", "dense_4h_to_h", "w2")]
    if not attention:
        raise ValueError("IA3 found no key/value projections (k_proj, v_proj) in this model; choose LoRA")
    targets = attention + (feedforward if cfg.targets == "all-linear" else [])
    return IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=targets,
                     feedforward_modules=[n for n in targets if n in feedforward])


def _prompt_tuning(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    text = cfg.init_text.strip()
    source = getattr(model.config, "_name_or_path", "")
    return PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=text or None, tokenizer_name_or_path=source if text else None,
    )


def _prefix_tuning(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens)


def _p_tuning(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import PromptEncoderConfig, TaskType

    return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens,
                               encoder_hidden_size=cfg.encoder_hidden_size)


def _llama_adapter(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import AdaptionPromptConfig, TaskType

    layers = getattr(model.config, "num_hidden_layers", cfg.adapter_layers)
    if cfg.adapter_layers > layers:
        raise ValueError(f"method.adapter_layers is {cfg.adapter_layers} but this model has {layers} layers; "
                         f"choose at most {layers}")
    return AdaptionPromptConfig(task_type=TaskType.CAUSAL_LM, adapter_len=cfg.adapter_len,
                                adapter_layers=cfg.adapter_layers)


def _loha(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import LoHaConfig, TaskType

    return LoHaConfig(task_type=TaskType.CAUSAL_LM, r=cfg.rank, alpha=cfg.alpha, rank_dropout=cfg.dropout,
                      target_modules=resolve_targets(model, cfg.targets))


def _lokr(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import LoKrConfig, TaskType

    return LoKrConfig(task_type=TaskType.CAUSAL_LM, r=cfg.rank, alpha=cfg.alpha, rank_dropout=cfg.dropout,
                      target_modules=resolve_targets(model, cfg.targets))


def _vera(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import TaskType, VeraConfig

    # The random projections are saved with the adapter, so it reloads the same on any machine.
    return VeraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.rank, vera_dropout=cfg.dropout, save_projection=True,
                      target_modules=resolve_targets(model, cfg.targets))


def _adalora(cfg: MethodConfig, model: nn.Module, steps: int) -> Any:
    from peft import AdaLoraConfig, TaskType

    # Every layer starts at 1.5 × the rank; after a warm-up (the first 10 % of the steps) the budget is cut back
    # step by step to `rank` per layer on average, kept where the updates matter most, and fixed for the last 20 %.
    steps = max(1, steps)
    return AdaLoraConfig(task_type=TaskType.CAUSAL_LM, init_r=max(cfg.rank + 1, round(cfg.rank * 1.5)),
                         target_r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, total_step=steps,
                         tinit=steps // 10, tfinal=steps // 5, deltaT=max(1, steps // 20),
                         target_modules=resolve_targets(model, cfg.targets))


def _adalora_step(model: nn.Module, step: int) -> None:
    """Re-allocate AdaLoRA's rank budget from this step's gradients (before they are cleared)."""
    model.base_model.update_and_allocate(step)


def _adalora_orthogonality(model: nn.Module) -> Any:
    """AdaLoRA's regulariser: keeps each layer's P and Q near orthogonal (peft adds it only to a loss it computes
    itself from labels; this engine computes the loss from the logits)."""
    import torch

    weight = model.peft_config[model.active_adapter].orth_reg_weight
    terms = []
    for name, param in model.named_parameters():
        if param.requires_grad and ("lora_A" in name or "lora_B" in name) and param.numel():
            cov = param @ param.T if "lora_A" in name else param.T @ param
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device, dtype=cov.dtype)))
    return weight * torch.stack(terms).mean() if terms else torch.zeros(())


def _blocks(model: nn.Module) -> list[nn.Module]:
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return list(obj)
    raise ValueError("could not find this model's transformer blocks; choose LoRA or full fine-tuning")


def _selective(cfg: MethodConfig, model: nn.Module) -> nn.Module:
    blocks = _blocks(model)
    if cfg.trainable_layers > len(blocks):
        raise ValueError(f"method.trainable_layers is {cfg.trainable_layers} but this model has {len(blocks)} "
                         f"layers; choose at most {len(blocks)}")
    model.requires_grad_(False)
    wanted = {"attention": ATTENTION_NAMES, "mlp": MLP_NAMES}.get(cfg.train_modules)
    for block in blocks[-cfg.trainable_layers:]:
        for name, param in block.named_parameters():
            if wanted is None or any(part in wanted for part in name.split(".")):
                param.requires_grad_(True)
    return model


def _full(cfg: MethodConfig, model: nn.Module) -> nn.Module:
    return model.requires_grad_(True)


LORA_KNOBS = ("rank", "alpha", "dropout", "targets")
# LoRA, QLoRA, DoRA and rsLoRA save the same kind of adapter: several share one PeftModel in Compare, they merge,
# and DPO (or a run continuing from one) trains them.
LORA_TYPE: dict[str, Any] = {"peft_type": "LORA", "serve": "shared", "merges": True, "dpo": True}
for _spec in (
    MethodSpec("lora", "reparameterisation", LORA_KNOBS, build=_lora(), learning_rate=2e-3, **LORA_TYPE),
    MethodSpec("qlora", "reparameterisation", (*LORA_KNOBS, "bits"), build=_lora(), learning_rate=2e-3,
               needs_cuda=True, **LORA_TYPE),
    MethodSpec("dora", "reparameterisation", LORA_KNOBS, build=_lora(use_dora=True), learning_rate=2e-3,
               **LORA_TYPE),
    MethodSpec("rslora", "reparameterisation", LORA_KNOBS, build=_lora(use_rslora=True), learning_rate=1e-3,
               **LORA_TYPE),
    MethodSpec("ia3", "additive", ("targets",), build=_ia3, learning_rate=1e-2, peft_type="IA3", merges=True),
    MethodSpec("prompt_tuning", "soft prompt", ("num_virtual_tokens", "init_text"), build=_prompt_tuning,
               learning_rate=3e-2, peft_type="PROMPT_TUNING", serve="soft", batch_same_length=True),
    MethodSpec("prefix_tuning", "soft prompt", ("num_virtual_tokens",), build=_prefix_tuning, learning_rate=1e-2,
               peft_type="PREFIX_TUNING", serve="soft"),
    MethodSpec("p_tuning", "soft prompt", ("num_virtual_tokens", "encoder_hidden_size"), build=_p_tuning,
               learning_rate=1e-2, peft_type="P_TUNING", serve="soft", batch_same_length=True),
    MethodSpec("llama_adapter", "additive", ("adapter_len", "adapter_layers"), build=_llama_adapter,
               learning_rate=9e-3, needs_model_types=LLAMA_FAMILY, peft_type="ADAPTION_PROMPT"),
    MethodSpec("selective", "selective", ("trainable_layers", "train_modules"), prepare=_selective,
               learning_rate=1e-4),
    MethodSpec("loha", "reparameterisation", LORA_KNOBS, build=_loha, learning_rate=1e-2, peft_type="LOHA",
               merges=True),
    MethodSpec("lokr", "reparameterisation", LORA_KNOBS, build=_lokr, learning_rate=1e-2, peft_type="LOKR",
               merges=True),
    MethodSpec("vera", "reparameterisation", ("rank", "dropout", "targets"), build=_vera, learning_rate=5e-2,
               peft_type="VERA", merges=True),
    MethodSpec("adalora", "reparameterisation", LORA_KNOBS, build=_adalora, learning_rate=1e-2,
               peft_type="ADALORA", merges=True, after_step=_adalora_step, extra_loss=_adalora_orthogonality,
               frozen_on_meta=("ranknum",)),
    MethodSpec("full", "full", (), prepare=_full, learning_rate=5e-5),
):
    register(_spec)
