"""Calibration of multiple-choice answers: does a model know when it is wrong? Pure functions over plain numbers.

A model's probability for each choice is the softmax of the harness's log-likelihoods of the choices (so the
probabilities of one question sum to 1); its confidence is the probability of the choice it picks.

- expected calibration error (ECE): confidences cut into equal-width bins; the gap between each bin's accuracy and
  its mean confidence, weighted by the bin's share of the questions (Guo et al. 2017, 10 bins by default);
- Brier score: the mean over questions of the squared distance between the probabilities and the one-hot answer,
  summed over the choices (0 = sure and right every time; 2 = sure and wrong every time; always answering 1/4 on four
  choices scores 0.75);
- the reliability diagram's data: per bin, its edges, how many questions fall in it, their mean confidence and
  their accuracy (a calibrated model's points lie on the diagonal);
- macro-F1 over the answer letters: F1 per letter, averaged with equal weight, so a model that always answers "A"
  scores low even where "A" is often right.

A leaf of `workbench.evaluate`: imports nothing of the workbench.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of the reliability diagram: confidences in (lower, upper] (the first bin also holds 0)."""

    lower: float
    upper: float
    count: int
    confidence: float | None  # mean confidence of the questions in the bin; None when it is empty
    accuracy: float | None  # share of them answered right; None when it is empty


def choice_probabilities(logliks: Sequence[float]) -> list[float]:
    """The softmax of one question's choice log-likelihoods: the model's probability of each choice."""
    if not logliks:
        raise ValueError("a question needs at least one choice")
    top = max(logliks)
    weights = [math.exp(value - top) for value in logliks]
    total = sum(weights)
    return [weight / total for weight in weights]


def _check(confidences: Sequence[float], correct: Sequence[bool], bins: int) -> None:
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} answers; give one of each per question")
    if bins < 1:
        raise ValueError(f"bins must be at least 1; got {bins}")
    if any(not 0.0 <= value <= 1.0 for value in confidences):
        raise ValueError("confidences must lie between 0 and 1")


def bin_index(confidence: float, bins: int = BINS) -> int:
    """The bin of a confidence: bin i holds (i/bins, (i+1)/bins]; 0 goes to the first."""
    return min(bins - 1, max(0, math.ceil(confidence * bins) - 1))


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> list[ReliabilityBin]:
    """Every bin of the reliability diagram, empty ones included (count 0), from the lowest confidence up."""
    _check(confidences, correct, bins)
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, right in zip(confidences, correct):
        members[bin_index(confidence, bins)].append((confidence, bool(right)))
    out = []
    for index, inside in enumerate(members):
        count = len(inside)
        out.append(ReliabilityBin(
            lower=index / bins, upper=(index + 1) / bins, count=count,
            confidence=sum(c for c, _ in inside) / count if count else None,
            accuracy=sum(r for _, r in inside) / count if count else None))
    return out


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float:
    """ECE: sum over bins of (bin's share of questions) * |bin's accuracy - bin's mean confidence|."""
    total = len(confidences)
    if not total:
        raise ValueError("there are no answers to measure calibration on")
    return sum(b.count / total * abs(b.accuracy - b.confidence)
               for b in reliability_bins(confidences, correct, bins) if b.count)


def brier_score(probabilities: Sequence[Sequence[float]], answers: Sequence[int]) -> float:
    """Mean over questions of sum over choices of (probability - 1 if it is the answer else 0)^2."""
    if len(probabilities) != len(answers):
        raise ValueError(f"{len(probabilities)} probability lists but {len(answers)} answers")
    if not answers:
        raise ValueError("there are no answers to score")
    total = 0.0
    for probs, answer in zip(probabilities, answers):
        if not 0 <= answer < len(probs):
            raise ValueError(f"answer {answer} is not one of the {len(probs)} choices")
        total += sum((p - (1.0 if k == answer else 0.0)) ** 2 for k, p in enumerate(probs))
    return total / len(answers)


def macro_f1(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """F1 of each answer (letter) that is the gold answer or a prediction, averaged with equal weight."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} answers")
    if not gold:
        raise ValueError("there are no answers to score")
    from sklearn.metrics import f1_score

    labels = sorted(set(predicted) | set(gold))
    return float(f1_score(list(gold), list(predicted), labels=labels, average="macro", zero_division=0))
