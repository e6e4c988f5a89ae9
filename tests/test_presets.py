"""Presets, bundled and saved: listing, resolving names, saving under a name, and the headless `presets` command."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.config import ConfigError, RunConfig, load_preset
from workbench.presets import BUNDLED_DIR, list_presets, read_preset, resolve_preset, save_user_preset
from workbench.runs.store import RunStore


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_bundled_presets_are_listed_first_then_saved_ones(home):
    bundled = list_presets(home)
    assert [p.name for p in bundled] == sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))
    assert "classroom-lora" in [p.key for p in bundled] and not any(p.saved for p in bundled)
    config = read_preset("lora").with_overrides({"method.rank": 32, "name": "r32"})
    preset, replaced = save_user_preset(config, " 랭크 32 실험 ", home)
    assert (preset.name, preset.key, preset.label, replaced) == ("랭크 32 실험", "saved:랭크 32 실험",
                                                                 "랭크 32 실험 (saved)", False)
    listed = list_presets(home)
    assert listed[:-1] == bundled and listed[-1] == preset
    assert preset.path == home / "presets" / "랭크 32 실험.yaml"
    assert "Saved from the workbench" in preset.path.read_text(encoding="utf-8").splitlines()[0]
    assert load_preset(preset.path) == config


def test_a_preset_is_found_by_path_bundled_name_or_saved_name(home, tmp_path):
    save_user_preset(RunConfig(), "mine", home)
    assert resolve_preset("classroom-lora", home) == BUNDLED_DIR / "classroom-lora.yaml"
    assert resolve_preset("saved:mine", home) == home / "presets" / "mine.yaml"
    assert resolve_preset("mine", home) == home / "presets" / "mine.yaml"  # a saved name alone works too
    assert resolve_preset(str(BUNDLED_DIR / "dora.yaml"), home) == BUNDLED_DIR / "dora.yaml"
    with pytest.raises(ConfigError, match=r"No preset 'nope'.*classroom-lora.*saved:mine"):
        resolve_preset("nope", home)
    with pytest.raises(ConfigError, match=r"No saved preset named 'lora'; saved presets: saved:mine"):
        resolve_preset("saved:lora", home)  # bundled, not saved
    with pytest.raises(ConfigError, match="No saved preset named '../mine'"):
        resolve_preset("saved:../mine", home)
    with pytest.raises(ConfigError, match="Preset: empty"):
        resolve_preset("  ", home)
    outside = tmp_path / "elsewhere.yaml"  # the app takes names only, never a file elsewhere on the disk
    outside.write_text("name: x\n", encoding="utf-8")
    assert resolve_preset(str(outside), home) == outside
    with pytest.raises(ConfigError, match="No preset .*elsewhere.yaml': choose one of"):
        resolve_preset(str(outside), home, allow_paths=False)


def test_saving_again_keeps_the_previous_version_and_bad_names_are_refused(home):
    first, _ = save_user_preset(RunConfig().with_overrides({"train.max_steps": 5}), "again", home)
    before = first.path.read_text(encoding="utf-8")
    second, replaced = save_user_preset(RunConfig().with_overrides({"train.max_steps": 9}), "again.yaml", home)
    assert replaced and second.path == first.path
    assert first.path.with_name("again.yaml.bak").read_text(encoding="utf-8") == before
    assert read_preset("saved:again", home).train.max_steps == 9
    for name, reason in [("", "empty"), ("a/b", "no slashes"), (".hidden", "starting with a letter"),
                         ("x" * 65, "at most 64"), ("qlora", "bundled preset")]:
        with pytest.raises(ConfigError, match=reason):
            save_user_preset(RunConfig(), name, home)
    assert sorted(p.name for p in (home / "presets").iterdir()) == ["again.yaml", "again.yaml.bak"]


def test_the_presets_command_saves_a_runs_settings_and_train_takes_the_saved_name(home, capsys):
    store = RunStore(home / "runs")
    record = store.create_run(read_preset("classroom-lora").with_overrides({"method.rank": 6, "name": "six"}))
    assert main(["presets", "--save", "rank six", "--from-run", record.run_id]) == 0
    assert "saved preset saved:rank six" in capsys.readouterr().out
    assert read_preset("saved:rank six", home).method.rank == 6
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("saved:rank six") and "method=lora" in lines[-1]
    assert any(line.startswith("classroom-lora ") for line in lines)
    (home / "presets" / "broken.yaml").write_text("method: [", encoding="utf-8")  # edited by hand, badly
    assert main(["presets"]) == 0
    assert "saved:broken" in capsys.readouterr().out  # named with its error; the others still listed
    assert main(["presets", "--save", "x"]) == 2
    assert "--from-run RUN_ID or --from PRESET" in capsys.readouterr().err
    assert main(["train", "--preset", "saved:nothing-here", "--max-steps", "1"]) == 2
    assert "No saved preset named 'nothing-here'" in capsys.readouterr().err
    assert len(store.list_runs()) == 1  # the refused train registered no run
