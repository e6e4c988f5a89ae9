"""Explanation cards: one per method, shown beside the method picker in the reader's language.

Each card says what the method trains (with its formula), what it costs and when to pick it. The texts are in the
catalogues (`methods.<name>.card` in `workbench/i18n/en/methods.yaml` and `ko/methods.yaml`): the Korean one is
written for Korean learners, not word for word from the English. Every registered method has one (tested).
"""

from __future__ import annotations

from workbench.i18n import text
from workbench.methods.registry import get_method


def method_card(name: str, lang: str | None = None) -> str:
    """The card of a method in `lang` (None: the environment's language), closed by its family's one-line
    description."""
    spec = get_method(name)
    return f"{text(spec.card_key, lang)}\n\n*{text(spec.family_key + '.about', lang)}*"
