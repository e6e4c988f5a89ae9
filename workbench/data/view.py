"""What the Data tab shows about a file: the validation report, the split, previews and token lengths, as plain
data (the CLI's `data check` reads the same file the same way). The report is written in the language asked for
(`describe_data(..., lang=)`; the catalogues' `core.data.*`), the file read once for every language."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from workbench.data.examples import gc_paused, preview_rows, read_examples, read_with_kind, split_examples
from workbench.data.formatting import TokenLengths, length_bounds
from workbench.data.language import KOREAN, MIXED, is_hangul, language_of, percentile, suggested_new_tokens
from workbench.data.samples import resolve_data_path
from workbench.i18n import Message, message, say, text
from workbench.models.loading import cached_tokenizer

PREFERENCE_NOTE = message("core.data.view.preference")


@dataclass
class DataView:
    """What the Data tab shows about a chosen file and split."""

    summary: str  # in the language describe_data was asked for
    good: int
    splits: dict[str, list[dict]] = field(default_factory=dict)
    # Token lengths per split for the chart: every example's, or a random sample of LENGTH_SAMPLE of a bigger split
    # (`sampled` says so); `truncated` is always counted over every example.
    lengths: dict[str, list[int]] = field(default_factory=dict)
    truncated: int = 0
    kind: str = "sft"  # or "preference": prompt/chosen/rejected pairs for DPO
    problems: list[dict] = field(default_factory=list)  # every bad row: its line (or item / row), field, reason
    sampled: bool = False
    # Why the asked validation / test shares cannot be used (they leave no training example), or "". The report and
    # previews then show every good row as training data, and the fix is to set both shares to 0.
    split_problem: str = ""
    language: str = ""  # language_of the examples: Korean, English, Korean and English, other
    longest: int = 0  # tokens of the longest example (of the charted sample, for a big file)
    answer_p95: int = 0  # the 95th percentile of the answers' token lengths (a sample of the training split)
    new_tokens: int = 0  # Max new tokens that fits answers like these (suggested_new_tokens)
    sizes: dict[str, int] = field(default_factory=dict)  # examples per split


LENGTH_SAMPLE = 2_000  # examples per split whose lengths the chart shows: a histogram's shape needs no more
MAX_LEN_LABEL = message("train.max_seq_len.label")  # the Train tab's name of the setting
ANSWER_SAMPLE = 500  # training answers measured for their length and language


@dataclass(frozen=True)
class AnswerStats:
    """The language and answer lengths of a sample of the training examples."""

    language: str
    lengths: list[int]  # answer tokens, without the chat template
    syllables: int  # Hangul syllables in those answers


def _answer_stats(examples: list, tokenizer: Any) -> AnswerStats:
    sample = examples[:ANSWER_SAMPLE]  # the split is shuffled: its first rows are a random sample
    answers = [example.answer for example in sample]
    lengths = [len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]] if answers else []
    language = language_of(turn["content"] for example in sample for turn in example.messages)
    syllables = sum(1 for answer in answers for char in answer if is_hangul(char))
    return AnswerStats(language, lengths, syllables)


_MEASURED_LOCK = threading.Lock()


_MEASURED: dict[tuple, tuple] = {}  # the 8 newest _measured answers, oldest first


def _measured(path: str, _mtime_ns: int, _size: int, val_size: float, test_size: float, seed: int, model: str,
              kind: str, on_progress: Any = None) -> tuple:
    """(report, kind, splits, TokenLengths per split, split problem, AnswerStats) of one version of a file, kept
    for the 8 newest; callers must not change them. on_progress(fraction, message) hears how far a new one is (a
    cached one is at once)."""
    key = (path, _mtime_ns, _size, val_size, test_size, seed, model, kind)
    with _MEASURED_LOCK:
        if key in _MEASURED:
            _MEASURED[key] = _MEASURED.pop(key)  # now the newest
            return _MEASURED[key]

    def stage(low: float, high: float) -> Any:  # a part of the bar for one stage of the work
        return None if on_progress is None else (lambda done, message: on_progress(low + (high - low) * done, message))

    if on_progress is not None:
        on_progress(0.0, message("core.data.progress.reading", name=os.path.basename(path)))
    report, kind = read_with_kind(path, kind=kind, on_progress=stage(0.0, 0.6))
    tokenizer = cached_tokenizer(model)
    examples = report.examples
    with gc_paused():  # splitting and measuring make an object or two per example too, none of them garbage
        # The split of the examples' positions is the split of the examples (split_examples only shuffles and cuts).
        # Byte bounds are taken in file order, where the examples lie in memory in order: 3 times faster than shuffled.
        split_problem = ""
        try:
            order = split_examples(list(range(len(examples))), val_size, test_size, seed)
        except ValueError as exc:  # e.g. 10 % + 10 % of 2 rows: the rows are still reported, the split beside them
            if not examples:
                raise
            # Kept as the Message it was raised with (not the exception, whose traceback would stay in the cache).
            split_problem, order = exc.args[0], split_examples(list(range(len(examples))), 0, 0, seed)
        bounds = length_bounds(examples, tokenizer)
        parts, lengths = {}, {}
        for i, (name, positions) in enumerate(zip(("train", "val", "test"), order)):
            parts[name] = [examples[k] for k in positions]
            part_bounds = None if bounds is None else [bounds[k] for k in positions]
            lengths[name] = TokenLengths(parts[name], tokenizer, part_bounds, LENGTH_SAMPLE,
                                         stage(0.65 + 0.1 * i, 0.75 + 0.1 * i))
    value = (report, kind, parts, lengths, split_problem, _answer_stats(parts["train"], tokenizer))
    with _MEASURED_LOCK:
        _MEASURED[key] = value
        while len(_MEASURED) > 8:
            _MEASURED.pop(next(iter(_MEASURED)))
    return value


def describe_data(path: str, val_size: float, test_size: float, seed: int, model: str = "embedded",
                  max_len: int = 256, preview: int = 8, kind: str = "auto", on_progress: Any = None,
                  lang: str | None = None) -> DataView:
    """Read, validate and split a data file; token lengths per split with the model's chat template.

    kind "auto" takes a file of preference pairs as DPO data and anything else as instructions (SFT), whose
    report then names the preference rows as bad; "sft" or "preference" asks for one kind. on_progress(fraction,
    message), if given, hears how far the check is (a UI's progress bar; the core knows no UI). The summary, the
    split problem and the bad rows' reasons are in `lang` (default: the environment's language).
    """
    resolved = os.fspath(resolve_data_path(path))
    try:
        stat = os.stat(resolved)
    except OSError:
        read_examples(resolved, kind=kind)  # names the problem (no such file, a folder, ...)
        raise
    # Read once per version of the file and split: the Train tab's max length changing only re-counts the cuts.
    report, kind, parts, lengths, split_problem, answers = _measured(
        resolved, stat.st_mtime_ns, stat.st_size, val_size, test_size, seed, model, kind, on_progress)
    truncated = 0
    for i, counts in enumerate(lengths.values()):  # only examples that may be over max_len are counted, once each
        bar = None if on_progress is None else (lambda done, text, i=i: on_progress(0.95 + (i + done) / 60, text))
        truncated += counts.count_over(max_len, bar)
    sampled = any(counts.sampled < len(examples) for counts, examples in zip(lengths.values(), parts.values()))
    charted = {name: counts.sample() for name, counts in lengths.items()}
    longest = max((max(values) for values in charted.values() if values), default=0)
    answer_p95 = percentile(answers.lengths, 95)
    new_tokens = suggested_new_tokens(answer_p95)
    korean = (korean_note(answers, longest, answer_p95, new_tokens, max_len)
              if answers.language in (KOREAN, MIXED) and answers.syllables else None)
    sizes = {name: len(examples) for name, examples in parts.items()}
    summary = "\n".join([report.summary(lang=lang), *_view_lines(kind, seed, sizes, split_problem, truncated, max_len,
                                                                 sampled, korean, lang)])
    problems = [{report.unit: p.line, "field": p.field or "", "reason": p.why.render(lang)} for p in report.problems]
    if on_progress is not None:
        on_progress(1.0, message("core.data.progress.checked"))
    return DataView(summary=summary, good=report.good, truncated=truncated, kind=kind, sampled=sampled,
                    lengths=charted,
                    splits={name: preview_rows(examples, preview) for name, examples in parts.items()},
                    problems=problems, split_problem=say(split_problem, lang) if split_problem else "",
                    language=answers.language, longest=longest, answer_p95=answer_p95, new_tokens=new_tokens,
                    sizes=sizes)


def _view_lines(kind: str, seed: int, sizes: dict[str, int], split_problem: Any, truncated: int, max_len: int,
                sampled: bool, korean: Message | None, lang: str | None) -> list[str]:
    """The lines the Data tab adds below the file's report, in `lang`."""
    lines = ["", PREFERENCE_NOTE.render(lang)] if kind == "preference" else []
    split = ", ".join(text(f"core.data.view.split.{name}", lang, count=count) for name, count in sizes.items())
    lines += ["", text("core.data.view.split", lang, seed=seed, sizes=split)]
    if split_problem:
        lines.append(text("core.data.view.split_problem", lang, problem=say(split_problem, lang)))
    if truncated:
        lines.append(text("core.data.view.truncated", lang, count=truncated, label=MAX_LEN_LABEL.render(lang),
                          max_len=max_len))
    if sampled:
        lines.append(text("core.data.view.sampled", lang, count=f"{LENGTH_SAMPLE:,}"))
    if korean is not None:
        lines += ["", korean.render(lang)]
    return lines


def korean_note(answers: AnswerStats, longest: int, answer_p95: int, new_tokens: int, max_len: int) -> Message:
    """What Korean costs on the model's tokenizer, in this file's own numbers."""
    per_syllable = sum(answers.lengths) / answers.syllables
    fits = (message("core.data.korean.fits", label=MAX_LEN_LABEL, max_len=max_len) if longest <= max_len else
            message("core.data.korean.raise", label=MAX_LEN_LABEL, max_len=max_len, longest=longest))
    return message("core.data.korean", per_syllable=f"{per_syllable:.1f}", longest=longest, answer_p95=answer_p95,
                   new_tokens=new_tokens, fits=fits)
