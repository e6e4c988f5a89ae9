"""Evaluation, the forgetting probe and its mitigations, on the real embedded model with real PEFT.

One tiny LoRA run (module-scoped) is trained with the probe on and its test split scored automatically; the tests
then read what it stored, score it again through the core and the CLI, and check the numbers against direct
computations.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import ConfigError, ModelConfig
from workbench.data.general import general_parts, probe_examples, replay_examples
from workbench.evaluate.scoring import (
    EvalOptions,
    EvalReport,
    EvalTarget,
    EvaluationStopped,
    ModelResult,
    chance_notes,
    evaluate,
    general_change,
    load_examples,
    perplexity,
    probe_forgetting,
    read_report,
    read_scores,
    run_split,
    score_run,
)
from workbench.generate.engine import ChatEngine
from workbench.i18n import say
from workbench.runs.store import RunStore
from workbench.train.jobs import execute_run

ROOT = Path(__file__).resolve().parents[1]
TINY = {"train.max_steps": 4, "train.learning_rate": 0.003, "data.val_size": 4, "data.test_size": 4,
        "train.general_every": 2, "train.general_samples": 4, "train.eval_test": True,
        "train.eval_max_new_tokens": 12}  # changed from conftest's tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config):
    """One scored LoRA run: (store, run_id, result)."""
    store = RunStore(tmp_path_factory.mktemp("evalhome") / "runs")
    config = tiny_config(**TINY)
    record = store.create_run(config)
    events = []
    result = execute_run(store, record.run_id, config, on_event=events.append)
    return store, record.run_id, result, events


@pytest.fixture(scope="module")
def engine():
    return ChatEngine(ModelConfig())


# ---------------------------------------------------------------- the general reference set


def test_probe_and_replay_parts_never_overlap():
    probe, replay = general_parts()
    assert len(probe) + len(replay) == 150 and len(probe) == 50
    assert not {ex.line for ex in probe} & {ex.line for ex in replay}
    languages = {"ko" if any("\uac00" <= ch <= "\ud7a3" for ch in ex.answer) else "en" for ex in probe}
    assert languages == {"en", "ko"}  # the probe measures both languages


def test_replay_examples_make_up_the_requested_share():
    replay = replay_examples(90, 0.25, seed=0)
    assert len(replay) == 30  # 30 / (90 + 30) = 25 %
    _, pool = general_parts()
    assert all(ex in pool for ex in replay)
    assert replay_examples(90, 0.25, seed=0) == replay  # seeded
    assert len(replay_examples(600, 0.5, seed=1)) == 600  # more than the pool: drawn with repeats
    assert replay_examples(90, 0.0, seed=0) == []


def test_replay_is_mixed_into_training_data(tiny_config):
    from workbench.models.loading import cached_tokenizer
    from workbench.train.loop import prepare_data

    tokenizer = cached_tokenizer("embedded")
    plain = prepare_data(tiny_config(**{**TINY, "train.general_every": 0}), tokenizer)
    mixed = prepare_data(tiny_config(**{**TINY, "train.replay_ratio": 0.2}), tokenizer)
    assert plain.replayed == 0 and not plain.general
    assert mixed.replayed == round(0.25 * len(plain.train)) and len(mixed.train) == len(plain.train) + mixed.replayed
    assert len(mixed.general) == 4 and any(note.startswith("replay:") for note in mixed.notes)


# ---------------------------------------------------------------- training with the probe, scored after


def test_probe_logs_the_general_loss_from_step_zero_and_it_changes(trained):
    store, run_id, result, _ = trained
    rows = [r for r in store.read_metrics(run_id) if "general_loss" in r]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert all({"epoch", "tokens"} <= set(r) for r in rows)
    assert result.general_loss_start == rows[0]["general_loss"] and result.general_loss == rows[-1]["general_loss"]
    assert rows[-1]["general_loss"] != pytest.approx(rows[0]["general_loss"], rel=1e-4)


def test_test_split_is_scored_and_stored_with_the_run(trained):
    store, run_id, result, events = trained
    scores = read_scores(store, run_id)
    assert set(scores) == {"base", "adapter"}
    for metrics in scores.values():
        assert {"rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1", "similarity",
                "perplexity"} <= set(metrics)
        assert 0 <= metrics["rougeL"] <= 1 and 0 <= metrics["chrf"] <= 100 and metrics["perplexity"] > 1
    report = read_report(store, run_id)
    assert len(report.prompts) == result.test_examples == 4
    assert report.prompts == [r["prompt"] for r in report.example_rows()]
    assert [ex.answer for ex in run_split(store, run_id)] == report.references
    assert store.get_run(run_id).status == "completed"
    phases = [say(e.values["phase"], "en") for e in events if e.kind == "score"]
    assert phases[0].startswith("scoring the test split") and phases[-1] == ""


def test_base_scores_are_cached_across_runs(trained):
    store, run_id, _, _ = trained
    messages = []
    again = score_run(store, run_id, on_progress=lambda fraction, message: messages.append(message))
    assert any(m.startswith("base: scores reused") for m in messages)
    assert again.models[0].metrics == read_scores(store, run_id)["base"]
    assert len(list((store.root / "base-scores").glob("*.json"))) == 1


def test_report_round_trips_through_json(trained):
    store, run_id, _, _ = trained
    report = read_report(store, run_id)
    again = EvalReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.summary_rows() == report.summary_rows() and again.example_rows() == report.example_rows()


def test_l2_toward_the_start_keeps_the_adapter_closer(tmp_path, tiny_config):
    from safetensors.torch import load_file

    store = RunStore(tmp_path / "runs")
    norms = {}
    for strength in (0.0, 50.0):
        config = tiny_config(**{**TINY, "train.general_every": 0, "train.eval_test": False,
                                "train.eval_every": 0, "train.l2_to_base": strength,
                                "train.learning_rate": 0.01})
        record = store.create_run(config)
        execute_run(store, record.run_id, config)
        weights = load_file(store.adapter_dir(record.run_id) / "adapter_model.safetensors")
        # LoRA's B starts at zero, so ‖B‖² is the distance of the update from the start.
        norms[strength] = sum(float((w ** 2).sum()) for name, w in weights.items() if "lora_B" in name)
        penalties = [r.get("l2_penalty") for r in store.read_metrics(record.run_id) if "train_loss" in r]
        assert all(p is None for p in penalties) if strength == 0 else all(p is not None for p in penalties)
    assert 0 < norms[50.0] < 0.8 * norms[0.0]


# ---------------------------------------------------------------- metrics of models, against direct computation


def test_perplexity_matches_a_direct_computation(engine):
    import torch

    from workbench.data.formatting import encode_example

    examples = load_examples("sample:ko_review_sentiment", limit=3)
    tokenizer, model = engine.loaded.tokenizer, engine.loaded.model
    total, count = 0.0, 0
    for example in examples:  # one example at a time, no padding, plain log-softmax
        item = encode_example(example.prompt_messages, example.answer, tokenizer, 4096)
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        for position, label in enumerate(item.labels[1:]):
            if label != -100:
                total -= float(logprobs[position, label])
                count += 1
    assert perplexity(engine, None, examples, batch_size=2) == pytest.approx(math.exp(total / count), rel=1e-4)


def test_evaluate_scores_each_model_and_keeps_korean(engine, trained):
    store, run_id, _, _ = trained
    examples = load_examples("sample:ko_review_sentiment", "test", limit=3)
    targets = [EvalTarget("base"), EvalTarget("tiny", str(store.adapter_dir(run_id)), key=run_id)]
    seen = []
    report = evaluate(engine, targets, examples, "ko", EvalOptions(max_new_tokens=8),
                      on_progress=lambda fraction, message: seen.append(fraction))
    assert [row["model"] for row in report.summary_rows()] == ["base", "tiny"]
    assert seen[0] == 0 and seen[-1] == 1
    rows = report.example_rows()
    assert len(rows) == 3 and all(any("\uac00" <= ch <= "\ud7a3" for ch in row["reference"]) for row in rows)
    assert {"tiny", "tiny · rougeL", "base · chrf", "base · similarity"} <= set(rows[0])
    assert report.notes and "unknown" in report.notes[0]  # Korean: the embedding model says what it cannot read


def test_stop_keeps_the_models_scored_in_full_and_says_which_were_not(engine, trained):
    store, run_id, _, _ = trained
    examples = load_examples("sample:en_ticket_triage", limit=6)
    targets = [EvalTarget("base"), EvalTarget("tiny", str(store.adapter_dir(run_id)), key=run_id)]
    options = EvalOptions(max_new_tokens=4, batch_size=2, similarity=False, perplexity=False)
    messages: list[str] = []

    def second_model_answered_once() -> bool:  # Stop pressed while the run answers its second batch
        return any(m.startswith("tiny: 2 of 6") for m in messages)

    report = evaluate(engine, targets, examples, "en", options, lambda _f, message: messages.append(message),
                      should_stop=second_model_answered_once)
    assert [m.label for m in report.models] == ["base"] and len(report.models[0].outputs) == 6
    assert report.notes == ["Stopped while tiny answered (4 of 6 examples); not scored: tiny"]
    assert "base: 4 of 6 examples answered" in messages  # progress goes batch by batch
    full = evaluate(engine, targets[:1], examples, "en", options)
    assert report.models[0].outputs == full.models[0].outputs  # what was kept is the whole, real score
    with pytest.raises(EvaluationStopped, match=r"while base answered \(0 of 6"):
        evaluate(engine, targets, examples, "en", options, should_stop=lambda: True)


def test_stop_during_the_test_split_scoring_keeps_the_run_and_stores_no_half_scores(tmp_path, tiny_config):
    store = RunStore(tmp_path / "runs")
    config = tiny_config(**{**TINY, "train.max_steps": 2, "train.general_every": 0,
                            "train.eval_every": 0, "data.test_size": 8})
    record = store.create_run(config)
    scoring = {"started": False}

    def on_event(event):
        scoring["started"] |= event.kind == "score"

    result = execute_run(store, record.run_id, config, should_stop=lambda: scoring["started"], on_event=on_event)
    assert result.status == "completed" and result.steps == 2  # training was done: Stop came while scoring
    assert store.get_run(record.run_id).status == "completed"
    assert read_scores(store, record.run_id) == {} and read_report(store, record.run_id) is None
    error = store.read_json(record.run_id, "eval_error.json")["error"]
    assert error.startswith("Stop was pressed while base answered (0 of 8") and "Evaluate scores it" in error


def test_evaluate_refuses_no_models_and_duplicate_labels(engine):
    examples = load_examples("sample:en_ticket_triage", limit=1)
    with pytest.raises(ValueError, match="at least one model"):
        evaluate(engine, [], examples)
    with pytest.raises(ValueError, match="own label"):
        evaluate(engine, [EvalTarget("base"), EvalTarget("base")], examples)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        EvalOptions(max_new_tokens=0)
    with pytest.raises(ValueError, match="split 'dev'"):
        load_examples("sample:en_ticket_triage", "dev")


def test_probe_forgetting_compares_base_and_adapter(engine, trained):
    store, run_id, _, _ = trained
    report = probe_forgetting(engine, [EvalTarget("tiny", str(store.adapter_dir(run_id)), key=run_id)], count=3,
                              options=EvalOptions(max_new_tokens=8))
    base, adapted = general_change(report)
    assert report.references == [ex.answer for ex in probe_examples(3)]
    assert set(base) == {"perplexity", "similarity"} and set(adapted) == {"tiny"}
    assert adapted["tiny"]["perplexity"] != pytest.approx(base["perplexity"], rel=1e-4)


# ---------------------------------------------------------------- the CLI


def test_eval_cli_prints_one_json_object_per_model(trained, tmp_path):
    store, run_id, _, _ = trained
    csv = tmp_path / "examples.csv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "eval", "--data", "sample:en_ticket_triage", "--split", "test",
         "--limit", "2", "--base", "--adapter", str(store.adapter_dir(run_id)), "--max-new-tokens", "8",
         "--no-similarity", "--csv", str(csv)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    last = [json.loads(line) for line in proc.stdout.strip().splitlines()[-2:]]
    assert [row["model"] for row in last] == ["base", run_id]
    assert all(row["examples"] == 2 and "perplexity" in row and "similarity" not in row for row in last)
    import pandas as pd

    assert len(pd.read_csv(csv)) == 2


def test_eval_cli_names_a_missing_adapter(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "eval", "--data", "sample:en_ticket_triage", "--limit", "1",
         "--adapter", str(tmp_path / "nowhere"), "--no-similarity"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_a_fine_tune_at_chance_no_better_than_always_answering_the_commonest_label_is_flagged_with_what_to_try():
    from workbench.evaluate.metrics import score_texts

    references = [f"감정: {feeling} | 주제: {topic}" for feeling, topic in
                  (("긍정", "맛"), ("긍정", "가격"), ("부정", "맛"), ("긍정", "맛"))]

    def model(label, adapter, outputs):
        return ModelResult(label, adapter, score_texts(outputs, references)[0], outputs, [], 1.0, 10)
    format_only = ["감정: 부정 | 주제: 맛"] * 4  # the right format, labels no better than luck
    learned = ["감정: 긍정 | 주제: 맛", "감정: 긍정 | 주제: 가격", "감정: 부정 | 주제: 맛", "감정: 긍정 | 주제: 맛"]
    report = EvalReport("d", ["p"] * 4, references, [model("base", None, format_only),
                                                      model("run", "/x", format_only), model("good", "/y", learned)])
    notes = chance_notes(report)
    assert [(n.fields["model"], n.fields["field"]) for n in notes] == [("run", "감정"), ("run", "주제")]
    assert notes[0].fields["accuracy"] == "25%" and notes[0].fields["chance"] == "75%"
    assert "learned the answer's format, not the task" in say(notes[0], "en") and "«긍정»" in say(notes[0], "en")
    assert "형식은 익혔지만" in say(notes[0], "ko")
