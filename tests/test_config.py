"""Tests for workbench.config and workbench.methods.registry: defaults, round trips, presets, validation and help
texts."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml

from workbench.config import (
    SECTIONS,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    dump_config,
    field_help,
    load_preset,
    save_preset,
)
from workbench.data.language import is_hangul
from workbench.i18n import LANGS, catalogue
from workbench.methods import registry as methods
from workbench.methods.cards import method_card
from workbench.methods.registry import KNOBS, METHODS, MethodSpec, get_method, register

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "presets").glob("*.yaml"))

NON_DEFAULT = {
    "name": "실험 7 — experiment",
    "model.dtype": "bfloat16",
    "model.trust_remote_code": True,
    "data.path": "sample:ko_faq",
    "data.val_size": 12,
    "data.test_size": 0.25,
    "data.split_seed": 42,
    "method.rank": 32,
    "method.alpha": 64,
    "method.dropout": 0.1,
    "method.targets": "all-linear",
    "train.learning_rate": 1e-5,
    "train.epochs": 2.5,
    "train.max_steps": 7,
    "train.batch_size": 3,
    "train.grad_accum": 4,
    "train.max_seq_len": 512,
    "train.warmup_ratio": 0.5,
    "train.lr_schedule": "linear",
    "train.weight_decay": 0.01,
    "train.eval_every": 0,
    "train.seed": 2**31 - 1,
}


def header_lines(text: str) -> list[str]:
    """The leading comment block of a YAML file."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


# ---------------------------------------------------------------- defaults and round trips


def test_defaults_are_valid_and_sections_are_the_dataclasses():
    config = RunConfig()
    assert isinstance(config.model, ModelConfig) and isinstance(config.data, DataConfig)
    assert isinstance(config.method, MethodConfig) and isinstance(config.train, TrainConfig)
    assert config.method.name == "lora" and config.model.name_or_path == "embedded"
    # the defaults pass the same checks a preset goes through
    assert RunConfig.from_dict(config.to_dict()) == config
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            RunConfig().with_overrides({f"{section}.{f.name}": getattr(getattr(config, section), f.name)})


def test_non_default_overrides_take_effect():
    config = RunConfig().with_overrides(NON_DEFAULT)
    assert config.name == NON_DEFAULT["name"]
    for dotted, value in NON_DEFAULT.items():
        if dotted == "name":
            continue
        section, _, key = dotted.partition(".")
        assert getattr(getattr(config, section), key) == value, dotted
    assert config != RunConfig()


@pytest.mark.parametrize("config", [RunConfig(), RunConfig().with_overrides(NON_DEFAULT)], ids=["default", "custom"])
def test_to_dict_from_dict_round_trip(config):
    raw = config.to_dict()
    assert set(raw) == {"name", *SECTIONS}
    assert RunConfig.from_dict(raw) == config
    # to_dict is plain data (safe to dump), not the dataclasses themselves
    assert all(isinstance(raw[key], dict) for key in SECTIONS)


@pytest.mark.parametrize("config", [RunConfig(), RunConfig().with_overrides(NON_DEFAULT)], ids=["default", "custom"])
def test_dump_config_load_preset_round_trip(tmp_path, config):
    path = tmp_path / "round.yaml"
    path.write_text(dump_config(config, header="made by a test"), encoding="utf-8")
    loaded = load_preset(path)
    assert loaded == config
    assert loaded.train.learning_rate == config.train.learning_rate  # 1e-05 survives YAML exactly
    assert isinstance(loaded.train.learning_rate, float)


def test_dump_config_keeps_unicode_readable():
    text = dump_config(RunConfig(name="한국어 실행"))
    assert "한국어 실행" in text
    assert yaml.safe_load(text)["name"] == "한국어 실행"


def test_save_preset_writes_header_comment_lines(tmp_path):
    config = RunConfig().with_overrides({"name": "saved", "train.max_steps": 5})
    path = save_preset(config, tmp_path / "sub" / "saved.yaml", header="First line\n\nThird line")
    assert path == tmp_path / "sub" / "saved.yaml" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[:3] == ["# First line", "#", "# Third line"]
    assert header_lines(text) == ["# First line", "#", "# Third line"]
    assert load_preset(path) == config
    assert [p.name for p in path.parent.iterdir()] == ["saved.yaml"]  # no temp file left


def test_dump_config_without_header_has_no_comment():
    text = dump_config(RunConfig())
    assert not text.startswith("#")
    assert header_lines(text) == []


# ---------------------------------------------------------------- presets


def test_there_are_presets():
    assert PRESETS, "presets/*.yaml is empty"


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_preset_loads(path):
    config = load_preset(path)
    assert isinstance(config, RunConfig)
    assert config.name, f"{path.name} has no name"


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_preset_header_names_its_cli_command(path):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("#"), f"{path.name} must start with a comment"
    header = "\n".join(header_lines(text))
    assert f"python -m workbench train --preset presets/{path.name}" in header


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_preset_keys_mirror_run_config(path):
    """Every section's keys in the config's order; the method section only the knobs its method reads."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(raw) == {f.name for f in dataclasses.fields(RunConfig)}
    for section, cls in SECTIONS.items():
        assert isinstance(raw[section], dict), section
        keys = [f.name for f in dataclasses.fields(cls)]
        if section == "method":
            keys = [k for k in keys if k == "name" or k in get_method(raw["method"]["name"]).knobs]
        assert list(raw[section]) == keys, section


def test_a_preset_that_lists_every_knob_still_loads(tmp_path):
    full = RunConfig().with_overrides({"method.name": "ia3", "method.rank": 32}).to_dict()  # rank: not ia3's
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(full, sort_keys=False), encoding="utf-8")
    loaded = load_preset(path)
    assert loaded.method.name == "ia3" and loaded.method.rank == 32
    assert "rank:" not in dump_config(loaded) and "targets:" in dump_config(loaded)


# ---------------------------------------------------------------- bad values

NAN = float("nan")

BAD_VALUES = [
    # (dotted field, bad value, expect "between" in the message)
    ("train.learning_rate", -1, True),
    ("train.learning_rate", 0, True),
    ("train.learning_rate", 1.5, True),
    ("train.learning_rate", "abc", False),
    ("train.learning_rate", NAN, False),
    ("train.learning_rate", float("inf"), False),
    ("train.learning_rate", None, False),
    ("train.learning_rate", True, False),
    ("train.epochs", 0, True),
    ("train.max_steps", -1, True),
    ("train.max_steps", 5.0, False),
    ("train.batch_size", 0, True),
    ("train.batch_size", 2.5, False),
    ("train.batch_size", True, False),
    ("train.batch_size", "4", False),
    ("train.grad_accum", 0, True),
    ("train.max_seq_len", 8, True),
    ("train.max_seq_len", 10**9, True),
    ("train.warmup_ratio", 0.6, True),
    ("train.warmup_ratio", -0.1, True),
    ("train.lr_schedule", "sometimes", False),
    ("train.weight_decay", 2, True),
    ("train.eval_every", -5, True),
    ("train.seed", -1, True),
    ("data.val_size", 0.7, False),
    ("data.val_size", 1.5, False),
    ("data.val_size", -1, True),
    ("data.test_size", 0.9, False),
    ("data.test_size", NAN, False),
    ("data.split_seed", 1.5, False),
    ("data.path", 3, False),
    ("model.dtype", "fp8", False),
    ("model.trust_remote_code", "yes please", False),
    ("model.trust_remote_code", 1, False),
    ("method.rank", 0, True),
    ("method.rank", 1000, True),
    ("method.rank", 2.5, False),
    ("method.rank", True, False),
    ("method.alpha", 0, True),
    ("method.alpha", 10_000, True),
    ("method.dropout", 0.9, True),
    ("method.dropout", -0.1, True),
    ("method.dropout", NAN, False),
    ("method.dropout", "abc", False),
    ("method.targets", "mlp", False),
    ("method.name", "lorra", False),
]


def _check_message(message: str, dotted: str, value, expect_between: bool) -> None:
    assert dotted in message, message
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    assert shown in message, message
    if expect_between:
        assert "between" in message, message


@pytest.mark.parametrize(("dotted", "value", "expect_between"), BAD_VALUES,
                         ids=[f"{d}={v!r}" for d, v, _ in BAD_VALUES])
def test_bad_value_is_refused_by_with_overrides(dotted, value, expect_between):
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({dotted: value})
    _check_message(str(info.value), dotted, value, expect_between)


@pytest.mark.parametrize(("dotted", "value", "expect_between"), BAD_VALUES,
                         ids=[f"{d}={v!r}" for d, v, _ in BAD_VALUES])
def test_bad_value_is_refused_by_from_dict(dotted, value, expect_between):
    section, _, key = dotted.partition(".")
    raw = RunConfig().to_dict()
    raw[section][key] = value
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(raw)
    _check_message(str(info.value), dotted, value, expect_between)


def test_range_message_gives_the_range():
    with pytest.raises(ConfigError, match=r"train\.max_seq_len must be between 16 and 131072; got 8"):
        RunConfig().with_overrides({"train.max_seq_len": 8})
    with pytest.raises(ConfigError, match=r"method\.rank must be between 1 and 256; got 1000"):
        RunConfig().with_overrides({"method.rank": 1000})


def test_choices_message_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({"model.dtype": "fp8"})
    assert "choose one of: auto, float32, bfloat16, float16" in str(info.value)
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({"method.targets": "mlp"})
    assert "attention" in str(info.value) and "all-linear" in str(info.value)


def test_unknown_method_lists_valid_methods():
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({"method.name": "lorra"})
    message = str(info.value)
    assert "method.name" in message and "'lorra'" in message
    assert "choose one of: " in message and "lora" in message.split("choose one of: ", 1)[1]


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_model_name_is_refused(value):
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({"model.name_or_path": value})
    message = str(info.value)
    assert "model.name_or_path" in message and "empty" in message and "embedded" in message


@pytest.mark.parametrize("value", [0.0, 0.5, 1, 100])
def test_val_size_boundaries_are_accepted(value):
    assert RunConfig().with_overrides({"data.val_size": value}).data.val_size == value


def test_range_ends_are_accepted():
    config = RunConfig().with_overrides({
        "train.learning_rate": 1.0, "train.max_seq_len": 16, "method.rank": 1,
        "method.dropout": 0.5, "method.alpha": 512, "train.warmup_ratio": 0.0,
    })
    assert (config.train.max_seq_len, config.method.rank, config.method.dropout) == (16, 1, 0.5)
    assert RunConfig().with_overrides({"method.rank": 256}).method.rank == 256


def test_name_must_be_text():
    with pytest.raises(ConfigError, match="name must be text"):
        RunConfig().with_overrides({"name": 5})
    assert RunConfig.from_dict({"name": None}).name == ""


def test_unhashable_method_name_is_a_config_error():
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"method": {"name": ["lora"]}})


# ---------------------------------------------------------------- unknown keys, files


def test_unknown_top_level_key_is_named_with_valid_keys():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"trian": {"max_steps": 3}})
    message = str(info.value)
    assert "trian" in message
    for key in ("name", *SECTIONS):
        assert key in message.split("valid keys:", 1)[1]


def test_unknown_section_key_is_named_with_valid_keys():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"train": {"max_step": 3}})
    message = str(info.value)
    assert "max_step'" in message and "train" in message
    valid = message.split("valid:", 1)[1]
    for f in dataclasses.fields(TrainConfig):
        assert f.name in valid


def test_unknown_dotted_override_is_refused():
    with pytest.raises(ConfigError, match="max_stepz"):
        RunConfig().with_overrides({"train.max_stepz": 1})
    with pytest.raises(ConfigError, match="unknown setting 'bogus.x'"):
        RunConfig().with_overrides({"bogus.x": 1})
    with pytest.raises(ConfigError, match="unknown setting 'train'"):
        RunConfig().with_overrides({"train": 1})


def test_non_mapping_config_and_section_are_refused():
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_dict(["train"])
    with pytest.raises(ConfigError, match="train must be a mapping"):
        RunConfig.from_dict({"train": 5})


def test_partial_config_fills_defaults():
    config = RunConfig.from_dict({"train": {"max_steps": 9}})
    assert config.train.max_steps == 9
    assert config.train.batch_size == TrainConfig().batch_size
    assert config.method == MethodConfig() and config.model == ModelConfig()


def test_load_preset_missing_file_names_it(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as info:
        load_preset(missing)
    assert "nowhere.yaml" in str(info.value) and "not found" in str(info.value)


def test_load_preset_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_preset(tmp_path)


@pytest.mark.parametrize("content", ["train: [1, 2\n", "a: b: c\n", "\tname: tab\n", "key: 'unclosed\n"])
def test_load_preset_invalid_yaml_names_the_file(tmp_path, content):
    path = tmp_path / "broken.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    assert "broken.yaml" in str(info.value) and "YAML" in str(info.value)


def test_load_preset_non_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml"):
        load_preset(path)


def test_load_preset_bad_value_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    assert "bad.yaml" in str(info.value) and "train.batch_size" in str(info.value)


def test_empty_preset_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    assert load_preset(path) == RunConfig()


# ---------------------------------------------------------------- overrides and numbers as text


def test_with_overrides_does_not_mutate_the_original():
    original = RunConfig()
    snapshot = original.to_dict()
    changed = original.with_overrides({"train.max_steps": 5, "method.rank": 4, "name": "x"})
    assert original.to_dict() == snapshot and original == RunConfig()
    assert (changed.train.max_steps, changed.method.rank, changed.name) == (5, 4, "x")
    assert changed is not original and changed.train is not original.train


def test_failed_override_does_not_mutate_the_original():
    original = RunConfig()
    with pytest.raises(ConfigError):
        original.with_overrides({"train.max_steps": 5, "train.batch_size": 0})
    assert original == RunConfig()


def test_numbers_as_text_are_accepted_from_yaml(tmp_path):
    path = tmp_path / "text_numbers.yaml"
    # PyYAML (YAML 1.1) reads 1e-3 and 2e-5 without a dot as strings
    path.write_text("train:\n  learning_rate: 1e-3\n  weight_decay: 1e-2\n  epochs: '2'\n"
                    "method:\n  dropout: 5e-2\ndata:\n  val_size: '0.2'\n", encoding="utf-8")
    assert isinstance(yaml.safe_load(path.read_text())["train"]["learning_rate"], str)
    config = load_preset(path)
    assert config.train.learning_rate == pytest.approx(1e-3) and isinstance(config.train.learning_rate, float)
    assert config.train.weight_decay == pytest.approx(1e-2)
    assert config.train.epochs == 2.0
    assert config.method.dropout == pytest.approx(0.05)
    assert config.data.val_size == pytest.approx(0.2)


def test_numbers_as_text_still_checked():
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be between"):
        RunConfig.from_dict({"train": {"learning_rate": "5"}})
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be a number"):
        RunConfig.from_dict({"train": {"learning_rate": "nan"}})


def test_int_fields_do_not_accept_text():
    with pytest.raises(ConfigError, match=r"train\.max_steps must be a whole number; got '5'"):
        RunConfig.from_dict({"train": {"max_steps": "5"}})


# ---------------------------------------------------------------- help texts


ALL_FIELDS = [(section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("section", "name"), ALL_FIELDS, ids=[f"{s}.{n}" for s, n in ALL_FIELDS])
def test_every_field_has_help(section, name):
    text = field_help(section, name)
    assert isinstance(text, str) and len(text.strip()) > 10


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_every_method_knob_has_help_and_a_config_field(name):
    knob = KNOBS[name]
    assert field_help("method", name) == knob.help and knob.help.strip()
    assert knob.label.strip()
    assert name in {f.name for f in dataclasses.fields(MethodConfig)}
    assert getattr(MethodConfig(), name) == knob.default
    assert knob.check(knob.default) is None


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_has_its_name_summary_and_card_in_both_languages(name):
    """A method's words are in the catalogues (methods.yaml): the Korean card explains it in Korean, with the same
    formula as the English one."""
    spec = METHODS[name]
    for lang in LANGS:
        words = catalogue(lang)
        keys = (spec.label_key, spec.summary_key, spec.card_key, f"{spec.family_key}.name", f"{spec.family_key}.about")
        assert [key for key in keys if not words.get(key, "").strip()] == [], lang
    english, korean = method_card(name, "en"), method_card(name, "ko")
    assert english != korean and sum(map(is_hangul, korean)) > 100
    assert re.search(r"`[^`]+`", english).group(0) == re.search(r"`[^`]+`", korean).group(0)  # the formula


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_every_knob_has_its_name_help_and_choices_in_both_languages(name):
    knob = KNOBS[name]
    keys = [knob.label_key, knob.help_key, *(knob.choice_key(choice) for choice in knob.choices)]
    for lang in LANGS:
        assert [key for key in keys if not catalogue(lang).get(key, "").strip()] == [], lang


def test_field_help_unknown_field_raises():
    with pytest.raises(KeyError):
        field_help("train", "nope")


# ---------------------------------------------------------------- methods registry


@pytest.mark.parametrize("name", sorted(METHODS))
def test_registered_method_is_well_formed(name):
    spec = METHODS[name]
    assert spec.name == name and get_method(name) is spec
    assert spec.label and spec.summary and spec.family in methods.FAMILIES
    # a method sets itself up one way: a peft config builder, or (plain-weight methods) a prepare function
    builders = [fn for fn in (spec.build, getattr(spec, "prepare", None)) if fn is not None]
    assert len(builders) == 1 and callable(builders[0])
    assert set(spec.knobs) <= set(KNOBS)
    assert RunConfig().with_overrides({"method.name": name}).method.name == name


def test_lora_is_registered():
    assert "lora" in METHODS


def test_get_method_unknown_lists_names():
    with pytest.raises(ValueError) as info:
        get_method("nope")
    message = str(info.value)
    assert "'nope'" in message and "choose one of: " in message
    for name in METHODS:
        assert name in message


def _throwaway(name: str, knobs: tuple[str, ...] = ("rank",)) -> MethodSpec:
    return MethodSpec(name=name, family="test", knobs=knobs,
                      build=lambda cfg, model, steps: None, peft_type="TEST")


def test_register_refuses_a_spec_that_does_not_say_how_it_is_served():
    with pytest.raises(ValueError, match="peft_type"):
        register(MethodSpec(name="test-no-type", family="test", knobs=(),
                            build=lambda cfg, model, steps: None))
    with pytest.raises(ValueError, match="serve is one of"):
        register(MethodSpec(name="test-bad-serve", family="test", knobs=(),
                            build=lambda cfg, model, steps: None, peft_type="TEST", serve="sometimes"))
    assert "test-no-type" not in METHODS and "test-bad-serve" not in METHODS


def test_register_adds_and_config_accepts_new_method():
    name = "test-throwaway-method"
    try:
        spec = register(_throwaway(name))
        assert METHODS[name] is spec and get_method(name) is spec
        assert RunConfig().with_overrides({"method.name": name}).method.name == name
        with pytest.raises(ConfigError, match=r"method\.rank must be between"):
            RunConfig().with_overrides({"method.name": name, "method.rank": 0})
    finally:
        METHODS.pop(name, None)
    assert name not in METHODS


def test_register_refuses_duplicate_name():
    before = dict(METHODS)
    with pytest.raises(ValueError, match="registered twice"):
        register(_throwaway("lora"))
    assert METHODS == before and METHODS["lora"] is before["lora"]


def test_register_refuses_unknown_knobs():
    name = "test-bad-knobs"
    try:
        with pytest.raises(ValueError) as info:
            register(_throwaway(name, knobs=("rank", "temperature")))
        assert "temperature" in str(info.value) and "KNOBS" in str(info.value)
        assert name not in METHODS
    finally:
        METHODS.pop(name, None)


RANGED_KNOBS = [name for name, k in KNOBS.items() if k.minimum is not None and k.maximum is not None]
CHOICE_KNOBS = [name for name, k in KNOBS.items() if k.choices]


@pytest.mark.parametrize("name", RANGED_KNOBS)
def test_every_ranged_knob_refuses_values_outside_its_range(name):
    knob = KNOBS[name]
    assert knob.check(knob.minimum) is None and knob.check(knob.maximum) is None
    step = 1 if isinstance(knob.default, int) else 0.01
    for bad in (knob.minimum - step, knob.maximum + step):
        bad = type(knob.default)(bad)
        with pytest.raises(ConfigError) as info:
            RunConfig().with_overrides({f"method.{name}": bad})
        assert f"method.{name}" in str(info.value) and "between" in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.parametrize("name", CHOICE_KNOBS)
def test_every_choice_knob_refuses_other_values(name):
    knob = KNOBS[name]
    for choice in knob.choices:
        assert knob.check(choice) is None
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides({f"method.{name}": "nonsense"})
    message = str(info.value)
    assert f"method.{name}" in message and "'nonsense'" in message and "choose one of: " in message
    assert all(choice in message for choice in knob.choices)


def test_knob_check_messages():
    assert KNOBS["rank"].check(8) is None
    assert "method.rank must be a whole number" in str(KNOBS["rank"].check(8.0))
    assert "method.dropout must be a number" in str(KNOBS["dropout"].check(True))
    assert "choose one of: attention, all-linear" in str(KNOBS["targets"].check("mlp"))


def test_methods_module_exports_registry():
    assert methods.METHODS is METHODS and methods.KNOBS is KNOBS
