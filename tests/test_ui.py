"""The web app end to end, driven only through its public API with gradio_client, as a remote user would.

The shared app (conftest.py's `app`: one real Workbench in a temporary home, in-process on a free port): check
data (bundled sample, an upload with bad lines, an unusable upload), start a tiny run from the Train form, poll it
to the end, chat with base and adapter side by side, then restart the app over the same home and find the run.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from appdriver import (  # noqa: E402
    APP_TESTS,
    CALL_TIMEOUT_S,
    PROMPT,
    SAMPLE,
    SAMPLE_PATH,
    _call,
    _figure,
    _form,
    _poll_until_finished,
    _returned,
    _runs,
    _text,
    _tiny_run_form,
    _train_points,
    _value,
)
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = APP_TESTS


@pytest.fixture(scope="module")
def started_run(app) -> str:
    """The tiny run, started through the Train form; it trains in the background while other tests go on."""
    result = _call(app, "/start_run", **_tiny_run_form(app))
    run_id = _value(result)
    assert isinstance(run_id, str) and re.fullmatch(r"\d{8}-\d{6}-lora-\w+", run_id), result
    if isinstance(result, dict):  # the Run dropdown is refreshed to list the new run
        assert run_id in [choice[1] for choice in result["choices"]]
    return run_id


def test_start_run_rejects_a_bad_form_value_by_its_field_name(app):
    before = set(_runs(app))
    with pytest.raises(AppError) as caught:
        _call(app, "/start_run", **_tiny_run_form(app, **{"Learning rate": -1}))
    assert str(caught.value).startswith("Learning rate: -1 is out of range; choose a value from 1e-08 to 1."), \
        caught.value
    assert set(_runs(app)) == before  # nothing was registered


@pytest.mark.parametrize(("label", "value", "allowed"), [("Batch size", 2000, "from 1 to 1024"),
                                                         ("Max seq len", 8, "from 16 to 131072"),
                                                         ("Rank r", 0, "from 1 to 256")])
def test_an_out_of_range_number_is_refused_by_its_label_with_the_config_range(app, label, value, allowed):
    """Gradio checks slider and number ranges itself, before any handler: its error must name the field too, and
    the range is the config's own (the form offers exactly what a run accepts)."""
    before = set(_runs(app))
    with pytest.raises(AppError) as caught:
        _call(app, "/start_run", **_tiny_run_form(app, **{label: value}))
    assert str(caught.value).startswith(f"{label}: {value} is out of range; choose a value {allowed}."), caught.value
    assert set(_runs(app)) == before


def test_the_train_form_offers_exactly_what_the_config_accepts(app):
    """Every training setting's widget takes its range and choices from the config field itself."""
    import gradio as gr

    from workbench.config import TrainConfig, field_choices, field_help, field_label, field_range
    from workbench.i18n import text
    from workbench.ui.train_tab import FIELD_MIN_WIDTH

    widgets = [block for block in app.demo.blocks.values() if isinstance(block, gr.components.Component)]
    for name, default in vars(TrainConfig()).items():
        # Label and help come from the catalogues (the page shows them in the browser's language).
        [widget] = [w for w in widgets if getattr(w.label, "key", None) == f"train.{name}.label"]
        assert widget.info.key.startswith(f"train.{name}.help"), name
        assert text(widget.info.key, "en").startswith(field_help("train", name)), name
        label = field_label("train", name)
        assert "_" not in label, f"{name}: the screen shows the field's key"
        # In a row of settings each keeps room for its label (Gradio's default let a checkbox's label be crushed
        # to one word per line).
        assert widget.min_width >= FIELD_MIN_WIDTH, name
        if field_choices("train", name):
            assert [value for _label, value in widget.choices] == list(field_choices("train", name)), name
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            assert (widget.minimum, widget.maximum) == field_range("train", name), name


def test_check_data_sample_upload_and_unusable_file(app, started_run, tmp_path):
    # The sample: 160 good rows, split 128 / 16 / 16, previews and a length histogram per split.
    path, report, problems, histogram, *previews, headline = _call(app, "/check_data", SAMPLE, None, 0.1, 0.1, 0)
    assert path == SAMPLE_PATH
    assert "good: 160" in report and "bad: 0" in report
    assert _value(problems) is None and problems["visible"] is False  # no bad row: no file of them shown
    assert "training 128, validation 16, test 16" in report
    assert len(previews) == 3
    for preview in previews:
        assert {"prompt", "answer"} <= set(preview["headers"])
        assert preview["data"], "a preview table is empty"
    counts = {t["name"]: len(t["x"]) for t in _figure(histogram)["data"]}
    assert counts == {"train": 128, "val": 16, "test": 16}
    # Above Start, the Train tab says what a run will train on.
    assert re.search(r"en_ticket_triage .*128 train / 16 validation / 16 test rows · English · longest example "
                     r"\d+ tokens", headline), headline

    # An upload with 3 good rows, a broken JSON line (2) and an empty answer (4): bad lines named, good kept.
    rows = [json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi!"}),
            '{"instruction": "broken", "output": ',
            json.dumps({"instruction": "Add 2 and 3.", "input": "", "output": "5"}),
            json.dumps({"instruction": "Say nothing.", "input": "", "output": ""}),
            json.dumps({"instruction": "Name a colour.", "input": "one word", "output": "Blue"})]
    upload = tmp_path / "mixed.jsonl"
    upload.write_text("\n".join(rows) + "\n", encoding="utf-8")
    path, report, problems, histogram, *previews, _headline = _call(app, "/check_data", SAMPLE,
                                                                    handle_file(str(upload)), 0.1, 0.1, 0)
    saved = Path(path)
    assert saved.parent == app.home / "uploads" and saved.suffix == ".jsonl"
    assert saved.read_bytes() == upload.read_bytes()
    assert "good: 3" in report and "bad: 2" in report
    assert re.search(r"line 2: .*JSON", report), report
    assert re.search(r"line 4: .*output", report), report
    assert not re.search(r"line [135]:", report), report
    assert problems["visible"] is True
    bad_rows = pd.read_csv(_value(problems), encoding="utf-8-sig")  # every bad row, to fix the file by
    assert list(bad_rows.columns) == ["line", "field", "reason"] and list(bad_rows["line"]) == [2, 4]
    assert "JSON" in bad_rows["reason"][0] and bad_rows["field"][1] == "output"
    lines = {dict(zip(p["headers"], row))["line"] for p in previews for row in p["data"]}
    assert lines == {1, 3, 5}
    assert sum(len(t["x"]) for t in _figure(histogram)["data"]) == 3

    # A file with no good row is not used, and nothing of the data before it stays on screen as if it were this
    # file's: no data is chosen (the Train tab says so above Start) until a sample or a fixed file is.
    unusable = tmp_path / "unusable.jsonl"
    unusable.write_text('{"instruction": \n' + json.dumps({"instruction": "x", "output": ""}) + "\n",
                        encoding="utf-8")
    assert _call(app, "/check_data", SAMPLE, None, 0.1, 0.1, 0)[0] == SAMPLE_PATH
    path, report, problems, histogram, *previews, headline = _call(app, "/check_data", SAMPLE,
                                                                   handle_file(str(unusable)), 0.1, 0.1, 0)
    assert report.startswith("Not used:"), report
    assert "line 1" in report and "line 2" in report
    assert path == "" and "No data to train on" in headline, (path, headline)
    assert _value(problems) is None and problems["visible"] is False and histogram is None
    assert all(not preview["data"] for preview in previews)
    # Starting a run now is refused with the way out, not trained on the data shown before.
    with pytest.raises(AppError, match="No data chosen"):
        _call(app, "/start_run", **_tiny_run_form(app, **{"Data used for training": ""}))

    # Two good rows and a bad one with 10 % / 10 % shares: the bad row is reported all the same, the split's
    # problem beside it with its one-click fix; the file is kept, every good row shown as training data.
    tiny = tmp_path / "two-rows.jsonl"
    tiny.write_text("".join(json.dumps({"instruction": f"Say {w}.", "output": w}) + "\n" for w in ("hi", "bye"))
                    + '{"instruction": "no answer"}\n', encoding="utf-8")
    path, report, problems, _histogram, *previews, _headline = _call(app, "/check_data", SAMPLE,
                                                                     handle_file(str(tiny)), 0.1, 0.1, 0)
    assert "line 3" in report and "good: 2" in report and "bad: 1" in report, report
    assert "leave no training examples" in report and "set both shares to 0" in report, report
    assert _value(problems) and path.startswith(str(app.home / "uploads"))
    assert len(previews[0]["data"]) == 2 and not previews[1]["data"] and not previews[2]["data"]


def test_training_run_completes_with_progress_loss_curve_and_adapter(app, started_run):
    html, plot = _poll_until_finished(app, started_run)
    assert "<b>completed</b>" in html, html
    assert "step 3 / 3" in html
    x, y = _train_points(plot)
    assert x == [1, 2, 3]
    name = app.workbench.store.get_run(started_run).name
    assert {t["name"] for t in _figure(plot)["data"]} >= {f"{name} · train"}  # the legend names the run
    assert len(y) == 3 and all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in y), y

    row = _runs(app)[started_run]
    assert row["status"] == "completed" and row["steps"] == 3
    assert row["train loss"] == pytest.approx(y[-1], abs=1e-3)  # the table and the curve tell the same story
    app.state["train_y"] = y

    adapter = app.home / "runs" / started_run / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").stat().st_size > 10_000
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4


def test_a_korean_browser_gets_the_method_card_knobs_and_progress_line_in_korean(app, started_run):
    """What the Train tab writes follows the browser's language: the line beside Start (asked here by a client that
    sends a Korean browser's Accept-Language) and the card of the method picked; the knobs are drawn from the
    catalogues."""
    from gradio_client import Client

    from workbench.i18n import catalogue
    from workbench.methods.cards import method_card

    korean = catalogue("ko")
    client = Client(app.url, verbose=False, headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"})
    try:
        html, _plot = client.submit(started_run, api_name="/poll_run").result(timeout=CALL_TIMEOUT_S)
    finally:
        client.close()
    status = re.search(r"<b>(.+?)</b>", html).group(1)
    assert status in {korean[f"train.status.{s}"] for s in ("queued", "running", "stopping", "completed")}, html
    assert re.search(r"스텝 \d+ / (\d+|\?)", html), html

    # The method picker's handler (private: the page calls it), as a Korean and an English browser ask it.
    [on_method_change] = [f.fn for f in app.demo.fns.values() if getattr(f.fn, "__name__", "") == "on_method_change"]
    card, *knobs = on_method_change("dora", SimpleNamespace(headers={"accept-language": "ko-KR,ko;q=0.9"}))
    assert card == method_card("dora", "ko") and "크기(magnitude)와 방향(direction)" in card
    assert on_method_change("dora", None)[0] == method_card("dora", "en")
    assert sum(knob["visible"] for knob in knobs) == 4  # rank, alpha, dropout, targets
    import gradio as gr

    blocks = list(app.demo.blocks.values())
    label_keys = {getattr(getattr(block, "label", None), "key", None) for block in blocks}
    choice_keys = {getattr(name, "key", None) for block in blocks if isinstance(block, (gr.Dropdown, gr.Radio))
                   for name, _value in block.choices}
    assert {"method.rank.label", "method.targets.label"} <= label_keys
    assert {"methods.dora.label", "method.targets.choice.all-linear"} <= choice_keys


def test_compare_base_and_adapter_then_clear(app, started_run):
    if app.state.get("train_y") is None:
        pytest.skip("needs the finished run of the training test")
    # A fresh API session sees the adapter dropdown as built; refreshing it lists the new run (as in a browser).
    assert started_run in [choice[1] for choice in _call(app, "/list_adapters")["choices"]]

    job = app.client.submit(PROMPT, side_2=started_run, temperature=0.0, top_p=0.9, max_new_tokens=24, seed=0,
                            api_name="/compare")
    prompt, base, adapter, *_, base_stats, adapter_stats, _, _ = job.result(timeout=CALL_TIMEOUT_S)
    assert len(job.outputs()) >= 2, "the answers should stream in, not arrive at once"
    assert prompt == ""  # the prompt box is cleared for the next turn
    for chat, stats in ((base, base_stats), (adapter, adapter_stats)):
        assert [m["role"] for m in chat] == ["user", "assistant"]
        assert _text(chat[0]) == PROMPT
        assert _text(chat[1]).strip()
        assert "tokens" in stats and "tok/s" in stats
        new_tokens = int(re.match(r"\s*(\d+) tokens", stats).group(1))
        assert 1 <= new_tokens <= 24
    first_base_answer = _text(base[1])

    assert _call(app, "/clear_compare") == ([], [], [], [], "", "", "", "")

    # Side 2 off: the base side answers; the other panes stay empty. Cleared history + temperature 0:
    # the base answer is the same as before.
    prompt, base, adapter, *_, base_stats, adapter_stats, _, _ = _call(
        app, "/compare", PROMPT, side_2="off", temperature=0.0, top_p=0.9, max_new_tokens=24, seed=0)
    assert [m["role"] for m in base] == ["user", "assistant"]
    assert _text(base[1]) == first_base_answer
    assert "tok/s" in base_stats
    assert adapter == []
    assert adapter_stats == ""

    with pytest.raises(AppError, match="Prompt"):
        _call(app, "/compare", "   ", side_2="off", temperature=0.0, top_p=0.9, max_new_tokens=24, seed=0)


def test_settings_saved_as_a_preset_load_back_and_a_runs_settings_fill_the_form(app, started_run):
    save_form = _form(app, "/save_preset", **{label: value for label, value in {
        "Rank r": 12, "Max steps": 7, "Run name": "from-a-preset", "Base model": "embedded", "Method": "lora",
        "Data used for training": SAMPLE_PATH, "Preset name": "내 설정 1"}.items()})
    message, dropdown = _call(app, "/save_preset", **save_form)
    path = app.home / "presets" / "내 설정 1.yaml"
    assert "Saved preset **내 설정 1**" in message and path.is_file(), message
    assert _value(dropdown) == "saved:내 설정 1"
    assert ("내 설정 1 (saved)", "saved:내 설정 1") in [tuple(c) for c in dropdown["choices"]]
    assert ("classroom-lora", "classroom-lora") in [tuple(c) for c in dropdown["choices"]]

    loaded = _returned(app, "/load_preset", _call(app, "/load_preset", "saved:내 설정 1"))
    assert (loaded["Rank r"], loaded["Max steps"], loaded["Run name"]) == (12, 7, "from-a-preset")
    assert loaded["Data used for training"] == SAMPLE_PATH

    # Saving again under the same name keeps the first version beside it.
    first = path.read_text(encoding="utf-8")
    message, _dropdown = _call(app, "/save_preset", **{**save_form, **_form(app, "/save_preset", **{"Max steps": 9})})
    assert ".bak" in message
    assert path.with_name("내 설정 1.yaml.bak").read_text(encoding="utf-8") == first
    assert _returned(app, "/load_preset", _call(app, "/load_preset", "saved:내 설정 1"))["Max steps"] == 9

    for bad, reason in (("../escape", "no slashes"), ("lora", "bundled preset"), ("  ", "empty")):
        with pytest.raises(AppError, match=reason):
            _call(app, "/save_preset", **{**save_form, **_form(app, "/save_preset", **{"Preset name": bad})})
    assert sorted(p.name for p in (app.home / "presets").iterdir()) == ["내 설정 1.yaml", "내 설정 1.yaml.bak"]
    with pytest.raises(AppError, match="No saved preset named 'gone'"):
        _call(app, "/load_preset", "saved:gone")
    with pytest.raises(AppError, match="choose one of"):  # names only: the app reads no other file on its disk
        _call(app, "/load_preset", str(path))

    # A stored run's settings come back into the form: the tiny run was started with rank 4 and 3 steps.
    settings = _returned(app, "/load_run_settings", _call(app, "/load_run_settings", started_run))
    assert (settings["Method"], settings["Rank r"], settings["Max steps"]) == ("lora", 4, 3)
    assert settings["Probe every N steps"] == 0 and settings["Score the test split after training"] is False


def test_a_run_is_renamed_moved_to_the_trash_restored_and_the_trash_emptied(app):
    from workbench.config import RunConfig

    store = app.workbench.store
    record = store.create_run(RunConfig(), name="to-manage")
    store.update_run(record.run_id, status="completed", steps=1, total_steps=1)
    message, table, *_lists = _call(app, "/rename_run", record.run_id, "관리할 실행")
    assert "Renamed **to-manage** to **관리할 실행**" in message
    assert _runs(app)[record.run_id]["name"] == "관리할 실행"

    message, table, _runs_list, manage, trash = _call(app, "/delete_run", record.run_id)
    assert "to the trash" in message and record.run_id not in [row[0] for row in table["data"]]
    assert record.run_id not in _runs(app) and not store.run_dir(record.run_id).exists()
    assert record.run_id in [c[1] for c in trash["choices"]]
    assert record.run_id not in [c[1] for c in manage["choices"]]
    with pytest.raises(AppError, match="Delete: no run"):
        _call(app, "/delete_run", record.run_id)
    html, _plot = _call(app, "/poll_run", record.run_id)  # the Train tab still showing it says so, in place
    assert "no run" in html and "trash" in html

    message, table, *_lists = _call(app, "/restore_run", record.run_id)
    assert "Restored **관리할 실행**" in message and _runs(app)[record.run_id]["status"] == "completed"
    _call(app, "/delete_run", record.run_id)
    message, *_rest = _call(app, "/empty_trash")
    assert message.startswith("Deleted 1 run(s) for good") and store.trash() == []
    with pytest.raises(AppError, match="Restore: no run .* in the trash"):
        _call(app, "/restore_run", record.run_id)
    with pytest.raises(AppError, match="Rename: choose a run first"):
        _call(app, "/rename_run", None, "x")


def test_runs_survive_an_app_restart(app, started_run):
    train_y = app.state.get("train_y")
    if train_y is None:
        pytest.skip("needs the finished run of the training test")
    first = app.workbench
    app.restart()  # the app goes away and starts again over the same home, as when its process is restarted
    assert app.workbench is not first
    row = _runs(app)[started_run]
    assert row["status"] == "completed" and row["steps"] == 3
    html, plot = _call(app, "/poll_run", started_run)
    assert "<b>completed</b>" in html and "step 3 / 3" in html
    x, y = _train_points(plot)
    assert x == [1, 2, 3]
    assert y == pytest.approx(train_y)
    assert started_run in [c[1] for c in _call(app, "/list_adapters")["choices"]]



def test_a_finished_run_whose_labels_are_at_chance_says_so_under_its_progress_line(app):
    from dataclasses import asdict

    from workbench.config import RunConfig
    from workbench.evaluate.metrics import chance_levels
    from workbench.evaluate.scoring import EvalReport, ModelResult

    store = app.workbench.store
    record = store.create_run(RunConfig(), name="format-only")
    store.update_run(record.run_id, status="completed", steps=3, total_steps=3)
    references = ["Category: billing | Priority: low"] * 3 + ["Category: shipping | Priority: high"]
    levels = chance_levels(references)
    assert levels["Category"] == (0.75, "billing")

    def result(label: str, adapter: str | None, accuracy: float) -> ModelResult:
        return ModelResult(label, adapter, {"accuracy[Category]": accuracy, "accuracy[Priority]": 1.0},
                           ["x"] * 4, [{}] * 4, 1.0, 4)

    report = EvalReport("sample · test", ["q"] * 4, references,
                        [result("base", None, 0.25), result("adapter", "adapter", 0.75)])
    store.write_json(record.run_id, "eval.json", asdict(report))
    line, _plot = _call(app, "/poll_run", record.run_id)
    assert "<b>completed</b>" in line
    assert "Category is right 75% of the time, no better than always answering «billing»" in line
    assert "learned the answer&#x27;s format, not the task" in line and "Priority" not in line.split("⚠️", 1)[1]
