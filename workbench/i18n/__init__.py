"""Every word a person reads, in Korean and English: one catalogue per language (the folders `en/` and `ko/` beside
this file, one YAML file per part of the app: `data.yaml`, `train.yaml`, …, the same files in both), flat keys such
as `data.sample.label` mapped to text with `{named}` fields; a key lives in one file of its language.

`text(key, lang, **fields)` is the one way to a sentence: the UI passes the browser's language, the CLI its
`--lang` (default: the environment's locale). A key missing from a catalogue is a bug the tests catch (both
catalogues hold the same keys with the same fields); at run time it falls back to English, then to the key itself,
so a missing translation never breaks a page. A leaf: imports nothing of the workbench.
"""

from __future__ import annotations

import functools
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LANGS = ("en", "ko")
DEFAULT_LANG = "en"
LANG_NAMES = {"en": "English", "ko": "한국어"}
_FOLDER = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=len(LANGS))
def catalogue(lang: str) -> dict[str, str]:
    """The catalogue of one language, {key: text}: its folder's files merged (a key in two files is an error)."""
    if lang not in LANGS:
        raise ValueError(f"Unknown language {lang!r}; choose one of: {', '.join(LANGS)}")
    merged: dict[str, str] = {}
    where: dict[str, str] = {}
    for path in sorted((_FOLDER / lang).glob("*.yaml")):
        for key, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            if str(key) in merged:
                raise ValueError(f"catalogue key {key!r} is in both {where[str(key)]} and {path.name} of {lang}/; "
                                 "keep it in one")
            merged[str(key)], where[str(key)] = str(value), path.name
    return merged


def catalogue_files(lang: str) -> list[str]:
    """The file names of one language's catalogue (both languages have the same)."""
    return sorted(path.name for path in (_FOLDER / lang).glob("*.yaml"))


def fields_of(template: str) -> set[str]:
    """The `{named}` fields a text fills in."""
    return {name for _literal, name, _spec, _conv in string.Formatter().parse(template) if name}


def text(key: str, lang: str | None = None, **fields: object) -> str:
    """The sentence `key` in `lang` (default: the environment's), its fields filled in."""
    lang = lang if lang in LANGS else default_lang()
    template = catalogue(lang).get(key) or catalogue(DEFAULT_LANG).get(key) or key
    return template.format(**fields) if fields else template


def normalise(lang: str | None) -> str:
    """A language tag (ko, ko-KR, ko_KR.UTF-8, en-GB, …) as one of LANGS: Korean or else English."""
    return "ko" if (lang or "").strip().lower().startswith("ko") else "en"


def default_lang() -> str:
    """The environment's language (WORKBENCH_LANG, then LC_ALL / LC_MESSAGES / LANG), Korean or English."""
    for name in ("WORKBENCH_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return normalise(value)
    return DEFAULT_LANG


_QUALITY = re.compile(r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def lang_from_header(accept_language: str | None) -> str:
    """The language a browser asks for (its Accept-Language header): the first of LANGS by preference, or English."""
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        match = _QUALITY.match(part)
        if match:
            tag, quality = match.group(1), float(match.group(2) or 1)
            ranked.append((-quality, position, tag))
    for _quality, _position, tag in sorted(ranked):
        if tag.lower().split("-")[0].split("_")[0] in LANGS:
            return normalise(tag)
    return DEFAULT_LANG


@dataclass(frozen=True)
class Message:
    """A sentence of the catalogue not yet put into a language: the core builds these (and raises exceptions with
    one as their argument, e.g. `raise ValueError(Message("train.refused.dpo", method=name))`), and whoever shows
    it picks the language: the UI the browser's (`say(error, lang)`), the CLI the environment's (`str()`).
    A field may itself be a Message (e.g. a field's label), rendered in the same language, or a list of them (e.g.
    a report's first problems), rendered one a line."""

    key: str
    fields: dict[str, object] = field(default_factory=dict)

    def render(self, lang: str | None = None) -> str:
        return text(self.key, lang, **{name: _rendered(value, lang) for name, value in self.fields.items()})

    def __str__(self) -> str:
        return self.render()


def _rendered(value: object, lang: str | None) -> object:
    """A Message field's value in `lang`: a Message rendered, a list of them one a line, anything else as it is."""
    if isinstance(value, Message):
        return value.render(lang)
    if isinstance(value, list) and any(isinstance(item, Message) for item in value):
        return "\n".join(say(item, lang) for item in value)
    return value


def message(key: str, **fields: object) -> Message:
    """`Message(key, fields)`, written the way `text` is called."""
    return Message(key, fields)


def say(what: object, lang: str | None = None) -> str:
    """What to show a person for a Message, an exception raised with a Message, or anything else (its str())."""
    if isinstance(what, BaseException) and len(what.args) == 1 and isinstance(what.args[0], Message):
        what = what.args[0]
    return what.render(lang) if isinstance(what, Message) else str(what)
