"""Multiple-choice benchmarks with calibration: did the fine-tune keep its knowledge, and does it know when it is
wrong? The engine is lm-evaluation-harness (`lm-eval`), so the numbers are comparable with published ones: it builds
the k-shot prompts, scores each choice's log-likelihood and computes acc / acc_norm. This module loads each model
(the base, then each adapter on a fresh copy of it) the way the rest of the workbench does, hands it to the harness's
HF wrapper, and turns the harness's per-question log into rows and scores: accuracy and acc_norm (the harness's),
macro-F1 over the answer letters, per subject, and calibration from the choice probabilities (`calibration`).

    report = score_mc(ModelConfig(), [("my run", "runs/…/adapter")], "knowledge_ko", shots=5)
    report.summary_rows()    # one row per model: accuracy, acc_norm, macro-F1, ECE, Brier, seconds
    report.question_rows()   # one row per question: each model's choice, its probability, right or wrong
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import ModelConfig
from workbench.evaluate.calibration import (
    ReliabilityBin,
    brier_score,
    choice_probabilities,
    expected_calibration_error,
    macro_f1,
    reliability_bins,
)
from workbench.evaluate.mc_tasks import LETTERS, MAX_SHOTS, MCTask, load_task
from workbench.evaluate.prefix_cache import reuse_shared_prefix
from workbench.fsio import slugify, write_atomic
from workbench.i18n import Message, catalogue, message, text
from workbench.models.adapters import has_trained_weights, load_trained
from workbench.models.loading import free_memory, load_model

Progress = Callable[[float, "Message | str"], None]
BASE_LABEL = "base"
FEWSHOT_SEED = 1234  # the harness's default: the same k-shot examples for every model


class MCStopped(Exception):
    """Stop was asked for before any model was fully scored."""


@dataclass(frozen=True)
class MCPick:
    """One model's answer to one question."""

    choice: int  # the choice with the highest log-likelihood (the harness's `acc` pick)
    probability: float  # the model's probability of that choice: its confidence
    correct: bool
    probabilities: tuple[float, ...]  # softmax of the choices' log-likelihoods
    loglikelihoods: tuple[float, ...]

    @property
    def letter(self) -> str:
        return LETTERS[self.choice] if self.choice < len(LETTERS) else str(self.choice)


@dataclass
class MCRow:
    """One question, and each model's answer to it (by model label)."""

    task: str
    doc_id: int
    subject: str
    question: str
    choices: list[str]
    answer: int
    prompt: str  # the k-shot prompt the harness scored the choices after
    picks: dict[str, MCPick] = field(default_factory=dict)


@dataclass
class MCScores:
    """One model's aggregate scores over the set."""

    label: str
    adapter_path: str | None
    count: int
    accuracy: float
    accuracy_stderr: float | None
    acc_norm: float
    macro_f1: float
    ece: float
    brier: float
    confidence: float  # mean confidence: above accuracy = over-confident
    reliability: list[ReliabilityBin]
    by_subject: dict[str, dict[str, float]]  # subject → count, accuracy, acc_norm, macro_f1
    seconds: float


@dataclass
class MCReport:
    task: str
    kind: str  # bundled, file or harness
    shots: int
    limit: int | None
    scores: list[MCScores]
    rows: list[MCRow]
    notes: list[Message] = field(default_factory=list)
    lm_eval_version: str = ""
    seconds: float = 0.0
    created_at: float = field(default_factory=time.time)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per model: its label and headline scores."""
        return [{"model": s.label, "questions": s.count, "accuracy": round(s.accuracy, 4),
                 "acc_norm": round(s.acc_norm, 4), "macro_f1": round(s.macro_f1, 4), "ece": round(s.ece, 4),
                 "brier": round(s.brier, 4), "confidence": round(s.confidence, 4), "seconds": round(s.seconds, 1)}
                for s in self.scores]

    def question_rows(self) -> list[dict[str, Any]]:
        """One row per question: subject, question, the right letter, then each model's letter, probability and
        whether it is right."""
        out = []
        for number, row in enumerate(self.rows, 1):
            line: dict[str, Any] = {"#": number, "subject": row.subject, "question": row.question,
                                    "answer": LETTERS[row.answer] if row.answer < len(LETTERS) else row.answer}
            for label, pick in row.picks.items():
                line[f"{label} · choice"] = pick.letter
                line[f"{label} · p"] = round(pick.probability, 3)
                line[f"{label} · correct"] = pick.correct
            out.append(line)
        return out

    def reliability(self) -> dict[str, list[ReliabilityBin]]:
        """The reliability-diagram data of each model, by label (what make_reliability_figure draws)."""
        return {s.label: s.reliability for s in self.scores}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); the notes as catalogue keys and fields, to be said in any language later."""
        raw = asdict(self)
        raw["notes"] = [{"key": note.key, "fields": _plain(note.fields)} for note in self.notes]
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MCReport:
        scores = [MCScores(**{**s, "reliability": [ReliabilityBin(**b) for b in s["reliability"]]})
                  for s in raw["scores"]]
        rows = [MCRow(**{**r, "picks": {label: MCPick(**{**p, "probabilities": tuple(p["probabilities"]),
                                                           "loglikelihoods": tuple(p["loglikelihoods"])})
                                        for label, p in r["picks"].items()}}) for r in raw["rows"]]
        notes = [Message(n["key"], n["fields"]) for n in raw.get("notes", [])]
        return cls(**{**raw, "scores": scores, "rows": rows, "notes": notes})


def subject_words(subject: str, lang: str | None = None) -> str:
    """A subject as a reader of `lang` says it: the bundled sets' subjects are in the catalogues (mc.subject.*);
    any other (a user's file, a harness task) is shown as it is."""
    key = f"mc.subject.{subject}"
    return text(key, lang) if key in catalogue("en") else subject


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.render()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _check_request(adapters: Sequence[tuple[str, str]], shots: int, limit: int | None,
                   base_label: str | None) -> list[tuple[str, str | None]]:
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= MAX_SHOTS:
        raise ValueError(message("mc.shots.range", value=repr(shots), most=MAX_SHOTS))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(message("mc.limit.range", value=repr(limit)))
    targets: list[tuple[str, str | None]] = ([(base_label, None)] if base_label else []) + \
        [(str(label), str(path)) for label, path in adapters]
    labels = [label for label, _ in targets]
    if not targets or len(set(labels)) != len(labels):
        raise ValueError(message("mc.models.labels", labels=", ".join(labels) or "-"))
    for label, path in targets:
        if path is not None and not has_trained_weights(path):
            raise ValueError(message("mc.adapter.missing", label=label, path=path))
    return targets


def score_mc(model_config: ModelConfig, adapters: Sequence[tuple[str, str]], task: str | Path, shots: int = 0,
             limit: int | None = None, on_progress: Progress | None = None,
             should_stop: Callable[[], bool] | None = None, base_label: str | None = BASE_LABEL,
             batch_size: int = 8, style: str = "letters") -> MCReport:
    """Score the base model (unless base_label is None) and each (label, adapter folder) on a multiple-choice set:
    a bundled set's name (`bundled_sets()`), a file (asked in `style`: "letters" or "cloze"), or a harness task name;
    k-shot from 0 to 5; `limit` = the first N questions of each task. should_stop is asked between batches: once it
    says yes, the models scored in full so far make the report (a note names the others), or MCStopped is raised
    when there are none."""
    import lm_eval

    started = time.perf_counter()
    targets = _check_request(adapters, shots, limit, base_label)
    progress = on_progress or (lambda fraction, what: None)
    progress(0.0, message("mc.progress.loading", task=str(task)))
    mc_task = load_task(task, style)
    if mc_task.dev_size is not None and shots > mc_task.dev_size:
        raise ValueError(message("mc.shots.too_many", shots=shots, dev=mc_task.dev_size, task=str(task)))
    _quiet_harness()
    rows: dict[tuple[str, int], MCRow] = {}
    scores: list[MCScores] = []
    notes = list(mc_task.notes)
    for index, (label, path) in enumerate(targets):
        def report(done: int, total: int, index: int = index, label: str = label) -> None:
            if done < total and should_stop and should_stop():
                raise MCStopped(message("mc.stopped", label=label, done=done, total=total))
            progress((index + done / max(total, 1)) / len(targets),
                     message("mc.progress.model", label=label, done=done, total=total))

        try:
            scores.append(_score_target(model_config, label, path, mc_task, shots, limit, batch_size, rows, report))
        except MCStopped:
            if not scores:
                raise
            notes.append(message("mc.note.stopped", left=", ".join(label for label, _ in targets[index:])))
            break
    progress(1.0, message("mc.progress.done"))
    return MCReport(task=str(task), kind=mc_task.kind, shots=shots, limit=limit, scores=scores,
                    rows=list(rows.values()), notes=notes, lm_eval_version=lm_eval.__version__,
                    seconds=time.perf_counter() - started)


def _quiet_harness() -> None:
    """The harness logs each step at INFO and warns that it was handed a loaded model; keep its errors only, unless
    the application set its level itself."""
    harness_log = logging.getLogger("lm_eval")
    if harness_log.level == logging.NOTSET:
        harness_log.setLevel(logging.ERROR)


def _score_target(model_config: ModelConfig, label: str, path: str | None, mc_task: MCTask, shots: int,
                  limit: int | None, batch_size: int, rows: dict[tuple[str, int], MCRow],
                  report: Callable[[int, int], None]) -> MCScores:
    """One model through the harness: its per-question log merged into `rows`, its scores returned."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    loaded = load_model(model_config)
    harness_model = HFLM(pretrained=load_trained(loaded.model, path) if path else loaded.model,
                         tokenizer=loaded.tokenizer, batch_size=batch_size)
    _drive(harness_model, batch_size, report)
    try:
        # No global seeds (the app's other threads keep theirs); the k-shot examples are seeded per task.
        out = simple_evaluate(model=harness_model, tasks=list(mc_task.tasks.values()), num_fewshot=shots,
                              limit=limit, log_samples=True, bootstrap_iters=0, random_seed=None,
                              numpy_random_seed=None, torch_random_seed=None, fewshot_random_seed=FEWSHOT_SEED,
                              task_manager=TaskManager(include_defaults=False))
    finally:
        del harness_model, loaded
        free_memory()
    picks = []
    for task_name, samples in out["samples"].items():
        task = mc_task.tasks[task_name]
        for sample in samples:
            key = (task_name, sample["doc_id"])
            row = rows[key] if key in rows else rows.setdefault(key, _row(task_name, task, sample))
            pick = _pick(sample, row.answer)
            row.picks[label] = pick
            picks.append((row, pick, float(sample["acc_norm"]) if "acc_norm" in sample else float(pick.correct)))
    return _scores(label, path, picks, time.perf_counter() - started)


def _drive(harness_model: Any, batch_size: int, report: Callable[[int, int], None]) -> None:
    """Have the harness score whole questions a batch at a time (as many as make `batch_size` model rows: the
    harness runs the choices of a question that share their input once, so lettered choices take one row and cloze
    choices one each), reporting how far it is between batches; a batch then holds all the rows of its questions,
    and `prefix_cache` runs the k-shot prefix once for all and each question once for its choices."""
    score_all = harness_model.loglikelihood
    expect = reuse_shared_prefix(harness_model)

    def loglikelihood(requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        inputs = []  # the token row the harness runs for each request (its own encoding, as it truncates it)
        for request in requests:
            context, continuation = harness_model._encode_pair(*request.args)
            inputs.append(tuple((context + continuation)[-(harness_model.max_length + 1):][:-1]))
        expect([r.args[0] for r in requests], inputs)
        by_question: dict[tuple[str, int], list[int]] = {}
        for position, request in enumerate(requests):
            by_question.setdefault((request.task_name, request.doc_id), []).append(position)
        # Longest prompts first, as the harness orders them: a batch of like lengths pads little.
        questions = sorted(by_question.values(), key=lambda at: -max(len(requests[i].args[0]) for i in at))
        batches: list[list[list[int]]] = [[]]
        rows = 0
        for at in questions:
            need = len({inputs[i] for i in at})
            if batches[-1] and rows + need > batch_size:
                batches.append([])
                rows = 0
            batches[-1].append(at)
            rows += need
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        done = 0
        for batch in batches:
            report(done, len(questions))
            positions = [i for at in batch for i in at]
            for i, result in zip(positions, score_all([requests[i] for i in positions], disable_tqdm=True)):
                results[i] = result
            done += len(batch)
        report(len(questions), len(questions))
        return results

    harness_model.loglikelihood = loglikelihood  # on this instance only


def _gold(target: Any, choices: list[str]) -> int:
    """The right choice's index from the harness's target (an index, a choice's text, or a list of them)."""
    if isinstance(target, list):
        target = target[0]
    if isinstance(target, str):
        return choices.index(target) if target in choices else int(target)
    return int(target)


def _row(task_name: str, task: Any, sample: dict[str, Any]) -> MCRow:
    doc = sample["doc"]
    harness_choices = [str(c) for c in task.doc_to_choice(doc)]
    texts = doc.get("choices")
    choices = [str(c) for c in texts] if isinstance(texts, list) and len(texts) == len(harness_choices) \
        else harness_choices
    question = doc["question"] if isinstance(doc.get("question"), str) else str(task.doc_to_text(doc))
    return MCRow(task=task_name, doc_id=int(sample["doc_id"]), subject=str(doc.get("subject") or task_name),
                 question=question, choices=choices, answer=_gold(sample["target"], harness_choices),
                 prompt=sample["arguments"][0][0])


def _pick(sample: dict[str, Any], answer: int) -> MCPick:
    logliks = [float(response[0]) for response in sample["filtered_resps"]]
    probabilities = choice_probabilities(logliks)
    choice = max(range(len(logliks)), key=logliks.__getitem__)
    return MCPick(choice=choice, probability=probabilities[choice], correct=bool(sample["acc"]),
                  probabilities=tuple(probabilities), loglikelihoods=tuple(logliks))


def _scores(label: str, path: str | None, picks: list[tuple[MCRow, MCPick, float]], seconds: float) -> MCScores:
    from lm_eval.api.metrics import mean_stderr

    correct = [float(pick.correct) for _, pick, _ in picks]
    confidences = [pick.probability for _, pick, _ in picks]
    subjects: dict[str, list[tuple[MCRow, MCPick, float]]] = {}
    for item in picks:
        subjects.setdefault(item[0].subject, []).append(item)
    return MCScores(
        label=label, adapter_path=path, count=len(picks), accuracy=sum(correct) / len(picks),
        accuracy_stderr=mean_stderr(correct) if len(picks) > 1 else None,
        acc_norm=sum(norm for _, _, norm in picks) / len(picks),
        macro_f1=macro_f1([pick.choice for _, pick, _ in picks], [row.answer for row, _, _ in picks]),
        ece=expected_calibration_error(confidences, [pick.correct for _, pick, _ in picks]),
        brier=brier_score([pick.probabilities for _, pick, _ in picks], [row.answer for row, _, _ in picks]),
        confidence=sum(confidences) / len(picks),
        reliability=reliability_bins(confidences, [pick.correct for _, pick, _ in picks]),
        by_subject={subject: _subject_scores(items) for subject, items in subjects.items()}, seconds=seconds)


def _subject_scores(items: list[tuple[MCRow, MCPick, float]]) -> dict[str, float]:
    return {"count": len(items), "accuracy": sum(pick.correct for _, pick, _ in items) / len(items),
            "acc_norm": sum(norm for _, _, norm in items) / len(items),
            "macro_f1": macro_f1([pick.choice for _, pick, _ in items], [row.answer for row, _, _ in items])}


# ------------------------------------------------------------ a run's multiple choice, after training

MC_SETS = {"knowledge_en": ("knowledge_en",), "knowledge_ko": ("knowledge_ko",),
           "both": ("knowledge_en", "knowledge_ko")}  # train.eval_mc's choices besides "off"
SUMMARY_KEYS = ("count", "accuracy", "acc_norm", "macro_f1", "ece", "brier", "confidence")


def _summary(score: MCScores) -> dict[str, float]:
    return {key: round(float(getattr(score, key)), 6) for key in SUMMARY_KEYS}


def score_run_mc(store: Any, run_id: str, sets: Sequence[str], shots: int, on_progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Score a run's adapter (and the base, once per model, set, shot count and limit: cached under the store) on
    bundled multiple-choice sets; saved beside the run as mc.json ({set: {shots, base, adapter}}: the Runs tab's MC
    columns) and mc-SET.json (the whole report). Returns the summary."""
    import lm_eval

    config = store.load_config(run_id)
    model = ModelConfig(name_or_path=config.model.name_or_path, dtype=config.model.dtype,
                        trust_remote_code=config.model.trust_remote_code)
    summary = dict(store.read_json(run_id, "mc.json") or {})
    for index, name in enumerate(sets):
        cache = (Path(store.root) / "base-mc" /
                 f"{slugify(model.name_or_path, 60)}-{name}-{shots}-{limit or 'all'}-{lm_eval.__version__}.json")
        base = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else None

        def progress(fraction: float, what: Message | str, index: int = index) -> None:
            if on_progress:
                on_progress((index + fraction) / len(sets), what)

        report = score_mc(model, [("adapter", str(store.adapter_dir(run_id)))], name, shots=shots, limit=limit,
                          on_progress=progress, should_stop=should_stop,
                          base_label=None if base is not None else BASE_LABEL)
        scores = {s.label: _summary(s) for s in report.scores}
        if base is None:
            base = scores[BASE_LABEL]
            write_atomic(cache, json.dumps(base))
        summary[name] = {"shots": shots, "base": base, "adapter": scores["adapter"]}
        store.write_json(run_id, f"mc-{name}.json", report.to_dict())
        store.write_json(run_id, "mc.json", summary)
    return summary


def mc_change(summary: dict[str, Any]) -> dict[str, float]:
    """A run's MC results in two numbers: the adapter's accuracy and ECE averaged over the sets scored, and the
    accuracy change against the base in points (negative: knowledge forgotten)."""
    sets = [entry for entry in summary.values() if isinstance(entry, dict) and "adapter" in entry]
    if not sets:
        return {}
    mean = lambda key, who: sum(entry[who][key] for entry in sets) / len(sets)  # noqa: E731
    return {"mc_accuracy": round(mean("accuracy", "adapter"), 4), "mc_ece": round(mean("ece", "adapter"), 4),
            "mc_change": round((mean("accuracy", "adapter") - mean("accuracy", "base")) * 100, 1)}
