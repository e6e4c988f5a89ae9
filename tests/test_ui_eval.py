"""Evaluate, Runs and rank-sweep endpoints end to end through gradio_client, as a remote user would call them.

The shared app (conftest.py's `app`). One tiny run trains with the
forgetting probe on and its test split scored after training; then the Runs table and charts, an evaluation on a
Korean sample (Hangul kept through the tables and the CSV), the forgetting probe and a rank sweep are checked.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd
import pytest
from appdriver import APP_TESTS, CALL_TIMEOUT_S, TERMINAL, App, _call, _figure, _kwargs
from gradio_client.exceptions import AppError

pytestmark = APP_TESTS

RUN_NAME = "eval-tiny"
SWEEP_NAME = "tiny sweep"
TRAIN_TIMEOUT_S = 360  # 3 steps, the probe and scoring 6 test examples twice: ~1 minute on 2 idle cores
HANGUL = re.compile(r"[가-힣]")
SCORED = ("rougeL", "token_f1", "chrf", "similarity", "perplexity")


def _frame(table: dict) -> pd.DataFrame:
    return pd.DataFrame(table["data"], columns=table["headers"])


def _rows(table: dict) -> list[dict]:
    return _frame(table).to_dict("records")


def _eval_kwargs(app: App, **changes: Any) -> dict[str, Any]:
    fields = {"Data": "A file or sample", "Run": None, "File": "sample:ko_review_sentiment", "Split": "test",
              "Limit": 3, "Include the base model": True, "Runs": [], "Max new tokens": 8, "Perplexity": True}
    return _kwargs(app, "/evaluate", **{**fields, **changes})


@pytest.fixture(scope="module")
def run_id(app, tiny_config) -> str:
    """One tiny run with the forgetting probe on and its 6 test examples scored after training."""
    config = tiny_config(**{"name": RUN_NAME, "method.rank": 4, "data.test_size": 6, "train.general_every": 2,
                            "train.general_samples": 4, "train.eval_test": True, "train.eval_max_new_tokens": 8})
    record = app.workbench.jobs.submit(config)
    snapshot = app.workbench.jobs.wait(record.run_id, timeout=TRAIN_TIMEOUT_S)
    assert snapshot.status == "completed", snapshot
    assert app.workbench.store.read_json(record.run_id, "scores.json"), "the test split was not scored"
    return record.run_id


def test_bad_sweep_ranks_and_an_evaluation_without_models_are_refused(app):
    before = {r.run_id for r in app.workbench.store.list_runs()}
    form = _kwargs(app, "/queue_sweep", **{"Base model": "embedded", "Run name": "", "Ranks": "4, x"})
    with pytest.raises(AppError) as caught:
        _call(app, "/queue_sweep", **form)
    assert "'x'" in str(caught.value)

    with pytest.raises(AppError, match="none chosen"):
        _call(app, "/evaluate", **_eval_kwargs(app, **{"Include the base model": False}))
    assert {r.run_id for r in app.workbench.store.list_runs()} == before  # nothing was queued


def test_runs_table_has_rank_forgetting_and_test_scores(app, run_id):
    table, _choices = _call(app, "/list_runs")
    assert not [header for header in table["headers"] if "_" in header]  # words on screen, not field names
    row = {r["run id"]: r for r in _rows(table)}[run_id]
    assert row["name"] == RUN_NAME and row["status"] == "completed" and row["rank"] == 4
    assert isinstance(row["general Δ %"], float)
    scores = app.workbench.store.read_json(run_id, "scores.json")["adapter"]
    for metric in SCORED:
        assert row[f"test {metric.replace('_', ' ')}"] == pytest.approx(scores[metric], abs=1e-4), metric


def test_run_charts_loss_by_tokens_forgetting_scores_and_lengths(app, run_id):
    loss = _figure(_call(app, "/overlay_runs", [run_id], False, "tokens"))
    names = [t["name"] for t in loss["data"]]
    assert f"{RUN_NAME} · general" in names and f"{RUN_NAME} · train" in names
    general = next(t for t in loss["data"] if t["name"] == f"{RUN_NAME} · general")
    assert general["x"][0] == 0 and general["x"][-1] > 0  # placed by tokens seen, from before training on
    assert _figure(_call(app, "/overlay_runs", [run_id], True))["data"]  # the two-input call still works

    forgetting = _figure(_call(app, "/forgetting_runs", [run_id], "step"))
    assert f"{RUN_NAME} · general" in [t["name"] for t in forgetting["data"]]
    bars = _figure(_call(app, "/run_scores", [run_id]))
    assert {t["name"] for t in bars["data"]} == {"base", RUN_NAME}
    lengths = _figure(_call(app, "/run_lengths", [run_id, run_id]))  # the same data twice is drawn once
    assert [(t["name"], len(t["x"])) for t in lengths["data"]] == [(f"{RUN_NAME} · train", 160 - 8 - 6)]
    # No run picked: each chart says how to fill it (not "nothing logged", which reads as a broken run).
    for endpoint, args in (("/overlay_runs", ([], False)), ("/forgetting_runs", ([], "step")),
                           ("/run_scores", ([],)), ("/run_lengths", ([],))):
        empty = _figure(_call(app, endpoint, *args))
        assert not empty["data"] and "Pick one or more runs" in empty["layout"]["annotations"][0]["text"], endpoint


def test_evaluate_a_korean_sample_with_base_and_run(app, run_id):
    from workbench.data.examples import prompt_text
    from workbench.evaluate.scoring import load_examples

    summary, legend, bars, examples, csv_path = _call(app, "/evaluate", **_eval_kwargs(app, Runs=[run_id]))
    assert [r["model"] for r in _rows(summary)] == ["base", RUN_NAME]
    assert {"rougeL", "chrf", "similarity", "perplexity", "exact match", "token f1", "new tokens"} <= set(
        summary["headers"])
    assert not [header for header in summary["headers"] if "_" in header]  # wrapped between words, not inside one
    assert "**chrf**" in legend and "**exact match**" in legend and "lower is better" in legend.lower()
    assert "⚠️ similarity" in legend  # the English embedding model reads little Korean: the user is told
    assert {t["name"] for t in _figure(bars)["data"]} == {"base", RUN_NAME}

    expected = load_examples("sample:ko_review_sentiment", "test", 0.1, 0.1, 0, 3)
    rows = _rows(examples)
    assert [r["prompt"] for r in rows] == [prompt_text(ex) for ex in expected]
    assert [r["reference"] for r in rows] == [ex.answer for ex in expected]
    assert all(HANGUL.search(r["prompt"]) and HANGUL.search(r["reference"]) for r in rows)
    assert f"{RUN_NAME} · rougeL" in examples["headers"]

    assert csv_path.endswith(".csv")
    saved = pd.read_csv(csv_path, keep_default_na=False)  # an empty answer stays "" rather than NaN
    pd.testing.assert_frame_equal(saved, _frame(examples), check_dtype=False)
    assert list(app.home.joinpath("exports").glob("eval-*.csv")), "the CSV is kept under the workbench home"


def test_multiple_choice_scores_the_base_and_a_run_on_the_korean_set(app, run_id):
    notes, summary, reliability, subjects, questions, csv_path = _call(
        app, "/multiple_choice", mc_set="knowledge_ko", shots=1, limit=3, style="letters", use_base=True,
        run_ids=[run_id])
    rows = _rows(summary)
    assert [r["model"] for r in rows] == ["base", RUN_NAME] and all(r["questions"] == 3 for r in rows)
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["ECE"] <= 1 for r in rows)
    assert {t["name"].split(" ")[0] for t in _figure(reliability)["data"] if t.get("name")} >= {"base"}
    assert _figure(subjects)["data"], "accuracy per subject"
    picks = _frame(questions)
    assert len(picks) == 3 and {"base · choice", f"{RUN_NAME} · p"} <= set(picks.columns)
    assert all(HANGUL.search(q) for q in picks["question"])
    assert len(pd.read_csv(csv_path)) == 3
    with pytest.raises(AppError, match="Question set"):
        _call(app, "/multiple_choice", mc_set="", shots=0, limit=3, style="letters", use_base=True, run_ids=[])
    with pytest.raises(AppError, match="refused"):  # a file the app may not read
        _call(app, "/multiple_choice", mc_set="/etc/passwd.csv", shots=0, limit=3, style="letters", use_base=True,
              run_ids=[])


def test_stored_scores_show_the_test_split_scored_after_training(app, run_id):
    started = time.perf_counter()
    summary, _legend, _bars, examples, _csv = _call(app, "/stored_scores", run_id)
    assert time.perf_counter() - started < 10  # read back, not recomputed
    stored = app.workbench.store.read_json(run_id, "scores.json")
    rows = {r["model"]: r for r in _rows(summary)}
    assert set(rows) == {"base", RUN_NAME}
    assert rows[RUN_NAME]["rougeL"] == pytest.approx(stored["adapter"]["rougeL"], abs=1e-4)
    assert len(examples["data"]) == 6

    # Evaluate with the same split, models and options reuses them too: nothing is answered again.
    started = time.perf_counter()
    summary, *_rest = _call(app, "/evaluate", **_eval_kwargs(app, **{
        "Data": "A run's test split", "Run": run_id, "Limit": 0, "Runs": [run_id]}))
    assert time.perf_counter() - started < 10
    assert {r["model"]: r["rougeL"] for r in _rows(summary)} == pytest.approx(
        {"base": stored["base"]["rougeL"], RUN_NAME: stored["adapter"]["rougeL"]}, abs=1e-4)


def test_forgetting_probe_compares_each_run_with_the_base(app, run_id):
    change, table, curve = _call(app, "/probe_forgetting", [run_id], 3, 8)
    bars = [t for t in _figure(change)["data"] if t["type"] == "bar"]
    assert [t["name"] for t in bars] == [RUN_NAME]
    assert set(bars[0]["x"]) == {"perplexity", "similarity"}
    assert [r["model"] for r in _rows(table)] == ["base", RUN_NAME]
    assert f"{RUN_NAME} · general" in [t["name"] for t in _figure(curve)["data"]]


def test_rank_sweep_queues_one_run_per_rank_and_charts_them(app, run_id):
    form = _kwargs(app, "/queue_sweep", **{
        "Base model": "embedded", "Method": "lora", "Max steps": 1, "Batch size": 2, "Max seq len": 128,
        "Validation share": 0.03, "Test share": 0.03, "Probe every N steps": 0,
        "Score the test split after training": False, "Run name": SWEEP_NAME,
        "Ranks": "2, 4", "Keep alpha/rank": True})
    listing = _call(app, "/queue_sweep", **form)
    runs = {r.name: r.run_id for r in app.workbench.store.list_runs()}
    queued = [runs[f"{SWEEP_NAME} · rank {rank}"] for rank in (2, 4)]
    assert all(run in listing for run in queued), listing
    configs = [app.workbench.store.load_config(run) for run in queued]
    assert [(c.method.rank, c.method.alpha) for c in configs] == [(2, 4), (4, 8)]  # alpha/rank kept at 2

    for run in queued:  # one step each: quick enough to let them finish and chart real points
        assert app.workbench.jobs.wait(run, timeout=CALL_TIMEOUT_S).status in TERMINAL
    chart = _figure(_call(app, "/sweep_chart", SWEEP_NAME, "val_loss", []))
    by_rank = next(t for t in chart["data"] if t.get("xaxis", "x") == "x")
    assert by_rank["x"] == [2, 4]
    selected = _figure(_call(app, "/sweep_chart", "selected runs", "rougeL", [run_id]))
    assert selected["data"][0]["x"] == [4]
    with pytest.raises(AppError, match="No sweep named"):
        _call(app, "/sweep_chart", "no such sweep", "val_loss", [])


def test_stop_ends_an_evaluation_after_its_current_batch(app):
    with pytest.raises(AppError, match="nothing is being scored"):
        _call(app, "/stop_scoring")
    # 160 examples × up to 128 new tokens: minutes of work on 2 cores, if nothing stopped it.
    job = app.client.submit(api_name="/evaluate", **_eval_kwargs(app, **{
        "File": "sample:en_ticket_triage", "Split": "all", "Limit": 0, "Max new tokens": 128, "Perplexity": False}))
    started = time.monotonic()
    while True:  # the evaluation makes its Stop ready as it starts
        try:
            _call(app, "/stop_scoring")
            break
        except AppError:
            assert time.monotonic() - started < 120 and not job.done(), "the evaluation never started"
            time.sleep(0.2)
    stopped = time.monotonic()
    outputs = job.result(timeout=120)
    assert time.monotonic() - stopped < 45, "Stop did not end the evaluation after its current batch"
    assert all(out == {"__type__": "update"} for out in outputs), outputs  # no model in full: nothing replaced
    with pytest.raises(AppError, match="nothing is being scored"):
        _call(app, "/stop_scoring")  # it is over: a late Stop has nothing to end
