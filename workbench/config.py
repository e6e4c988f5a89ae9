"""Run configuration: what to train, on what, and how — one dataclass per part, saved as YAML presets.

Every field carries its help text and valid range in its metadata; `__post_init__` checks them, so a bad value
is refused where it enters (UI form, CLI flag or preset file) with an error naming the field, the value and the
valid range: a ConfigError raised with a catalogue Message (`core.setting.*`), which the CLI prints in the
environment's language and the UI in the browser's (`say(error, lang)`). The UI reads the same metadata for its
sliders and help texts.
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
from workbench.i18n import Message, catalogue, message, text
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
    name_or_path: str = knob(EMBEDDED_MODEL, text("model.name_or_path.help", "en"))
    dtype: str = knob("auto", text("model.dtype.help", "en"), choices=("auto", "float32", "bfloat16", "float16"))
    trust_remote_code: bool = knob(False, text("model.trust_remote_code.help", "en"))

    def __post_init__(self) -> None:
        _check_all(self, "model")
        if not self.name_or_path.strip():
            raise ConfigError(message("core.setting.model_empty", value=repr(self.name_or_path)))


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
                raise ConfigError(message("core.setting.share", where=f"data.{name}", maximum=MAX_SHARE,
                                          value=repr(value)))


@dataclass
class MethodConfig:
    """The method and all its knobs; a method reads only its own knobs (see workbench.methods.registry)."""

    name: str = knob("lora", text("method.name.help", "en"))
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
            raise ConfigError(message("core.setting.text", where="method.name", value=repr(self.name)))
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
        raise ConfigError(message("core.setting.method", error=_said(exc))) from None


@dataclass
class TrainConfig:
    learning_rate: float = knob(1e-3, text("train.learning_rate.help", "en"), 1e-8, 1.0)
    epochs: float = knob(1.0, text("train.epochs.help", "en"), 0.01, 1000)
    max_steps: int = knob(0, text("train.max_steps.help", "en"), 0, 1_000_000)
    batch_size: int = knob(4, text("train.batch_size.help", "en"), 1, 1024)
    grad_accum: int = knob(1, text("train.grad_accum.help", "en"), 1, 1024)
    max_seq_len: int = knob(256, text("train.max_seq_len.help", "en"), 16, 131_072)
    gradient_checkpointing: bool = knob(False, text("train.gradient_checkpointing.help", "en"))
    warmup_ratio: float = knob(0.05, text("train.warmup_ratio.help", "en"), 0, 0.5)
    lr_schedule: str = knob("cosine", text("train.lr_schedule.help", "en"),
                            choices=("cosine", "linear", "constant"))
    weight_decay: float = knob(0.0, text("train.weight_decay.help", "en"), 0, 1)
    eval_every: int = knob(10, text("train.eval_every.help", "en"), 0, 1_000_000)
    early_stop_patience: int = knob(0, text("train.early_stop_patience.help", "en"), 0, 1000)
    early_stop_min_delta: float = knob(0.0, text("train.early_stop_min_delta.help", "en"), 0, 10)
    checkpoint_every: int = knob(50, text("train.checkpoint_every.help", "en"),
                                 0, 1_000_000)
    seed: int = knob(0, text("train.seed.help", "en"),
                     0, 2**31 - 1)
    general_every: int = knob(10, text("train.general_every.help", "en"),
                              0, 1_000_000)
    general_samples: int = knob(24, text("train.general_samples.help", "en"), 1, 50)
    replay_ratio: float = knob(0.0, text("train.replay_ratio.help", "en"), 0, 0.9)
    l2_to_base: float = knob(0.0, text("train.l2_to_base.help", "en"),
                             0, 1000)
    eval_test: bool = knob(True, text("train.eval_test.help", "en"))
    eval_max_new_tokens: int = knob(64, text("train.eval_max_new_tokens.help", "en"), 1, 2048)
    eval_mc: str = knob("none", text("train.eval_mc.help", "en"),
                        choices=("none", "knowledge_en", "knowledge_ko", "both"))
    eval_mc_shots: int = knob(5, text("train.eval_mc_shots.help", "en"), 0, 5)
    objective: str = knob("sft", text("train.objective.help", "en"), choices=("sft", "dpo"))
    dpo_beta: float = knob(0.1, text("train.dpo_beta.help", "en"), 0.001, 10)
    init_adapter: str = knob("", text("train.init_adapter.help", "en"))

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
            raise ConfigError(message("core.setting.text", where="name", value=repr(self.name)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from nested plain data (a parsed preset), refusing unknown keys by name."""
        if not isinstance(raw, dict):
            raise ConfigError(message("core.setting.not_mapping", kind=type(raw).__name__))
        unknown = sorted(set(raw) - set(SECTIONS) - {"name"})
        if unknown:
            raise ConfigError(message("core.setting.unknown_keys", keys=unknown, valid=", ".join(SECTIONS)))
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
                raise ConfigError(message("core.setting.unknown", setting=repr(dotted)))
            raw[section][key] = value
        return RunConfig.from_dict(raw)


def _section_from_dict(key: str, values: Any) -> Any:
    cls = SECTIONS[key]
    if not isinstance(values, dict):
        raise ConfigError(message("core.setting.section_not_mapping", section=key, value=repr(values)))
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(message("core.setting.unknown_fields", section=key, keys=unknown,
                                  valid=", ".join(sorted(valid))))
    values = dict(values)
    for f in dataclasses.fields(cls):  # YAML reads 1e-3 as text in some spellings; accept numbers written as text
        if f.name in values and type(f.default) is float and isinstance(values[f.name], str):
            try:
                values[f.name] = float(values[f.name])
            except ValueError:
                pass
    return cls(**values)


def field_label(section: str, name: str) -> str:
    """A field's label on screen ("Max seq len" for train.max_seq_len, a method knob's own label)."""
    if section == "method" and name in KNOBS:
        return KNOBS[name].label
    key = f"{section}.{name}.label"  # the form's labels live in the catalogues (workbench/i18n)
    return text(key, "en") if key in catalogue("en") else name.replace("_", " ").capitalize()


_FIELD_KEY = re.compile(r"\b(model|data|method|train)\.([a-z][a-z0-9_]*)\b")


def on_screen(said: str, lang: str = "en") -> str:
    """A message for the app's screen: every field key in it (train.max_seq_len) becomes the field's label in
    quotes (“Max seq len”), in `lang`, as the form shows it; unknown keys stay as they are."""
    def label(match: re.Match) -> str:
        section, name = match.groups()
        known = (section == "method" and name in KNOBS) or name in SECTIONS[section].__dataclass_fields__
        if not known:
            return match.group(0)
        key = f"{section}.{name}.label"  # a knob's too (method.rank.label)
        shown = text(key, lang) if key in catalogue("en") else field_label(section, name)
        return f"“{shown}”"

    return _FIELD_KEY.sub(label, said)


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
        raise ConfigError(message("core.preset.file_missing", path=repr(str(path))))
    try:
        stat = path.stat()
        raw = _parsed_yaml(str(path), stat.st_mtime_ns, stat.st_size)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(message("core.preset.not_yaml", name=path.name, error=str(exc))) from None
    try:
        return RunConfig.from_dict(copy.deepcopy(raw) or {})
    except ConfigError as exc:
        raise ConfigError(message("core.preset.refused", name=path.name, error=_said(exc))) from None


def _said(error: Exception) -> Message | str:
    """What an error says, kept as its Message when it has one (so it is still put into the reader's language)."""
    return error.args[0] if len(error.args) == 1 and isinstance(error.args[0], Message) else str(error)


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
