"""The Korean and English catalogues: the same keys with the same fields, Korean written in Korean, every key the
page asks for present; the language a browser or the environment asks for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import workbench.i18n as i18n
from workbench.data.language import is_hangul
from workbench.i18n import LANGS, catalogue, catalogue_files, default_lang, fields_of, lang_from_header, normalise

UI = Path(__file__).resolve().parent.parent / "workbench" / "ui"
# The same in both catalogues on purpose: the guide's title names both languages; the rest are terms of art.
BILINGUAL = {"app.guide", "train.dpo_beta.label", "sampling.top_p", "arena.column.bt", "arena.column.elo",
             *(f"metric.{name}.name" for name in ("rouge1", "rouge2", "rougeL", "bleu", "chrf"))}


def test_both_catalogues_hold_the_same_keys_with_the_same_fields():
    english, korean = catalogue("en"), catalogue("ko")
    assert sorted(set(english) ^ set(korean)) == []
    assert [key for key in english if fields_of(english[key]) != fields_of(korean[key])] == []
    assert [key for lang in LANGS for key, value in catalogue(lang).items() if not value.strip()] == []


def test_both_languages_keep_their_keys_in_the_same_files_and_a_key_in_two_files_is_refused(tmp_path, monkeypatch):
    assert catalogue_files("en") == catalogue_files("ko") and "data.yaml" in catalogue_files("en")
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / "en").mkdir(exist_ok=True)
        (tmp_path / "en" / name).write_text('tab.data: "Data"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "_FOLDER", tmp_path)
    i18n.catalogue.cache_clear()
    try:
        with pytest.raises(ValueError, match="'tab.data' is in both one.yaml and two.yaml of en/"):
            i18n.catalogue("en")
    finally:
        monkeypatch.undo()
        i18n.catalogue.cache_clear()


def test_korean_is_written_in_korean():
    english, korean = catalogue("en"), catalogue("ko")
    untranslated = [key for key, value in korean.items()
                    if key not in BILINGUAL and (value == english[key] or not any(map(is_hangul, value)))]
    assert untranslated == []


def test_every_key_the_page_asks_for_is_in_the_catalogues():
    asked = {key for path in UI.glob("*.py") for key in re.findall(r'\bT\("([^"]+)"\)', path.read_text("utf-8"))}
    assert asked and sorted(asked - set(catalogue("en"))) == []


def test_text_fills_fields_and_falls_back_to_english_then_the_key():
    assert i18n.text("data.not_used", "ko", error="x") == "사용하지 않음: x"
    assert i18n.text("data.not_used", "en", error="x") == "Not used: x"
    assert i18n.text("no.such.key", "ko") == "no.such.key"
    with pytest.raises(ValueError, match="Unknown language 'fr'"):
        catalogue("fr")


@pytest.mark.parametrize(("header", "lang"), [
    ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"), ("en-US,en;q=0.9", "en"), ("fr-FR, ko;q=0.5, en;q=0.4", "ko"),
    ("fr-FR,de;q=0.9", "en"), ("en;q=0.5, ko;q=0.8", "ko"), ("", "en"), (None, "en"), ("*", "en"), ("garbage;;", "en"),
])
def test_the_language_a_browser_asks_for(header, lang):
    assert lang_from_header(header) == lang


def test_the_environments_language(monkeypatch):
    for name in ("WORKBENCH_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert default_lang() == "en"
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert default_lang() == "ko" and i18n.text("tab.data") == "1 · 데이터"
    monkeypatch.setenv("WORKBENCH_LANG", "en")  # the workbench's own setting wins
    assert default_lang() == "en"
    assert (normalise("KO"), normalise("ko-KR"), normalise("en-GB"), normalise(None)) == ("ko", "ko", "en", "en")


def test_a_message_from_the_core_is_shown_in_the_language_of_whoever_reads_it(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    error = ValueError(i18n.message("data.not_used", error=i18n.message("tab.data")))
    assert str(error) == "Not used: 1 · Data"  # the CLI: the environment's language
    assert i18n.say(error, "ko") == "사용하지 않음: 1 · 데이터"  # the page: the browser's
    with pytest.raises(ValueError, match="Not used"):
        raise error
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    assert str(error) == "사용하지 않음: 1 · 데이터"
    assert i18n.say(RuntimeError("plain"), "ko") == "plain" and i18n.say("as is", "en") == "as is"
