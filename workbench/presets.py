"""Presets: the bundled ones (presets/*.yaml) and the ones a user saves (<home>/presets/*.yaml).

A preset is a whole run configuration in YAML. Bundled presets are read-only; saved presets are written from the
Train tab ("Save as preset") or by `python -m workbench presets --save`, and are listed after the bundled ones.
Saving over an existing saved preset keeps the previous version beside it as NAME.yaml.bak, so nothing is lost.
A preset refused (no such name, a bad name) raises ConfigError with a catalogue Message (`core.preset.*`).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.config import ConfigError, RunConfig, load_preset, save_preset
from workbench.i18n import Message, message

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "presets"
SAVED_PREFIX = "saved:"
SHARED_PREFIX = "class:"  # classroom mode: a preset the teacher shared with the class (read-only for students)
# Letters of any script (Hangul included), digits, space, dot, dash and underscore; no path separators.
NAME_PATTERN = re.compile(r"^[\w][\w .-]{0,63}$")


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    saved: bool  # False: bundled with the workbench
    shared: bool = False  # classroom mode: shared with the class by the teacher

    @property
    def key(self) -> str:
        """What the Train tab's dropdown and the CLI's --preset take: NAME, saved:NAME for a saved one, class:NAME for
        one the teacher shared with the class."""
        if self.shared:
            return f"{SHARED_PREFIX}{self.name}"
        return f"{SAVED_PREFIX}{self.name}" if self.saved else self.name

    @property
    def label(self) -> str:
        return f"{self.name} (class)" if self.shared else f"{self.name} (saved)" if self.saved else self.name


def saved_dir(home: str | Path) -> Path:
    return Path(home) / "presets"


def list_presets(home: str | Path | None = None, shared_home: str | Path | None = None) -> list[Preset]:
    """Bundled presets by name, then those shared with the class (`shared_home`, classroom mode), then the saved
    ones of this home, each by name."""
    bundled = [Preset(p.stem, p, False) for p in sorted(BUNDLED_DIR.glob("*.yaml"))]
    shared = [] if shared_home is None else [Preset(p.stem, p, True, shared=True)
                                             for p in sorted(saved_dir(shared_home).glob("*.yaml"))]
    if home is None:
        return bundled + shared
    return bundled + shared + [Preset(p.stem, p, True) for p in sorted(saved_dir(home).glob("*.yaml"))]


def share_preset(name: str, home: str | Path, shared_home: str | Path) -> Preset:
    """Copy a saved preset of `home` into the class's presets (`shared_home`), where every student can load it."""
    name = (name or "").strip()
    source = saved_dir(home) / f"{name}.yaml"
    if not NAME_PATTERN.match(name) or not source.is_file():
        raise ConfigError(message("core.preset.no_saved", name=repr(name),
                                  names=_names(p for p in list_presets(home) if p.saved)))
    target = saved_dir(shared_home) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return Preset(name, target, True, shared=True)


def check_name(name: str) -> str:
    """A saved preset's name, stripped; refused with the reason when it is empty, too long or has odd characters."""
    name = (name or "").strip()
    if name.lower().endswith(".yaml"):
        name = name[:-5].strip()
    if not name:
        raise ConfigError(message("core.preset.name_empty"))
    if not NAME_PATTERN.match(name) or name.startswith("."):
        raise ConfigError(message("core.preset.name_bad", name=repr(name)))
    if (BUNDLED_DIR / f"{name}.yaml").is_file():
        raise ConfigError(message("core.preset.name_bundled", name=repr(name)))
    return name


def resolve_preset(name_or_path: str, home: str | Path | None = None, allow_paths: bool = True,
                   shared_home: str | Path | None = None) -> Path:
    """The YAML file of a preset given as a path, a bundled name, saved:NAME (a saved name alone works too), or
    class:NAME (one the teacher shared, where `shared_home` is given).

    allow_paths=False (the app, which others may reach) takes names only, never a file elsewhere on the disk.
    """
    text = (name_or_path or "").strip()
    if not text:
        raise ConfigError(message("core.preset.empty"))
    if text.startswith(SHARED_PREFIX) and shared_home is not None:
        name = text[len(SHARED_PREFIX):].strip()
        path = saved_dir(shared_home) / f"{name}.yaml"
        if NAME_PATTERN.match(name) and path.is_file():
            return path
        raise ConfigError(message("core.preset.unknown", name=repr(text),
                                  names=_names(list_presets(home, shared_home))))
    if text.startswith(SAVED_PREFIX):
        name = text[len(SAVED_PREFIX):].strip()
        path = saved_dir(home).joinpath(f"{name}.yaml") if home is not None else None
        if path is None or not NAME_PATTERN.match(name) or not path.is_file():
            raise ConfigError(message("core.preset.no_saved", name=repr(name),
                                      names=_names(p for p in list_presets(home) if p.saved)))
        return path
    path = Path(text).expanduser()
    if allow_paths and path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if NAME_PATTERN.match(text):
        for folder in (BUNDLED_DIR, saved_dir(home) if home is not None else None):
            if folder is not None and (folder / f"{text}.yaml").is_file():
                return folder / f"{text}.yaml"
    key = "core.preset.unknown_or_path" if allow_paths else "core.preset.unknown"
    raise ConfigError(message(key, name=repr(text), names=_names(list_presets(home))))


def read_preset(name_or_path: str, home: str | Path | None = None, allow_paths: bool = True,
                shared_home: str | Path | None = None) -> RunConfig:
    return load_preset(resolve_preset(name_or_path, home, allow_paths, shared_home))


def save_user_preset(config: RunConfig, name: str, home: str | Path) -> tuple[Preset, bool]:
    """Write the config as a saved preset; (the preset, whether an older version was replaced and kept as .bak)."""
    name = check_name(name)
    path = saved_dir(home) / f"{name}.yaml"
    replaced = path.is_file()
    if replaced:  # copied, not moved: the preset is never missing, even if the write below fails
        shutil.copy2(path, path.with_name(f"{name}.yaml.bak"))
    header = f"Saved from the workbench on {time.strftime('%Y-%m-%d %H:%M')}."
    save_preset(config, path, header=header)
    return Preset(name, path, True), replaced


def _names(presets) -> str | Message:
    names = [p.key for p in presets]
    return ", ".join(names) if names else message("core.none")
