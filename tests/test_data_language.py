"""What the app says about a file's language and lengths: the Korean note, the line above Start, and the max new
tokens Compare, Evaluate and the Arena take from the data (real samples, the real tokenizer)."""

from __future__ import annotations

import pytest

from workbench.config import field_label, on_screen
from workbench.data.language import ENGLISH, KOREAN, MIXED, OTHER, language_of, percentile, suggested_new_tokens
from workbench.data.view import describe_data


@pytest.mark.parametrize(("texts", "expected"), [
    (["고객 리뷰를 긍정 또는 부정으로 분류하세요.", "긍정"], KOREAN),
    (["Triage this customer message.", "billing"], ENGLISH),
    (["LoRA는 작은 행렬 두 개만 학습합니다: low-rank adaptation of large models"], MIXED),
    (["Привет, как дела?"], OTHER), (["12345 !?"], OTHER), ([], OTHER),
])
def test_language_of_reads_the_letters(texts, expected):
    assert language_of(texts) == expected


def test_percentile_and_suggested_new_tokens():
    assert percentile([], 95) == 0
    assert percentile(list(range(1, 101)), 95) == 95 and percentile([7], 95) == 7
    assert suggested_new_tokens(0) == 16  # never below 16
    assert suggested_new_tokens(72) == 104  # 72 × 1.25 + 8 = 98, up to a multiple of 8
    assert suggested_new_tokens(10_000) == 512  # the sliders' top
    assert all(suggested_new_tokens(n) % 8 == 0 and suggested_new_tokens(n) >= n for n in range(0, 400, 7))


def test_korean_data_gets_its_token_cost_explained_and_longer_answers():
    korean = describe_data("sample:ko_review_sentiment", 0.1, 0.1, 0)
    english = describe_data("sample:en_ticket_triage", 0.1, 0.1, 0)
    assert (korean.language, english.language) == (KOREAN, ENGLISH)
    assert "Korean text: this tokenizer spends about" in korean.summary
    assert "Korean text" not in english.summary
    # Korean answers cost several times the tokens: the suggestion follows (and covers 95 % of the answers).
    assert korean.answer_p95 > 2 * english.answer_p95
    assert korean.new_tokens >= korean.answer_p95 and english.new_tokens >= english.answer_p95
    assert korean.new_tokens > english.new_tokens
    assert korean.longest == max(max(values) for values in korean.lengths.values())
    assert f"up to {korean.new_tokens} new tokens" in korean.summary
    # The line above Start, in both languages.
    from workbench.ui.data_tab import headline

    assert headline(korean, "ko_review_sentiment", 256, "en") == (
        f"Will train on **ko_review_sentiment** · instructions · 128 train / 16 validation / 16 test rows · Korean · "
        f"longest example {korean.longest} tokens.")
    assert headline(korean, "ko_review_sentiment", 256, "ko") == (
        f"학습 데이터: **ko_review_sentiment** · 지시문 · 학습 128 / 검증 16 / 테스트 16행 · 한국어 · 가장 긴 예제 "
        f"{korean.longest}토큰.")
    assert "are longer than" in headline(korean, "x", 64, "en") and "프롬프트 앞부분이 잘립니다" in headline(
        korean, "x", 64, "ko")
    # A max length below the longest example: the note says how far to raise it, in the form's words.
    short = describe_data("sample:ko_review_sentiment", 0.1, 0.1, 0, max_len=64)
    assert f"raise {field_label('train', 'max_seq_len')} on the Train tab from 64 to {korean.longest}" in short.summary


def test_messages_on_screen_name_fields_by_their_labels():
    assert on_screen("data.val_size must be a share between 0 and 0.5; got 0.7") == \
        "“Validation share” must be a share between 0 and 0.5; got 0.7"
    assert on_screen("train.general_every must be between 0 and 1e+06") == \
        "“Probe every N steps” must be between 0 and 1e+06"
    assert on_screen("method.rank: too big") == "“Rank r”: too big"
    # Not field keys: left alone.
    assert on_screen("train.nothing; sample:data.x; see data.txt") == "train.nothing; sample:data.x; see data.txt"
