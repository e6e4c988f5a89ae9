"""Which language a data file is written in, and what that costs on a tokenizer: enough to warn and to pick
sensible lengths (a Korean syllable is several tokens on the embedded model's byte-level tokenizer)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

HANGUL = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F))  # syllables, jamo, compatibility jamo
KOREAN, ENGLISH, MIXED, OTHER = "Korean", "English", "Korean and English", "other"
MAJORITY = 0.8  # share of letters that makes a text "Korean" or "English" rather than a mix


def is_hangul(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in HANGUL)


def language_of(texts: Iterable[str]) -> str:
    """KOREAN, ENGLISH, MIXED (both a fair share) or OTHER, by the letters of the texts."""
    hangul = latin = other = 0
    for text in texts:
        for char in text:
            if not char.isalpha():
                continue
            if is_hangul(char):
                hangul += 1
            elif char.isascii():
                latin += 1
            else:
                other += 1
    letters = hangul + latin + other
    if not letters:
        return OTHER
    if hangul / letters >= MAJORITY:
        return KOREAN
    if latin / letters >= MAJORITY:
        return ENGLISH
    return MIXED if hangul and latin and (hangul + latin) / letters >= MAJORITY else OTHER


def percentile(values: Sequence[int], q: float) -> int:
    """The q-th percentile (0-100) of whole numbers, nearest-rank; 0 for none."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


MIN_NEW_TOKENS, MAX_NEW_TOKENS, NEW_TOKENS_STEP = 16, 512, 8


def suggested_new_tokens(answer_p95: int) -> int:
    """Max new tokens for answers like the data's own: its 95th-percentile answer length plus a quarter and a few
    tokens, rounded up to a multiple of 8, between 16 and 512."""
    wanted = math.ceil((answer_p95 * 1.25 + 8) / NEW_TOKENS_STEP) * NEW_TOKENS_STEP
    return max(MIN_NEW_TOKENS, min(MAX_NEW_TOKENS, wanted))
