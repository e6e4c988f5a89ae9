"""The catalogues (workbench.i18n) on the page: `T(key)` for what the page shows as built (labels, help, buttons,
tab names, Markdown), which the browser draws in its own language; `lang_of(request)` for what a handler writes
(reports, lines, errors), in the language the browser asks for."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from workbench.i18n import LANGS, catalogue, lang_from_header

I18N = gr.I18n(**{lang: catalogue(lang) for lang in LANGS})


def T(key: str) -> gr.i18n.I18nData:  # noqa: N802 - the usual short name of a translation lookup
    """A static string of the page by its catalogue key, drawn in the browser's language."""
    if key not in catalogue("en"):
        raise KeyError(f"no catalogue entry {key!r} (add it to a file of workbench/i18n/en/ and the same file of ko/)")
    return I18N(key)


def lang_of(request: gr.Request | None) -> str:
    """The language of the browser that sent the event (an API call without one gets English)."""
    headers = getattr(request, "headers", None)
    return lang_from_header(headers.get("accept-language") if headers is not None else None)


def derived(key: str, make: Callable[[str], str]) -> gr.i18n.I18nData:
    """A static string made from catalogue texts (e.g. a field's help with its range appended): `make(lang)` gives it
    in each language, registered under `key` for the page."""
    for lang in LANGS:
        I18N.translations.setdefault(lang, {})[key] = make(lang)
    return I18N(key)
