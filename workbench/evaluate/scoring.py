"""Scoring base and adapted models on a data set, and the forgetting probe.

`evaluate(engine, targets, examples)` answers every example greedily with each model (the base and any adapters,
all on one base in memory), scores the answers against the references with `workbench.evaluate.metrics`, and measures
perplexity on the reference answers. The Evaluate tab, the `eval` CLI command and the automatic scoring of a
run's test split after training all call it. `probe_forgetting` runs it on the general reference set.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.config import ConfigError, ModelConfig
from workbench.data.examples import prompt_text, read_examples, split_examples
from workbench.data.formatting import encode_examples
from workbench.data.general import GENERAL_SPEC, probe_examples
from workbench.data.samples import resolve_data_path
from workbench.evaluate.loss import evaluate_loss
from workbench.evaluate.metrics import SIMILARITY_KIND, Embedder, chance_levels, score_texts
from workbench.fsio import write_atomic
from workbench.generate.engine import ChatEngine
from workbench.i18n import Message, message

Progress = Callable[[float, str], None]
PER_EXAMPLE_SHOWN = ("rougeL", "token_f1", "chrf", "similarity")  # per-example scores in the examples table
SCORES_VERSION = 1  # bump when metrics change, so cached base scores are recomputed


class EvaluationStopped(Exception):
    """Stop was pressed before any model was fully scored."""


@dataclass(frozen=True)
class EvalTarget:
    """One model to score: a label, and the adapter folder (None = the base model)."""

    label: str
    adapter_path: str | None = None
    key: str | None = None  # name of the adapter in the chat engine (the run id for runs)

    @property
    def adapter(self) -> str | None:
        return None if self.adapter_path is None else (self.key or self.label)


@dataclass
class EvalOptions:
    max_new_tokens: int = 64
    batch_size: int = 8
    perplexity: bool = True
    similarity: bool = True

    def __post_init__(self) -> None:
        for name, lo, hi in (("max_new_tokens", 1, 2048), ("batch_size", 1, 256)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"eval {name} must be a whole number between {lo} and {hi}; got {value!r}")


@dataclass
class ModelResult:
    label: str
    adapter_path: str | None
    metrics: dict[str, float]
    outputs: list[str]
    per_example: list[dict[str, float]]
    seconds: float
    new_tokens: int


@dataclass
class EvalReport:
    data: str
    prompts: list[str]
    references: list[str]
    models: list[ModelResult]
    similarity_kind: str = ""
    notes: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per model: label, then every aggregate metric."""
        return [{"model": m.label, **m.metrics, "seconds": round(m.seconds, 1), "new_tokens": m.new_tokens}
                for m in self.models]

    def example_rows(self) -> list[dict[str, Any]]:
        """One row per example: prompt, reference, then each model's answer and its per-example scores."""
        rows = []
        for i, (prompt, reference) in enumerate(zip(self.prompts, self.references, strict=True)):
            row: dict[str, Any] = {"#": i + 1, "prompt": prompt, "reference": reference}
            for model in self.models:
                row[model.label] = model.outputs[i]
                for name in PER_EXAMPLE_SHOWN:
                    if name in model.per_example[i]:
                        row[f"{model.label} · {name}"] = round(model.per_example[i][name], 4)
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvalReport:
        models = [ModelResult(**m) for m in raw.get("models", [])]
        return cls(**{**raw, "models": models})


def load_examples(path: str, split: str = "all", val_size: float = 0.1, test_size: float = 0.1, seed: int = 0,
                  limit: int = 0) -> list[Any]:
    """Examples to score: a whole file ('all') or one split of it made exactly as training makes it."""
    if split not in ("all", "train", "val", "test"):
        raise ValueError(f"split {split!r} is unknown; choose one of: all, train, val, test")
    # "auto": preference files (DPO runs) are scored too, with the chosen answer as the reference
    examples = read_examples(resolve_data_path(path), kind="auto").examples
    if split != "all":
        examples = dict(zip(("train", "val", "test"), split_examples(examples, val_size, test_size, seed)))[split]
    if not examples:
        raise ValueError(f"the {split} split of {path} has no examples; choose another split or a larger file")
    return examples[:limit] if limit > 0 else examples


def run_split(store: Any, run_id: str, split: str = "test") -> list[Any]:
    """A stored run's split of its own data (the same seed and sizes it trained with)."""
    config = store.load_config(run_id)
    data = config.data
    return load_examples(data.path, split, data.val_size, data.test_size, data.split_seed)


def perplexity(engine: ChatEngine, adapter: str | None, examples: Sequence[Any], batch_size: int = 8) -> float:
    """exp(mean cross-entropy) over the reference answers' tokens, prompts excluded."""
    tokenizer, device = engine.loaded.tokenizer, engine.loaded.device
    encoded, _ = encode_examples(examples, tokenizer, 4096)
    with engine.model_for(adapter) as model:
        loss = evaluate_loss(model, encoded, batch_size, tokenizer.pad_token_id, device)
    return math.exp(min(loss, 50.0))


def score_model(engine: ChatEngine, target: EvalTarget, examples: Sequence[Any], options: EvalOptions,
                embedder: Any = None, on_batch: Callable[[int, int], None] | None = None) -> ModelResult:
    """Answer every example with one model and score it; on_batch(answered, total) follows the answering."""
    if target.adapter_path is not None:
        engine.ensure_adapter(target.adapter, target.adapter_path)
    started = time.perf_counter()
    histories = [list(example.prompt_messages) for example in examples]
    answers = engine.generate_batch(target.adapter, histories, options.max_new_tokens, options.batch_size, on_batch)
    outputs = [answer.text.strip() for answer in answers]
    metrics, per_example = score_texts(outputs, [ex.answer for ex in examples], embedder=embedder)
    if options.perplexity:
        metrics["perplexity"] = perplexity(engine, target.adapter, examples, options.batch_size)
    return ModelResult(label=target.label, adapter_path=target.adapter_path, metrics=metrics, outputs=outputs,
                       per_example=per_example, seconds=time.perf_counter() - started,
                       new_tokens=sum(answer.new_tokens for answer in answers))


@lru_cache(maxsize=1)
def shared_embedder() -> Any:
    """One embedding model per process: it is loaded on first use and kept, like the chat engines' base models."""
    return Embedder()


def evaluate(engine: ChatEngine, targets: Sequence[EvalTarget], examples: Sequence[Any], data: str = "",
             options: EvalOptions | None = None, on_progress: Progress | None = None,
             cached: dict[str, ModelResult] | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvalReport:
    """Score each target on the examples; `cached` results (by label) are reused instead of recomputed.

    should_stop is asked before each batch of answers: once it says yes, the models scored in full so far make
    the report (with a note naming the others), or EvaluationStopped is raised when there are none.
    """
    options = options or EvalOptions()
    labels = [t.label for t in targets]
    if not targets or len(set(labels)) != len(labels):
        raise ValueError(f"choose at least one model, each with its own label; got {labels}")
    if not examples:
        raise ValueError("there are no examples to score; choose a file or split with examples")
    progress = on_progress or (lambda fraction, message: None)
    embedder = shared_embedder() if options.similarity else None
    results: list[ModelResult] = []
    notes: list[str] = []
    for index, target in enumerate(targets):
        hit = (cached or {}).get(target.label)

        def answering(done: int, total: int, index: int = index, label: str = target.label) -> None:
            if done < total and should_stop and should_stop():  # all answered: finish this model's scores
                raise EvaluationStopped(f"while {label} answered ({done} of {total} examples)")
            progress((index + done / total) / len(targets), f"{label}: {done} of {total} examples answered")

        progress(index / len(targets), f"{target.label}: " + ("scores reused from an earlier run" if hit else
                                                              f"answering {len(examples)} examples"))
        try:
            results.append(hit or score_model(engine, target, examples, options, embedder, answering))
        except EvaluationStopped as stop:
            if not results:
                raise
            left = ", ".join(t.label for t in targets[index:])
            notes.append(f"Stopped {stop}; not scored: {left}")
            break
    progress(1.0, "done")
    references = [ex.answer for ex in examples]
    unknown = embedder.unknown_share(references) if embedder else 0.0
    if unknown > 0.05:  # mostly Korean: the English embedding model cannot read many of the words
        notes.append(f"similarity: the embedding model reads {unknown:.0%} of the reference words as unknown "
                     "(common for Korean); treat similarity as rough here and prefer chrF")
    return EvalReport(data=data, prompts=[prompt_text(ex) for ex in examples], references=references,
                      models=results, similarity_kind=SIMILARITY_KIND if embedder else "", notes=notes)


def chance_notes(report: EvalReport) -> list[Message]:
    """A fine-tuned model whose label accuracy is no better than always answering the most common label: it learned
    the answer's format, not the task (typical when the base model cannot read the data's language). One note per
    model and field, with what to try; the base model is not flagged (it has not been taught the task)."""
    notes = []
    levels = chance_levels(report.references)
    for model in report.models:
        if model.adapter_path is None:
            continue
        for name, (chance, label) in levels.items():
            accuracy = model.metrics.get(f"accuracy[{name}]")
            if accuracy is not None and accuracy <= chance + 1e-9:
                notes.append(message("evaluate.note.chance", model=model.label, field=name,
                                     accuracy=f"{accuracy:.0%}", chance=f"{chance:.0%}", label=label))
    return notes


def probe_forgetting(engine: ChatEngine, targets: Sequence[EvalTarget], count: int = 50,
                     options: EvalOptions | None = None, on_progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None) -> EvalReport:
    """Score the models on the probe part of the general reference set (the base is always included first)."""
    targets = [t for t in targets if t.adapter_path is not None]
    return evaluate(engine, [EvalTarget("base"), *targets], probe_examples(count), GENERAL_SPEC, options,
                    on_progress, should_stop=should_stop)


def general_change(report: EvalReport) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(base, {label: adapted}) perplexity and similarity, for the forgetting chart."""
    keys = ("perplexity", "similarity")
    pick = {m.label: {k: m.metrics[k] for k in keys if k in m.metrics} for m in report.models}
    base = pick.pop("base", {})
    return base, pick


# ---------------------------------------------------------------- a run's test split, scored after training


def _base_cache_key(config: Any, options: EvalOptions) -> str:
    path = resolve_data_path(config.data.path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else str(path)
    parts = [SCORES_VERSION, config.model.name_or_path, config.model.dtype, digest, config.data.val_size,
             config.data.test_size, config.data.split_seed, options.max_new_tokens, options.similarity]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def score_run(store: Any, run_id: str, options: EvalOptions | None = None,
              on_progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> EvalReport:
    """Score a run's test split with the base model and its adapter; saved as eval.json and scores.json.

    The base model's scores depend only on the model, data, split and options: they are cached under the store
    so that a rank sweep or a second try does not answer the same test split with the base again. Stopped
    (should_stop) before the adapter is scored in full, nothing is saved as the run's scores and
    EvaluationStopped is raised; a base scored in full is still cached.
    """
    config = store.load_config(run_id)
    options = options or EvalOptions(max_new_tokens=config.train.eval_max_new_tokens)
    examples = run_split(store, run_id, "test")
    cache = Path(store.root) / "base-scores" / f"{_base_cache_key(config, options)}.json"
    cached = {"base": ModelResult(**json.loads(cache.read_text(encoding="utf-8")))} if cache.is_file() else {}
    engine = ChatEngine(ModelConfig(name_or_path=config.model.name_or_path, dtype=config.model.dtype,
                                    trust_remote_code=config.model.trust_remote_code))
    try:
        targets = [EvalTarget("base"), EvalTarget("adapter", str(store.adapter_dir(run_id)), key=run_id)]
        report = evaluate(engine, targets, examples, f"{config.data.path} · test", options, on_progress, cached,
                          should_stop)
    finally:
        engine.unload()
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(asdict(report.models[0]), ensure_ascii=False))
    if len(report.models) < len(targets):  # stopped after the base: half a comparison is not the run's score
        raise EvaluationStopped(report.notes[0].removeprefix("Stopped "))
    store.write_json(run_id, "eval.json", report.to_dict())
    store.write_json(run_id, "scores.json", {m.label: m.metrics for m in report.models})
    return report


def read_scores(store: Any, run_id: str) -> dict[str, dict[str, float]]:
    """{"base": metrics, "adapter": metrics} of a run's scored test split, or {} when it was not scored."""
    return store.read_json(run_id, "scores.json") or {}


def read_report(store: Any, run_id: str) -> EvalReport | None:
    raw = store.read_json(run_id, "eval.json")
    return EvalReport.from_dict(raw) if raw else None


def stored_results(store: Any, run_id: str, targets: list[EvalTarget], options: EvalOptions,
                   limit: int) -> dict[str, ModelResult]:
    """The results saved when a run's test split was scored after training, by target label, for the targets they
    answer (the base, and the run's own adapter) when the options match: `evaluate` reuses them as `cached`."""
    report = read_report(store, run_id)
    if report is None or (limit and limit < len(report.prompts)):
        return {}
    config = store.load_config(run_id)
    same = (options.max_new_tokens == config.train.eval_max_new_tokens
            and options.similarity == bool(report.similarity_kind)
            and all(options.perplexity == ("perplexity" in m.metrics) for m in report.models))
    if not same:
        return {}
    stored = {m.label: m for m in report.models}  # labelled "base" and "adapter" when they were saved
    stored_label = {None: "base", run_id: "adapter"}  # by target key: the base has none, a run its id
    return {t.label: replace(stored[stored_label[t.key]], label=t.label) for t in targets
            if stored_label.get(t.key) in stored}
