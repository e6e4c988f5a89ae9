"""Multiple choice with calibration (#16): the calibration metrics on hand-made numbers, the bundled sets' shape, a
user's file read row by row, the harness path checked against a plain forward pass of the real model over the same
k-shot prompt, adapters, stopping, and the reliability diagram."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from workbench.evaluate.calibration import (
    ReliabilityBin,
    bin_index,
    brier_score,
    choice_probabilities,
    expected_calibration_error,
    macro_f1,
    reliability_bins,
)
from workbench.evaluate.mc_tasks import LETTERS, SETS_DIR, bundled_config, bundled_sets, load_task, read_mc_file
from workbench.i18n import say

# ---- calibration: pure functions on numbers worked out by hand ------------------------------------------------


def test_choice_probabilities_are_the_softmax_of_the_log_likelihoods():
    assert choice_probabilities([math.log(0.5), math.log(0.25), math.log(0.25)]) == pytest.approx([0.5, 0.25, 0.25])
    assert choice_probabilities([-1000.0, -1000.0]) == pytest.approx([0.5, 0.5])  # no underflow
    with pytest.raises(ValueError):
        choice_probabilities([])


def test_bins_hold_confidences_in_right_closed_tenths():
    assert [bin_index(c) for c in (0.0, 0.1, 0.10001, 0.25, 0.5, 0.99, 1.0)] == [0, 0, 1, 2, 4, 9, 9]


def test_ece_and_the_reliability_bins_of_four_answers():
    confidences, correct = [0.95, 0.85, 0.85, 0.35], [True, True, False, False]
    bins = reliability_bins(confidences, correct)
    assert len(bins) == 10 and sum(b.count for b in bins) == 4
    assert bins[9] == ReliabilityBin(0.9, 1.0, 1, 0.95, 1.0)
    assert (bins[8].count, bins[8].confidence, bins[8].accuracy) == (2, pytest.approx(0.85), 0.5)
    assert (bins[3].count, bins[3].accuracy) == (1, 0.0)
    assert bins[0] == ReliabilityBin(0.0, 0.1, 0, None, None)
    # 1/4 * |1 - .95| + 2/4 * |.5 - .85| + 1/4 * |0 - .35|
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0125 + 0.175 + 0.0875)
    assert expected_calibration_error([0.8] * 5, [True, True, True, True, False]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2 confidences but 1 answers"):
        expected_calibration_error([0.5, 0.5], [True])


def test_brier_score_from_sure_and_right_to_sure_and_wrong():
    assert brier_score([[1, 0, 0, 0]], [0]) == 0
    assert brier_score([[0, 1, 0, 0]], [0]) == 2
    assert brier_score([[0.25] * 4], [2]) == pytest.approx(0.75)
    assert brier_score([[0.5, 0.5], [0.9, 0.1]], [0, 1]) == pytest.approx((0.5 + 1.62) / 2)
    with pytest.raises(ValueError, match="answer 4 is not one of the 4 choices"):
        brier_score([[0.25] * 4], [4])


def test_macro_f1_punishes_always_answering_the_same_letter():
    assert macro_f1([0, 0, 0, 0], [0, 1, 2, 3]) == pytest.approx(0.4 / 4)  # F1 of "A" = 2 * .25 * 1 / 1.25
    assert macro_f1([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert macro_f1([1, 0], [0, 1]) == 0.0


# ---- the bundled sets -----------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", bundled_sets())
def test_each_bundled_set_is_a_harness_task_over_checked_questions(name):
    files = bundled_config(name)["dataset_kwargs"]["data_files"]
    test, dev = _rows(Path(files["test"])), _rows(Path(files["dev"]))
    assert len(test) >= 100 and len(dev) >= 5
    assert len({row["subject"] for row in test}) >= 5
    assert {row["subject"] for row in dev[:5]} <= {row["subject"] for row in test}
    questions = [row["question"] for row in test + dev]
    assert len(set(questions)) == len(questions)
    for row in test + dev:
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4, row
        assert 0 <= row["answer"] < 4 and all(choice.strip() for choice in row["choices"]), row
    shares = [sum(row["answer"] == k for row in test) / len(test) for k in range(4)]
    assert min(shares) > 0.15, shares  # no letter is the safe guess


def test_there_is_an_english_and_a_korean_set():
    from workbench.data.language import KOREAN, language_of

    assert {"knowledge_en", "knowledge_ko"} <= set(bundled_sets())
    korean = _rows(SETS_DIR / "knowledge_ko" / "test.jsonl")
    assert language_of(row["question"] for row in korean) == KOREAN


# ---- a user's file --------------------------------------------------------------------------------------------


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


def test_a_user_file_keeps_its_good_rows_and_names_each_bad_one_by_line(tmp_path):
    good = {"question": "2 + 2?", "choices": ["3", "4", "5"], "answer": "B"}
    path = _write(tmp_path / "quiz.jsonl", [
        {**good, "split": "dev"},
        good,
        {"question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": 0, "subject": "geo"},
        {"question": "Missing answer", "choices": ["a", "b"]},
        {"question": "Out of range", "choices": ["a", "b"], "answer": "D"},
        {"question": "One choice", "choices": ["a"], "answer": 0},
        {"question": "Twice", "choices": ["a", "a"], "answer": 0},
        "[1, 2]",
        "{broken json",
        {"question": "By text", "choices": ["red", "blue"], "answer": "blue"},
    ])
    report = read_mc_file(path)
    assert [(item.line, item.answer, item.split, item.subject) for item in report.items] == [
        (1, 1, "dev", "quiz"), (2, 1, "test", "quiz"), (3, 0, "test", "geo"), (10, 1, "test", "quiz")]
    assert [p.line for p in report.problems] == [4, 5, 6, 7, 8, 9]
    reasons = {p.line: say(p.why, "en") for p in report.problems}
    assert 'no "answer"' in reasons[4] and '"D"' in reasons[5] and "A-B" in reasons[5]
    assert "between 2 and 10" in reasons[6] and '"a" appears twice' in reasons[7]
    assert say(report.problems[0].why, "ko") != reasons[4]  # the same reasons in Korean


def test_a_csv_with_letter_columns_and_answers_counted_from_one(tmp_path):
    path = tmp_path / "kmmlu_style.csv"
    path.write_text("question,A,B,C,D,answer\n" + "".join(f"q{i},a{i},b{i},c{i},d{i},{i % 4 + 1}\n"
                                                          for i in range(8)) + "q8,x,y,,,2\nq9,x,,z,,1\n",
                    encoding="utf-8")
    report = read_mc_file(path)
    assert [item.answer for item in report.items] == [0, 1, 2, 3, 0, 1, 2, 3, 1]  # 1-based: 4 is the last
    assert report.items[8].choices == ("x", "y")
    assert [item.split for item in report.items] == ["dev"] * 5 + ["test"] * 4  # no split column: first 5 are shots
    assert [p.line for p in report.problems] == [11] and "choice B is empty" in say(report.problems[0].why, "en")
    assert {note.key for note in report.notes} == {"mc.note.one_based", "mc.note.first_rows_dev"}


def test_a_file_without_a_usable_question_is_refused_naming_its_lines(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"question": "q", "choices": ["a", "b"]}, {"prompt": "not mc"}])
    with pytest.raises(ValueError) as refused:
        read_mc_file(path)
    assert "line 1" in say(refused.value, "en") and "line 2" in say(refused.value, "en")
    assert "1번째 줄" in say(refused.value, "ko")
    with pytest.raises(ValueError, match="unsupported file type .txt"):
        read_mc_file(_write(tmp_path / "quiz.txt", ["x"]))


def test_unknown_and_unreachable_harness_tasks_name_the_task_and_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as unknown:
        load_task("no_such_task_anywhere")
    assert "'no_such_task_anywhere'" in say(unknown.value, "en") and "knowledge_en" in say(unknown.value, "en")
    with pytest.raises(ValueError) as offline:
        load_task("mmlu_anatomy")  # a real harness task whose data set is on the Hub
    assert "'mmlu_anatomy'" in say(offline.value, "en") and ".jsonl or .csv file" in say(offline.value, "en")
    assert "'mmlu_anatomy'" in say(offline.value, "ko") and "파일" in say(offline.value, "ko")


# ---- through the harness, with the real model -----------------------------------------------------------------


def _mmlu_prompt(dev: list[dict], question: dict, shots: int) -> str:
    """MMLU's k-shot prompt, written out by hand from the set's files."""
    def block(row: dict) -> str:
        return row["question"] + "\n" + "".join(f"{LETTERS[i]}. {c}\n" for i, c in enumerate(row["choices"])) + \
            "Answer:"

    examples = "".join(block(row) + f" {LETTERS[row['answer']]}\n\n" for row in dev[:shots])
    return "The following are multiple choice questions (with answers).\n\n" + examples + block(question)


def _plain_loglikelihoods(model, tokenizer, context: str, continuations: list[str]) -> list[float]:
    """log P(continuation | context) from one transformers forward pass: each continuation here is one token after
    the same context tokens, so the logits at the context's last position score them all."""
    import torch

    wholes = [tokenizer(context + c)["input_ids"] for c in continuations]
    start = len(tokenizer(context)["input_ids"])
    assert all(len(w) == start + 1 and w[:start] == wholes[0][:start] for w in wholes)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([wholes[0][:start]])).logits[0, -1].float(), dim=-1)
    return [float(logprobs[w[start]]) for w in wholes]


@pytest.mark.slow
def test_the_harness_picks_and_scores_what_a_plain_forward_pass_does():
    """5-shot on the English set: the harness's prompt is MMLU's, and each choice's log-likelihood (read through the
    shared-prefix cache) equals a plain transformers forward pass over the same prompt."""
    from workbench.config import ModelConfig
    from workbench.evaluate.multiple_choice import MCReport, score_mc, subject_words
    from workbench.models.loading import load_model

    report = score_mc(ModelConfig(), [], "knowledge_en", shots=5, limit=3)
    (scores,) = report.scores
    assert (report.kind, report.shots, scores.label, scores.count, len(report.rows)) == ("bundled", 5, "base", 3, 3)
    test, dev = _rows(SETS_DIR / "knowledge_en" / "test.jsonl"), _rows(SETS_DIR / "knowledge_en" / "dev.jsonl")
    loaded = load_model(ModelConfig())
    for row in report.rows:
        assert row.question == test[row.doc_id]["question"] and row.answer == test[row.doc_id]["answer"]
        assert row.prompt == _mmlu_prompt(dev, test[row.doc_id], 5)
        pick = row.picks["base"]
        plain = _plain_loglikelihoods(loaded.model, loaded.tokenizer, row.prompt, [f" {x}" for x in LETTERS[:4]])
        assert list(pick.loglikelihoods) == pytest.approx(plain, abs=2e-3)
        assert pick.choice == max(range(4), key=plain.__getitem__)
        assert pick.correct == (pick.choice == row.answer)
        assert sum(pick.probabilities) == pytest.approx(1.0) and pick.probability == max(pick.probabilities)
    assert scores.accuracy == sum(row.picks["base"].correct for row in report.rows) / 3
    assert 0 <= scores.ece <= 1 and 0 <= scores.brier <= 2 and sum(b.count for b in scores.reliability) == 3
    assert report.summary_rows()[0]["model"] == "base" and len(report.question_rows()) == 3
    again = MCReport.from_dict(json.loads(json.dumps(report.to_dict())))  # plain data, stored and read back
    assert again.rows == report.rows and again.scores == report.scores
    assert subject_words(report.rows[0].subject, "ko") == "역사" and subject_words("my topic", "ko") == "my topic"


@pytest.mark.slow
def test_in_cloze_form_each_choices_text_is_scored_as_a_plain_forward_pass_scores_it():
    """mmlu_continuation's prompt over the English set: each choice's own words after "Answer:", their summed
    log-likelihood equal to a plain forward pass (the question run once for its four choices, no padding run)."""
    import torch

    from workbench.config import ModelConfig
    from workbench.evaluate.multiple_choice import score_mc
    from workbench.models.loading import load_model

    report = score_mc(ModelConfig(), [], "knowledge_en_cloze", shots=2, limit=2)
    test, dev = _rows(SETS_DIR / "knowledge_en" / "test.jsonl"), _rows(SETS_DIR / "knowledge_en" / "dev.jsonl")
    loaded = load_model(ModelConfig())
    for row in report.rows:
        shots = "".join(f"Question: {d['question']}\nAnswer: {d['choices'][d['answer']]}\n\n" for d in dev[:2])
        assert row.prompt == ("The following are questions (with answers).\n\n" + shots +
                              f"Question: {test[row.doc_id]['question']}\nAnswer:")
        plain = []
        for choice in row.choices:
            whole = loaded.tokenizer(row.prompt + " " + choice)["input_ids"]
            start = len(loaded.tokenizer(row.prompt)["input_ids"])
            with torch.no_grad():
                logprobs = torch.log_softmax(loaded.model(torch.tensor([whole])).logits[0].float(), dim=-1)
            plain.append(float(sum(logprobs[i - 1, whole[i]] for i in range(start, len(whole)))))
        assert list(row.picks["base"].loglikelihoods) == pytest.approx(plain, abs=2e-3)


@pytest.mark.slow
def test_the_base_and_an_adapter_on_a_korean_file_and_stopping_between_models(tmp_path, make_adapter):
    from workbench.config import ModelConfig
    from workbench.evaluate.multiple_choice import MCStopped, score_mc

    adapter = make_adapter(tmp_path / "lora")
    path = _write(tmp_path / "퀴즈.jsonl", [
        {"question": "대한민국의 수도는?", "choices": ["부산", "서울", "대구"], "answer": "B", "split": "dev",
         "subject": "지리"},
        {"question": "1 더하기 1은?", "choices": ["1", "2", "3"], "answer": 1, "subject": "수학"},
        {"question": "물의 화학식은?", "A": "H2O", "B": "CO2", "C": "O2", "answer": "A", "subject": "과학"},
        {"question": "답이 없는 문제", "choices": ["가", "나"]},
    ])
    fractions = []
    report = score_mc(ModelConfig(), [("lora", adapter)], str(path), shots=1,
                      on_progress=lambda fraction, what: fractions.append(fraction))
    assert [s.label for s in report.scores] == ["base", "lora"] and report.kind == "file"
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert {note.key for note in report.notes} == {"mc.note.skipped"} and "4번째 줄" in say(report.notes[0], "ko")
    assert set(report.scores[0].by_subject) == {"수학", "과학"}
    shot = "다음은 객관식 문제와 그 정답입니다.\n\n대한민국의 수도는?\nA. 부산\nB. 서울\nC. 대구\n정답： B\n\n"
    for row in report.rows:
        assert row.prompt.startswith(shot)
        assert row.prompt.endswith("C. " + row.choices[2] + "\n정답：") and len(row.picks["lora"].probabilities) == 3
    assert [r.picks["lora"].loglikelihoods for r in report.rows] != [r.picks["base"].loglikelihoods
                                                                     for r in report.rows]

    base_done = []

    def on_progress(fraction, what):
        if what.fields.get("label") == "base" and what.fields.get("done") == what.fields.get("total"):
            base_done.append(True)

    stopped = score_mc(ModelConfig(), [("lora", adapter)], str(path), on_progress=on_progress,
                       should_stop=lambda: bool(base_done))
    assert [s.label for s in stopped.scores] == ["base"] and "lora" in say(stopped.notes[-1], "en")
    with pytest.raises(MCStopped):
        score_mc(ModelConfig(), [], "knowledge_en", limit=2, should_stop=lambda: True)


def test_requests_that_cannot_be_scored_are_refused_before_any_model_loads(tmp_path):
    from workbench.config import ModelConfig
    from workbench.evaluate.multiple_choice import score_mc

    for bad, words in ((dict(shots=6), "from 0 to 5"), (dict(shots=1, limit=0), "at least 1"),
                       (dict(adapters=[("x", str(tmp_path))]), "no trained weights for 'x'"),
                       (dict(adapters=[("base", str(tmp_path))]), "each with its own label")):
        with pytest.raises(ValueError) as refused:
            score_mc(ModelConfig(), bad.pop("adapters", []), "knowledge_en", **bad)
        assert words in say(refused.value, "en")
    few = _write(tmp_path / "few.jsonl", [{"question": f"q{i}", "choices": ["a", "b"], "answer": 0,
                                           "split": "dev" if i < 2 else "test"} for i in range(4)])
    with pytest.raises(ValueError, match="has 2 in its dev split"):
        score_mc(ModelConfig(), [], str(few), shots=3)


def test_the_shared_prefix_cache_gives_the_logits_of_a_full_forward_pass():
    """A k-shot prefix kept across calls, a question shared by its choices' rows run once: every row still gets the
    logits of a full forward pass at every position after the kept prefix."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from workbench.config import ModelConfig
    from workbench.evaluate.prefix_cache import reuse_shared_prefix
    from workbench.models.loading import load_model

    loaded = load_model(ModelConfig())
    harness_model = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=4)
    shots = "The following are questions (with answers).\n\n" + "Question: Which is a colour?\nAnswer: Red\n\n" * 6
    question = "Question: Which of these is the largest planet of the solar system?\nAnswer:"
    contexts = [shots + question, shots + question, shots + question, shots + "Question: Name a planet.\nAnswer:"]
    rows = [loaded.tokenizer(c + a)["input_ids"] for c, a in zip(contexts, [" Jupiter", " Mars", " Saturn", " Venus"])]
    width = max(map(len, rows))
    batch = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        full = loaded.model(batch).logits
    expect = reuse_shared_prefix(harness_model)
    expect(contexts, rows)
    for _ in range(2):  # the second call reuses the kept prefix
        cached = harness_model._model_call(batch)
        kept = width - cached.shape[1]
        assert 32 <= kept <= len(loaded.tokenizer(os.path.commonprefix(contexts))["input_ids"]) - 2
        for at, row in enumerate(rows):  # each row's own positions; its padding is never read, and never run
            assert torch.allclose(cached[at, :len(row) - kept], full[at, kept:len(row)], atol=2e-3)
            assert not cached[at, len(row) - kept:].any()
    expect(["", "x"])  # nothing shared by the whole call: only the rows that share a question are run together
    assert torch.allclose(harness_model._model_call(batch), full, atol=2e-3)


def test_the_reliability_diagram_draws_each_model_and_says_when_there_is_nothing():
    from workbench.plots import make_reliability_figure

    bins = {"base": reliability_bins([0.31, 0.35, 0.91, 0.95], [False, True, True, True]),
            "lora": [b.__dict__ for b in reliability_bins([0.6, 0.62], [True, False])]}  # as read back from JSON
    figure = make_reliability_figure(bins, {"base": 0.125}, lang="ko")
    names = [trace.name for trace in figure.data]
    assert names == ["완벽한 보정", "base (보정 오차 ECE 0.125)", "base", "lora", "lora"]
    base = figure.data[1]
    assert list(base.x) == pytest.approx([0.33, 0.93]) and list(base.y) == [0.5, 1.0]
    assert [list(c) for c in base.customdata] == [[2, 0.3, 0.4], [2, 0.9, 1.0]]
    assert list(figure.data[2].y) == [2, 2] and figure.layout.title.text.startswith("신뢰도")
    empty = make_reliability_figure({"base": []}, lang="en")
    assert not empty.data and "No multiple-choice scores yet" in empty.layout.annotations[0].text


@pytest.mark.slow
def test_after_training_a_run_is_scored_on_the_bundled_sets_and_the_runs_table_shows_it(home, tiny_config,
                                                                                       make_adapter, monkeypatch):
    import functools
    import types

    from workbench.app import Workbench
    from workbench.evaluate import multiple_choice
    from workbench.runs.store import RunStore
    from workbench.train import jobs
    from workbench.ui.runs_tab import runs_frame

    store = RunStore(home / "runs")
    config = tiny_config(**{"train.eval_mc": "knowledge_ko", "train.eval_mc_shots": 1, "train.eval_test": False})
    record = store.create_run(config, name="mc-run")
    make_adapter(store.run_dir(record.run_id))
    store.update_run(record.run_id, status="completed", steps=3)
    calls = []
    real = multiple_choice.score_mc

    def counted(*args, **kwargs):  # the real scoring, on the first 3 questions of each set (seconds, not minutes)
        report = real(*args, **kwargs)
        calls.append([s.label for s in report.scores])
        return report

    monkeypatch.setattr(multiple_choice, "score_mc", counted)
    monkeypatch.setattr(jobs, "score_run_mc", functools.partial(multiple_choice.score_run_mc, limit=3))
    phases = []
    result = types.SimpleNamespace(steps=3, total_steps=3, test_examples=0)  # what a finished run's result says
    jobs.score_after_training(store, record.run_id, result, lambda event: phases.append(event.values["phase"]))
    assert calls == [["base", "adapter"]]
    summary = store.read_json(record.run_id, "mc.json")
    assert set(summary) == {"knowledge_ko"}
    for entry in summary.values():
        assert entry["shots"] == 1 and entry["base"]["count"] == entry["adapter"]["count"] == 3
        assert 0 <= entry["adapter"]["accuracy"] <= 1 and 0 <= entry["adapter"]["ece"] <= 1
    assert store.read_json(record.run_id, "mc-knowledge_ko.json")["shots"] == 1  # the whole report too
    assert any("multiple choice" in str(phase) for phase in phases)
    # A second run of the same base reuses the base's scores: only its adapter is scored.
    other = store.create_run(config, name="mc-run-2")
    make_adapter(store.run_dir(other.run_id), seed=1)
    jobs.score_after_training(store, other.run_id, result, lambda event: None)
    assert calls[1:] == [["adapter"]]
    assert store.read_json(other.run_id, "mc.json")["knowledge_ko"]["base"] == summary["knowledge_ko"]["base"]
    assert multiple_choice.MC_SETS["both"] == ("knowledge_en", "knowledge_ko")
    change = multiple_choice.mc_change(summary)
    expected = (summary["knowledge_ko"]["adapter"]["accuracy"] - summary["knowledge_ko"]["base"]["accuracy"]) * 100
    assert change["mc_change"] == pytest.approx(expected, abs=0.06)
    workbench = Workbench(home)
    try:
        table = runs_frame(workbench, "en")
    finally:
        workbench.close()
    row = table[table["name"] == "mc-run"].iloc[0]
    assert row["MC accuracy"] == change["mc_accuracy"] and row["MC Δ points"] == change["mc_change"]
