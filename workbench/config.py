"""Run configuration: what to train, on what, and how — one dataclass per part, saved as YAML presets.

Every field carries its help text and valid range in its metadata; `__post_init__` checks them, so a bad value
is refused where it enters (UI form, CLI flag or preset file) with an error naming the field, the value and the
valid range. The UI reads the same metadata for its sliders and help texts.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.fsio import write_atomic
from workbench.i18n import text
from workbench.methods.registry import KNOBS, check_value, get_method

EMBEDDED_MODEL = "embedded"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the field and the fix."""


def knob(default: Any, help: str, minimum: float | None = None, maximum: float | None = None,
         choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field with its help text and valid range attached."""
    return field(default=default, metadata={"help": help, "min": minimum, "max": maximum, "choices": choices})


def _check_field(section: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if not meta:
        return
    problem = check_value(f"{section}.{f.name}", value, f.default, meta["min"], meta["max"], meta["choices"])
    if problem:
        raise ConfigError(problem)


def _check_all(obj: Any, section: str) -> None:
    for f in dataclasses.fields(obj):
        _check_field(section, f, getattr(obj, f.name))


@dataclass
class ModelConfig:
    name_or_path: str = knob(EMBEDDED_MODEL, "The base model: 'embedded' (SmolLM2-135M-Instruct, bundled, works "
                             "offline), a Hugging Face Hub id such as 'HuggingFaceTB/SmolLM2-360M-Instruct', or a "
                             "local folder with config.json and safetensors weights. The embedded model reads Korean "
                             "poorly (about three tokens per syllable); with the Hub, small models that know Korean "
                             "include 'Qwen/Qwen2.5-0.5B-Instruct', 'Qwen/Qwen2.5-1.5B-Instruct', "
                             "'kakaocorp/kanana-nano-2.1b-instruct' and 'LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct' "
                             "(check each model's licence).")
    dtype: str = knob("auto", "Weights and compute type. 'auto' = float32 on CPU, bfloat16 on a GPU that supports "
                      "it.", choices=("auto", "float32", "bfloat16", "float16"))
    trust_remote_code: bool = knob(False, "Run Python code shipped with a Hub model. Off unless you trust its "
                                   "author.")

    def __post_init__(self) -> None:
        _check_all(self, "model")
        if not self.name_or_path.strip():
            raise ConfigError(f"model.name_or_path is {self.name_or_path!r} (empty); use 'embedded', a Hub id or a "
                              "local folder")


MAX_SHARE = 0.5  # the largest share of a file held out for validation or test (more is a count of examples)


@dataclass
class DataConfig:
    # The help texts of the Data tab's fields live in the catalogues (workbench/i18n), Korean beside English.
    path: str = knob("sample:en_ticket_triage", text("data.path.help", "en"))
    val_size: float = knob(0.1, text("data.val_size.help", "en"), 0, 100_000)
    test_size: float = knob(0.1, text("data.test_size.help", "en"), 0, 100_000)
    split_seed: int = knob(0, text("data.split_seed.help", "en"), 0, 2**31 - 1)

    def __post_init__(self) -> None:
        _check_all(self, "data")
        for name in ("val_size", "test_size"):
            value = getattr(self, name)
            if MAX_SHARE < value < 1 or (value >= 1 and value != int(value)):
                raise ConfigError(f"data.{name} must be a share between 0 and {MAX_SHARE} or a whole count; got "
                                  f"{value!r}")


@dataclass
class MethodConfig:
    """The method and all its knobs; a method reads only its own knobs (see workbench.methods.registry)."""

    name: str = knob("lora", "The fine-tuning method (see `python -m workbench methods`).")
    rank: int = KNOBS["rank"].default
    alpha: int = KNOBS["alpha"].default
    dropout: float = KNOBS["dropout"].default
    targets: str = KNOBS["targets"].default
    bits: str = KNOBS["bits"].default
    num_virtual_tokens: int = KNOBS["num_virtual_tokens"].default
    init_text: str = KNOBS["init_text"].default
    encoder_hidden_size: int = KNOBS["encoder_hidden_size"].default
    adapter_len: int = KNOBS["adapter_len"].default
    adapter_layers: int = KNOBS["adapter_layers"].default
    trainable_layers: int = KNOBS["trainable_layers"].default
    train_modules: str = KNOBS["train_modules"].default

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"method.name must be text; got {self.name!r}")
        get_method_or_error(self.name)
        if isinstance(self.bits, int) and not isinstance(self.bits, bool):  # YAML reads `bits: 4` as a number
            self.bits = str(self.bits)
        for name, spec in KNOBS.items():
            problem = spec.check(getattr(self, name))
            if problem:
                raise ConfigError(problem)


def get_method_or_error(name: str):
    try:
        return get_method(name)
    except ValueError as exc:
        raise ConfigError(f"method.name: {exc}") from None


@dataclass
class TrainConfig:
    learning_rate: float = knob(1e-3, "Step size of the optimiser (AdamW). Adapters like 1e-4 to 2e-3; full "
                                "fine-tuning wants 1e-5 to 5e-5.", 1e-8, 1.0)
    epochs: float = knob(1.0, "Passes over the training split (ignored when max steps is set).", 0.01, 1000)
    max_steps: int = knob(0, "Stop after this many optimiser steps; 0 = run the given epochs.", 0, 1_000_000)
    batch_size: int = knob(4, "Examples per forward pass. Larger is faster per example but needs more "
                           "memory.", 1, 1024)
    grad_accum: int = knob(1, "Forward passes summed into one optimiser step: effective batch = batch size × "
                           "this.", 1, 1024)
    max_seq_len: int = knob(256, "Longest example in tokens. Longer examples lose the start of their prompt "
                            "first; an answer longer than half of this is cut too.", 16, 131_072)
    gradient_checkpointing: bool = knob(False, "Keep only each layer's input during the forward pass and recompute "
                                        "the rest in the backward pass: much less activation memory (long "
                                        "sequences, big models) for about a third more time per step.")
    warmup_ratio: float = knob(0.05, "Share of the steps over which the learning rate ramps up from 0.", 0, 0.5)
    lr_schedule: str = knob("cosine", "How the learning rate falls after warm-up.",
                            choices=("cosine", "linear", "constant"))
    weight_decay: float = knob(0.0, "AdamW weight decay on the trained weights.", 0, 1)
    eval_every: int = knob(10, "Compute the validation loss every N steps (0 = only at the end).", 0, 1_000_000)
    checkpoint_every: int = knob(50, "Save a resumable checkpoint (weights, optimiser, scheduler) every N steps, so a "
                                 "crash loses at most N steps; a stopped run always saves one (0 = only on stop).",
                                 0, 1_000_000)
    seed: int = knob(0, "Random seed for initialisation, shuffling and dropout: the same seed repeats a run.",
                     0, 2**31 - 1)
    general_every: int = knob(10, "Forgetting probe: before the first step and every N steps, measure the loss on "
                              "a fixed sample of the bundled general reference set (general knowledge and everyday "
                              "instructions, English and Korean). It rises when the model forgets. 0 = off.",
                              0, 1_000_000)
    general_samples: int = knob(24, "Forgetting probe: how many general-set examples it measures each time.", 1, 50)
    replay_ratio: float = knob(0.0, "Replay against forgetting: share of the training examples drawn from the "
                               "general reference set (its replay part, never the probe's). 0.2 = one example in "
                               "five is general data. 0 = off.", 0, 0.9)
    l2_to_base: float = knob(0.0, "L2 toward the start against forgetting: adds λ·Σ(θ − θ₀)² over the trained "
                             "weights to the loss. For selective and full fine-tuning θ₀ are the base weights "
                             "(L2-SP); for adapters, the adapter weights at their start. 0 = off; try 0.01–1.",
                             0, 1000)
    eval_test: bool = knob(True, "After training, answer the test split with the base model and this run and score "
                           "both (perplexity, ROUGE, BLEU, chrF, exact match / F1, similarity). Stored with the "
                           "run.")
    eval_max_new_tokens: int = knob(64, "Longest answer generated when scoring the test split, in tokens.", 1, 2048)
    objective: str = knob("sft", "What to learn. 'sft': imitate the answers in the data (instruction tuning). "
                          "'dpo': prefer the chosen answer over the rejected one (direct preference optimisation); "
                          "needs prompt / chosen / rejected rows, such as the Arena's exported votes, and a "
                          "LoRA-family method.", choices=("sft", "dpo"))
    dpo_beta: float = knob(0.1, "DPO β: how strongly training holds the model near where it started while it learns "
                           "the preferences. 0.1 is usual; higher = more cautious.", 0.001, 10)
    init_adapter: str = knob("", "Continue from a trained adapter: a run id or an adapter folder (LoRA family). "
                             "Empty = a new adapter on the base. For DPO the starting adapter is also the "
                             "reference the preferences are measured against.")

    def __post_init__(self) -> None:
        _check_all(self, "train")


SECTIONS = {"model": ModelConfig, "data": DataConfig, "method": MethodConfig, "train": TrainConfig}


@dataclass
class RunConfig:
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be text; got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from nested plain data (a parsed preset), refusing unknown keys by name."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a run config must be a mapping of sections; got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(SECTIONS) - {"name"})
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; valid keys: name, {', '.join(SECTIONS)}")
        parts = {key: _section_from_dict(key, {} if raw.get(key) is None else raw[key]) for key in SECTIONS}
        return cls(name=raw.get("name", "") or "", **parts)

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """A copy with dotted-key overrides applied, e.g. {"train.max_steps": 5}."""
        raw = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section == "name" and not key:
                raw["name"] = value
                continue
            if section not in SECTIONS or not key:
                raise ConfigError(f"unknown setting {dotted!r}; use section.field, e.g. train.max_steps")
            raw[section][key] = value
        return RunConfig.from_dict(raw)


def _section_from_dict(key: str, values: Any) -> Any:
    cls = SECTIONS[key]
    if not isinstance(values, dict):
        raise ConfigError(f"{key} must be a mapping of settings; got {values!r}")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(f"unknown {key} setting(s) {unknown}; valid: {', '.join(sorted(valid))}")
    values = dict(values)
    for f in dataclasses.fields(cls):  # YAML reads 1e-3 as text in some spellings; accept numbers written as text
        if f.name in values and type(f.default) is float and isinstance(values[f.name], str):
            try:
                values[f.name] = float(values[f.name])
            except ValueError:
                pass
    return cls(**values)


# What a field is called on screen, where "Field name" from its key does not read well. Messages shown in the app
# name fields by these labels (on_screen), the CLI by their keys.
FIELD_LABELS = {
    ("model", "name_or_path"): "Base model", ("method", "name"): "Method",
    ("data", "path"): "Data used for training", ("data", "val_size"): "Validation share",
    ("data", "test_size"): "Test share", ("data", "split_seed"): "Split seed",
    ("train", "general_every"): "Probe every N steps", ("train", "general_samples"): "Probe examples",
    ("train", "l2_to_base"): "L2 toward the start (λ)", ("train", "eval_test"): "Score the test split after training",
    ("train", "eval_max_new_tokens"): "Max new tokens when scoring", ("train", "dpo_beta"): "DPO β",
    ("train", "init_adapter"): "Continue from adapter (run id or folder)",
}


def field_label(section: str, name: str) -> str:
    """A field's label on screen ("Max seq len" for train.max_seq_len, a method knob's own label)."""
    if section == "method" and name in KNOBS:
        return KNOBS[name].label
    return FIELD_LABELS.get((section, name), name.replace("_", " ").capitalize())


_FIELD_KEY = re.compile(r"\b(model|data|method|train)\.([a-z][a-z0-9_]*)\b")


def on_screen(message: str) -> str:
    """A message for the app's screen: every field key in it (train.max_seq_len) becomes the field's label in
    quotes (“Max seq len”), as the form shows it; unknown keys stay as they are."""
    def label(match: re.Match) -> str:
        section, name = match.groups()
        known = (section == "method" and name in KNOBS) or name in SECTIONS[section].__dataclass_fields__
        return f"“{field_label(section, name)}”" if known else match.group(0)

    return _FIELD_KEY.sub(label, message)


def field_help(section: str, name: str) -> str:
    """The help text of a config field, for UI labels and CLI --help."""
    if section == "method" and name in KNOBS:
        return KNOBS[name].help
    return _field(section, name).metadata.get("help", "")


def field_range(section: str, name: str) -> tuple[float | None, float | None]:
    """The valid range of a config field (None where it has no bound): the CLI and the UI's number boxes use it."""
    meta = _field(section, name).metadata
    return meta.get("min"), meta.get("max")


def field_choices(section: str, name: str) -> tuple[str, ...]:
    """The values a text field accepts (empty when any text goes): the UI's radios and dropdowns offer these."""
    return tuple(_field(section, name).metadata.get("choices", ()))


def _field(section: str, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return f
    raise KeyError(f"{section}.{name}")


# libyaml's parser when PyYAML has it: the pure-Python one takes ~17 ms per run config, and the Runs table reads
# every run's config on each refresh.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=512)
def _parsed_yaml(path: str, _mtime_ns: int, _size: int) -> Any:
    """One version of a YAML file, parsed once (callers copy it before changing it)."""
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


def load_preset(path: str | Path) -> RunConfig:
    """Read a YAML preset into a checked RunConfig."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset file {str(path)!r} not found; presets live in presets/*.yaml")
    try:
        stat = path.stat()
        raw = _parsed_yaml(str(path), stat.st_mtime_ns, stat.st_size)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"preset {path.name} is not valid YAML: {exc}") from None
    try:
        return RunConfig.from_dict(copy.deepcopy(raw) or {})
    except ConfigError as exc:
        raise ConfigError(f"preset {path.name}: {exc}") from None


def dump_config(config: RunConfig, header: str = "") -> str:
    """The YAML text of a config, with an optional comment header. The method section lists only the knobs its
    method reads (the others would be noise; a file that lists them all still loads)."""
    raw = config.to_dict()
    used = get_method(config.method.name).knobs
    raw["method"] = {key: value for key, value in raw["method"].items() if key == "name" or key in used}
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    if header:
        body = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body
    return body


def save_preset(config: RunConfig, path: str | Path, header: str = "") -> Path:
    return write_atomic(Path(path), dump_config(config, header))
