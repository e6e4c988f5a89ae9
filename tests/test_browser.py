"""The web app in a real headless browser (Playwright + Debian's chromium), clicked through as a person would.

The shared app (conftest.py's `app`: one real Workbench in a temporary home) and one browser page for the whole
flow, in named steps that run in order (a step whose earlier step failed skips and says so): upload the bundled
sample on the Data tab; start a long run from the Train form, watch the progress line and the loss chart update
live, stop it; pick the stopped run in Compare and chat with base and adapter side by side; fight one blind battle
in the Arena and vote. A full-page screenshot is kept after each step (in $WORKBENCH_ARTIFACTS, default
tests/artifacts/). Then the page in a Korean and an English browser: every tab with its settings open, screenshots of
each, and no English word left on the Korean page. Skips when chromium or playwright is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from appdriver import APP_TESTS

pytestmark = APP_TESTS

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
expect = sync_api.expect

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FILE = REPO / "workbench" / "data" / "samples" / "en_ticket_triage.jsonl"
ARTIFACTS = Path(os.environ.get("WORKBENCH_ARTIFACTS") or REPO / "tests" / "artifacts")
RUN_NAME = "browser-run"
MAX_STEPS = 200  # far more than the test waits for: the run is still training when Stop is pressed
PROMPT = "Triage this customer message.\n\nI was charged twice for my order #1234."
LONG_PROMPT = "Write a very long, detailed essay about the history of the Roman Empire, with many sections."
BATTLE_PROMPT = "Triage this customer message.\n\nMy parcel arrived damaged and the box was wet."
LOAD_S = 90  # the first model load (and the one-time conversion of the embedded model) is slow on 2 cores
STEP_S = 60  # one optimiser step of 1 × 64 tokens takes ~1 s; far longer when the CPU is shared
ANSWER_S = 120

# Error toasts are collected as they appear (they close by themselves, so a later look could miss one).
TOAST_WATCH = """
window.__toasts = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[data-testid="toast-body"]')) {
    if (!el.__seen) { el.__seen = true; window.__toasts.push({cls: String(el.className), text: el.innerText}); }
  }
}).observe(document, {childList: true, subtree: true});
"""

# The train curve's last step in the Loss chart: Gradio draws the plotly figure into a .js-plotly-plot div whose
# `data` holds the traces (named "<run> · train", "<run> · val", ...).
LAST_TRAIN_STEP = """
(block) => {
  const plot = block.querySelector('.js-plotly-plot');
  if (!plot || !Array.isArray(plot.data)) return null;
  const train = plot.data.find(t => String(t.name || '').endsWith('train'));
  return train && train.x && train.x.length ? Math.max(...train.x) : null;
}
"""

PAGE_LOADED = """
() => {
  const errors = (window.__toasts || []).filter(t => t.cls.split(/\\s+/).includes('error')).length;
  const params = document.body.textContent.includes('Trainable parameters:');
  const report = [...document.querySelectorAll('textarea')].some(t => /Rows read: \\d+/.test(t.value));
  return Number(params) + Number(report) + errors >= 2;
}
"""


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("no chromium for the browser tests: install Debian's with `apt-get install chromium`")


@pytest.fixture(scope="module")
def page(app):
    executable = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(TOAST_WATCH)
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(app.url)
            yield page
        finally:
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _toasts(page) -> list[dict]:
    return page.evaluate("window.__toasts || []")


def _errors_after(page, seen: int) -> list[str]:
    return [t["text"] for t in _toasts(page)[seen:] if "error" in t["cls"].split()]


def _dismiss_toasts(page) -> None:
    for close in _visible(page.locator(".toast-close")).all():
        close.click()
    expect(_visible(page.locator('[data-testid="toast-body"]'))).to_have_count(0)


def _wait_until_done(page, timeout_s: float) -> None:
    """Every event of the visible tab has finished: no status tracker is showing (pending or streaming)."""
    expect(_visible(page.locator('[data-testid="status-tracker"]:not(.hide)'))).to_have_count(
        0, timeout=timeout_s * 1000)


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def _visible(locator):
    """The one visible match: the Compare and Arena tabs share labels (Prompt, Max new tokens, ...)."""
    return locator.filter(visible=True)


def _set_number(page, label: str, value: float) -> None:
    """A gr.Number, or the number box beside a gr.Slider, set as typed by hand."""
    box = _visible(page.get_by_label(label, exact=True).or_(page.get_by_label(f"number input for {label}",
                                                                               exact=True)))
    for _attempt in range(3):  # a box in an accordion just opened may still take its first value after a fill
        box.fill(str(value))
        box.press("Tab")  # the value is sent on blur
        page.wait_for_timeout(300)
        if box.input_value() == str(value):
            break
    expect(box).to_have_value(str(value))


def _block(page, label: str):
    """A component's block by its label (e.g. a gr.Plot or gr.Chatbot)."""
    title = page.locator('[data-testid="block-label"]').filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return _visible(page.locator(".block").filter(has=title))


def _bot_texts(chatbot) -> list[str]:
    return chatbot.locator('[data-testid="bot"]').all_inner_texts()


def _wait_for_answer(chatbot, timeout_s: float) -> None:
    expect(chatbot.locator('[data-testid="bot"]').last).to_have_text(re.compile(r"\S"), timeout=timeout_s * 1000)


@pytest.fixture(scope="module")
def flow() -> dict:
    """What one step of the flow leaves for the next (the run it trained, the toasts seen so far)."""
    return {}


def _after(flow: dict, *needed: str) -> None:
    """Skip a step whose earlier step failed: it would only fail again, for the same reason."""
    missing = [key for key in needed if key not in flow]
    if missing:
        pytest.skip(f"an earlier step of the flow did not finish (no {', '.join(missing)})")


def test_1_the_page_loads_ready_to_train_with_a_korean_guide(app, page, flow):
    # The first page load checks the default sample (Data tab) and sums up the Train form (parameter count): wait
    # until both are done, each with its result or an error toast. (A tab's content is drawn on its first visit.)
    _tab(page, "2 · Train")
    page.wait_for_function(PAGE_LOADED, timeout=LOAD_S * 1000)
    # Errors while the page first loads are not the flow's; they are kept next to the screenshots.
    load_errors = _errors_after(page, 0)
    if load_errors:
        (ARTIFACTS / "00-page-load-errors.txt").write_text("\n\n".join(load_errors), encoding="utf-8")
        print("errors on the first page load:", *load_errors, sep="\n")
    _dismiss_toasts(page)
    flow["seen"] = len(_toasts(page))

    # The steps in Korean, one click away at the top of every tab.
    page.get_by_text("한국어 안내 · A guide in Korean", exact=True).click()
    expect(page.get_by_text(re.compile(r"Start training.*을 누르면 손실 곡선이 실시간으로"))).to_be_visible()
    page.get_by_text("한국어 안내 · A guide in Korean", exact=True).click()


def test_2_data_an_upload_is_validated_and_kept(app, page, flow, tmp_path):
    _after(flow, "seen")
    seen = flow["seen"]
    # --- 1 · Data: first a file with no usable row. Nothing of the sample shown before stays on screen as if it
    # were this file's, and the Train tab says there is no data; clearing the upload goes back to the sample.
    _tab(page, "1 · Data")
    upload = page.locator('input[type="file"][accept*=".jsonl"]')
    # The report's copy button sits inside its <label>, so the textarea has no accessible name: find it by title.
    report = _visible(page.locator(".block").filter(has=page.locator('[data-testid="block-info"]', has_text=re.compile(
        r"^\s*Validation report\s*$")))).locator("textarea")
    data_path = page.get_by_label("Data used for training")
    expect(data_path).to_have_value("sample:en_ticket_triage")
    preview_rows = _visible(page.locator(".virtual-row"))
    expect(preview_rows.first).to_be_visible()
    broken = tmp_path / "no-good-rows.jsonl"
    broken.write_text('{"instruction": "no answer"}\n{"output": "no question"}\n', encoding="utf-8")
    upload.set_input_files(str(broken))
    expect(report).to_have_value(re.compile(r"^Not used:"), timeout=LOAD_S * 1000)
    expect(data_path).to_have_value("")
    expect(preview_rows).to_have_count(0)
    expect(_block(page, "Token lengths").locator(".js-plotly-plot")).to_have_count(0)
    expect(page.get_by_text("No data to train on.")).to_be_attached()
    _dismiss_toasts(page)
    seen = flow["seen"] = len(_toasts(page))  # the failed upload's warning was expected
    _visible(page.get_by_label("Clear")).first.click()
    expect(data_path).to_have_value("sample:en_ticket_triage", timeout=30_000)
    expect(report).to_have_value(re.compile(r"good: 160"))
    expect(preview_rows.first).to_be_visible()

    # Then the sample file as an upload: it is validated and kept under the home's uploads folder.
    upload.set_input_files(str(SAMPLE_FILE))
    expect(data_path).to_have_value(re.compile(r"/uploads/"), timeout=LOAD_S * 1000)
    expect(report).to_have_value(re.compile(r"good: 160"), timeout=LOAD_S * 1000)
    expect(report).to_have_value(re.compile(r"bad: 0"))
    expect(data_path).to_have_value(re.compile(rf"^{re.escape(str(app.home / 'uploads'))}/.+\.jsonl$"))
    uploaded = Path(data_path.input_value())
    assert uploaded.read_bytes() == SAMPLE_FILE.read_bytes()
    expect(_block(page, "Token lengths").locator(".js-plotly-plot")).to_be_visible()
    assert _errors_after(page, seen) == []
    _shot(page, "01-data.png")

    flow["uploaded"] = uploaded


def test_3_train_a_run_watch_it_live_and_stop_it(app, page, flow):
    from workbench.models.adapters import has_trained_weights

    _after(flow, "uploaded")
    seen, uploaded = flow["seen"], flow["uploaded"]
    # --- 2 · Train: a long run on the upload, with the probe and test scoring off; watch it, then stop it.
    _tab(page, "2 · Train")
    # Above Start: what the run will train on.
    expect(page.get_by_text(re.compile(rf"Will train on {re.escape(uploaded.name)} · instructions · 128 train / 16 "
                                       r"validation / 16 test rows · English · longest example \d+ tokens"))
           ).to_be_visible()
    _visible(page.get_by_label("Run name", exact=True)).fill(RUN_NAME)
    _set_number(page, "Max steps", MAX_STEPS)
    _set_number(page, "Batch size", 1)
    _set_number(page, "Max seq len", 64)
    page.get_by_text("Forgetting: probe and mitigations", exact=True).click()
    _set_number(page, "Probe every N steps", 0)
    page.get_by_text("After training", exact=True).click()
    score_test = _visible(page.get_by_role("checkbox", name="Score the test split after training"))
    score_test.uncheck()
    expect(score_test).not_to_be_checked()
    page.get_by_role("button", name="Start training", exact=True).click()

    progress = _visible(page.locator(".html-container").filter(has_text=re.compile(r"step \d+ / ")))
    expect(progress).to_contain_text(re.compile(rf"running · step ([2-9]|\d\d+) / {MAX_STEPS}"),
                                     timeout=(LOAD_S + 2 * STEP_S) * 1000)
    loss = _block(page, "Loss")
    expect(loss.locator(".js-plotly-plot")).to_be_visible()
    runs = [r for r in app.workbench.store.list_runs() if r.name == RUN_NAME]  # other modules' runs share the app
    assert len(runs) == 1, runs
    run_id = runs[0].run_id
    # What the browser typed is what the run trains with.
    config = app.workbench.store.load_config(run_id)
    assert (config.train.max_steps, config.train.batch_size, config.train.max_seq_len) == (MAX_STEPS, 1, 64)
    assert config.train.general_every == 0 and config.train.eval_test is False
    assert config.data.path == str(uploaded)
    expect(_visible(page.get_by_label("Run shown"))).to_have_value(re.compile(re.escape(RUN_NAME)))

    # The chart follows the run: its train curve grows past the step it showed a moment ago.
    page.wait_for_function(f"(block) => ({LAST_TRAIN_STEP})(block) >= 2", arg=loss.element_handle(),
                           timeout=STEP_S * 1000)
    shown = loss.evaluate(LAST_TRAIN_STEP)
    shown_step = int(re.search(r"step (\d+) /", progress.inner_text()).group(1))
    _shot(page, "02-training.png")
    page.wait_for_function(f"([block, seen]) => ({LAST_TRAIN_STEP})(block) > seen",
                           arg=[loss.element_handle(), shown], timeout=STEP_S * 1000)
    expect(progress).not_to_contain_text(f"step {shown_step} /", timeout=STEP_S * 1000)
    assert _errors_after(page, seen) == []

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(progress).to_contain_text(re.compile(rf"stopped · step \d+ / {MAX_STEPS}"), timeout=STEP_S * 1000)
    assert any("Stopping at the next step" in t["text"] for t in _toasts(page)[seen:]), _toasts(page)
    stopped_step = int(re.search(r"step (\d+) /", progress.inner_text()).group(1))
    assert shown_step < stopped_step < MAX_STEPS
    record = app.workbench.store.get_run(run_id)
    assert record.status == "stopped" and record.steps == stopped_step, record
    adapter = app.workbench.store.adapter_dir(run_id)
    assert adapter.is_dir() and has_trained_weights(adapter), sorted(p.name for p in adapter.parent.rglob("*"))
    page.wait_for_function(f"([block, step]) => ({LAST_TRAIN_STEP})(block) === step",
                           arg=[loss.element_handle(), stopped_step], timeout=15_000)
    assert _errors_after(page, seen) == []
    _shot(page, "03-stopped.png")

    flow.update(run_id=run_id, stopped_step=stopped_step)


def test_4_compare_base_and_the_stopped_run_side_by_side_then_stop_an_answer(app, page, flow):
    _after(flow, "run_id")
    seen, run_id, stopped_step = flow["seen"], flow["run_id"], flow["stopped_step"]
    # --- 3 · Compare: the stopped run on side 2; base and adapter answer the same prompt side by side.
    # The stopped run's next step is one click away on the Train tab: Compare opens with the run on side 2.
    next_step = _visible(page.get_by_role("button", name="Compare it with the base →", exact=True))
    expect(next_step).to_be_visible(timeout=15_000)
    next_step.click()
    expect(page.get_by_role("tab", name="3 · Compare", exact=True)).to_have_attribute("aria-selected", "true")
    side_2 = _visible(page.get_by_label("Side 2", exact=True))
    expect(side_2).to_have_value(re.compile(rf"^{re.escape(RUN_NAME)} · lora · {stopped_step} steps"))
    base_pane = _block(page, "Side 1 · base model")
    run_pane = _block(page, f"Side 2 · {RUN_NAME} · {run_id.rsplit('-', 1)[-1]}")
    expect(run_pane).to_be_visible()
    _set_number(page, "Max new tokens", 16)
    prompt = _visible(page.get_by_label("Prompt", exact=True))
    prompt.fill(PROMPT)
    _visible(page.get_by_role("button", name="Send", exact=True)).click()
    for pane in (base_pane, run_pane):
        _wait_for_answer(pane, LOAD_S + ANSWER_S)
    _wait_until_done(page, ANSWER_S)  # the answers stream in; wait for the last token
    expect(prompt).to_have_value("")  # cleared for the next turn
    for pane in (base_pane, run_pane):
        expect(pane.locator('[data-testid="user"]')).to_contain_text("charged twice")
        texts = _bot_texts(pane)
        assert len(texts) == 1 and texts[0].strip(), texts
    stats = _visible(page.get_by_text(re.compile(r"^\s*\d+ tokens · first token .* tok/s")))
    expect(stats).to_have_count(2)
    for line in stats.all_inner_texts():
        assert 1 <= int(re.match(r"\s*(\d+) tokens", line).group(1)) <= 16, line
    assert _errors_after(page, seen) == []
    _shot(page, "04-compare.png")

    # Stop: a long answer is cut where it is; what streamed so far stays, and nothing more arrives.
    _set_number(page, "Max new tokens", 512)
    prompt.fill(LONG_PROMPT)
    _visible(page.get_by_role("button", name="Send", exact=True)).click()
    growing = base_pane.locator('[data-testid="bot"]').nth(1)
    expect(growing).to_have_text(re.compile(r"\S(.*\s){4}"), timeout=ANSWER_S * 1000)  # a few words in
    page.get_by_role("button", name="Stop", exact=True).filter(visible=True).click()
    # The answers end within a token of the click; the page shows it once the event's last step returns, which
    # takes a while on a CPU shared with another test worker.
    _wait_until_done(page, 90)
    kept = growing.inner_text()
    page.wait_for_timeout(3000)
    assert growing.inner_text() == kept and kept.strip()
    tokens = [int(re.match(r"\s*(\d+) tokens", line).group(1)) for line in stats.all_inner_texts()]
    assert all(0 < n < 512 for n in tokens), tokens  # cut short, far from the 512 asked for
    assert _errors_after(page, seen) == []



def test_5_arena_one_blind_battle_and_a_vote(app, page, flow):
    _after(flow, "seen", "run_id")
    seen, run_id = flow["seen"], flow["run_id"]
    # --- 5 · Arena: the base model and the run this page trained (picked when the tab opens: the page was loaded
    # before the run had an adapter), one blind battle and one vote.
    _tab(page, "5 · Arena")
    candidates = _visible(page.locator(".block").filter(has=page.get_by_label("Candidates", exact=True)))
    expect(candidates).to_contain_text("Base model")
    expect(candidates).to_contain_text(RUN_NAME)
    expect(candidates).not_to_contain_text("Base + few-shot")
    _set_number(page, "Max new tokens", 16)
    _visible(page.get_by_label("Prompt", exact=True)).fill(BATTLE_PROMPT)
    page.get_by_role("button", name="New battle", exact=True).click()
    model_a, model_b = _block(page, "Model A"), _block(page, "Model B")
    status = _visible(page.get_by_text(re.compile(r"Both answered|Model A and Model B are answering")))
    expect(status).to_contain_text("Both answered", timeout=(LOAD_S + ANSWER_S) * 1000)
    for pane in (model_a, model_b):
        texts = _bot_texts(pane)
        assert len(texts) == 1 and texts[0].strip(), texts
    assert "Model A was" not in status.inner_text()  # no names before the vote
    votes_before = app.workbench.votes.count()  # other modules vote in the shared app too
    page.get_by_role("button", name="A better", exact=True).click()
    reveal = _visible(page.get_by_text(re.compile(r"Model A was")))
    shown = rf"(base|{re.escape(RUN_NAME)}\S* · \w+)"
    expect(reveal).to_contain_text(re.compile(rf"You voted A is better\. Model A was {shown} · Model B was {shown}"),
                                   timeout=30_000)
    assert app.workbench.votes.count() == votes_before + 1
    vote = app.workbench.votes.list()[0]  # the newest
    assert vote.choice == "left" and vote.prompt == BATTLE_PROMPT
    assert {vote.left_model, vote.right_model} == {"base", app.workbench.run_label(run_id)}
    _wait_until_done(page, 30)  # the leaderboard is redrawn after the vote
    tally = re.compile(rf"^\s*{votes_before + 1} votes? between \d+ models")
    expect(_visible(page.get_by_text(tally))).to_be_visible()
    assert _errors_after(page, seen) == []
    _shot(page, "05-arena.png")



def test_6_data_tab_follows_the_train_tabs_max_length(app, page, flow):
    _after(flow, "run_id")
    seen = flow["seen"]
    report = _visible(page.locator(".block").filter(has=page.locator('[data-testid="block-info"]', has_text=re.compile(
        r"^\s*Validation report\s*$")))).locator("textarea")
    # --- 1 · Data again: the report and the histogram follow the Train tab's max length (64, set above).
    _tab(page, "1 · Data")
    expect(report).to_have_value(re.compile(r"\d+ example\(s\) are longer than the Train tab's max length \(Max seq "
                                            r"len 64\)"), timeout=30_000)
    histogram = _block(page, "Token lengths").locator(".js-plotly-plot")
    expect(histogram).to_contain_text("max length 64")
    assert _errors_after(page, seen) == []



def test_7_a_reload_keeps_the_choices_and_the_runs_table_lists_the_run(app, page, flow):
    _after(flow, "run_id", "uploaded")
    run_id, uploaded = flow["run_id"], flow["uploaded"]
    # --- A reload keeps this browser's choices: the data, the Train form and the Compare sides, not the defaults.
    page.reload()
    _tab(page, "2 · Train")
    page.wait_for_function(PAGE_LOADED, timeout=LOAD_S * 1000)
    expect(_visible(page.get_by_label("Run name", exact=True))).to_have_value(RUN_NAME)
    expect(_visible(page.get_by_label("Max steps", exact=True))).to_have_value(str(MAX_STEPS))
    expect(_visible(page.get_by_label("Max seq len", exact=True))).to_have_value("64")
    expect(page.get_by_text(re.compile(rf"Will train on {re.escape(uploaded.name)} · "))).to_be_visible()
    _tab(page, "1 · Data")
    expect(page.get_by_label("Data used for training")).to_have_value(str(uploaded))
    _tab(page, "3 · Compare")
    expect(_visible(page.get_by_label("Side 2", exact=True))).to_have_value(re.compile(rf"^{re.escape(RUN_NAME)} · "))
    # --- Runs: after a page reload the table lists the run this page trained (it is read again on each load, and
    # again when the tab opens), with no press of Refresh.
    _tab(page, "Runs")
    # Gradio draws the visible rows as div.virtual-row (the <table> beside them only sizes the columns).
    row = _visible(page.locator(".virtual-row").filter(has=page.get_by_text(RUN_NAME, exact=True)))
    expect(row).to_have_count(1, timeout=30_000)
    expect(row).to_contain_text(run_id)
    expect(row).to_contain_text("stopped")
    assert _errors_after(page, 0) == []


def test_8_korean_data_sets_the_answer_lengths_everywhere(app, page, flow):
    from workbench.data.view import describe_data

    _after(flow, "seen")
    korean = describe_data("sample:ko_review_sentiment", 0.1, 0.1, 0)
    # --- 1 · Data: a Korean sample. The report says what Korean costs on this tokenizer, and every max-new-tokens
    # field takes the data's own answer lengths (48 tokens would cut a Korean answer after ~15 syllables).
    _tab(page, "1 · Data")
    _visible(page.get_by_label("Bundled sample", exact=True)).click()
    page.get_by_role("option", name="ko_review_sentiment", exact=True).click()
    expect(page.get_by_label("Data used for training")).to_have_value("sample:ko_review_sentiment", timeout=30_000)
    report = _visible(page.locator(".block").filter(has=page.locator('[data-testid="block-info"]', has_text=re.compile(
        r"^\s*Validation report\s*$")))).locator("textarea")
    expect(report).to_have_value(re.compile(r"Korean text: this tokenizer spends about \d\.\d tokens per Hangul"))
    for tab, label in (("3 · Compare", "Max new tokens"), ("4 · Evaluate", "Max new tokens"),
                       ("5 · Arena", "Max new tokens"), ("2 · Train", "Max new tokens when scoring")):
        _tab(page, tab)
        if tab == "2 · Train":
            page.get_by_text("After training", exact=True).click()  # closed again after the reload
        box = _visible(page.get_by_label(label, exact=True).or_(page.get_by_label(f"number input for {label}",
                                                                                   exact=True)))
        expect(box).to_have_value(str(korean.new_tokens))
    expect(page.get_by_text(re.compile(r"Will train on ko_review_sentiment \(bundled sample\) · instructions · "
                                       r".* · Korean · longest example"))).to_be_visible()
    assert _errors_after(page, flow["seen"]) == []


def test_9_a_korean_browser_gets_the_korean_page(app, page):
    from workbench.i18n import catalogue

    korean = catalogue("ko")
    # --- The same app in a browser that asks for Korean: the tabs, the Data tab, the other tabs' words and what
    # handlers write (the line above Start) come from the Korean catalogue.
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ko-KR")
    try:
        ko_page = context.new_page()
        ko_page.goto(app.url)
        for key in ("tab.data", "tab.train", "tab.compare", "tab.evaluate", "tab.arena", "tab.runs"):
            expect(ko_page.get_by_role("tab", name=korean[key], exact=True)).to_be_visible(timeout=LOAD_S * 1000)
        _tab(ko_page, korean["tab.train"])
        line = ko_page.get_by_text(re.compile(r"학습 데이터: .* · 학습 \d+ / 검증 \d+ / 테스트 \d+행 · "))
        expect(line).to_be_visible(timeout=LOAD_S * 1000)
        _tab(ko_page, korean["tab.data"])
        for key in ("data.sample.label", "data.path.label", "data.val_size.label", "data.check.button"):
            expect(_visible(ko_page.get_by_text(korean[key], exact=True)).first).to_be_visible()
        expect(ko_page.get_by_text("Bundled sample", exact=True)).to_have_count(0)
        _shot(ko_page, "09-data-korean.png")
        # Compare's pane titles, Evaluate, the Arena and Runs: their words from the Korean catalogue too.
        shown = {"tab.compare": ("compare.pane.base",), "tab.evaluate": ("evaluate.button", "evaluate.limit.label"),
                 "tab.arena": ("arena.new_battle", "arena.candidates.label"),
                 "tab.runs": ("runs.chart.label", "runs.loss.label")}
        for tab, keys in shown.items():
            _tab(ko_page, korean[tab])
            for key in keys:
                expect(_visible(ko_page.get_by_text(korean[key], exact=True)).first).to_be_visible()
        expect(ko_page.get_by_text("Chart these runs", exact=True)).to_have_count(0)
    finally:
        context.close()


# --- Test 10: every tab in both languages, and no English left on the Korean page ------------------------------------

TAB_KEYS = ("data", "train", "compare", "evaluate", "arena", "runs")

# The words of the Korean page that stay in Latin letters on purpose: a Korean ML course writes them so. (Besides
# these: any one letter, a variable such as r, k, N or "모델 A"; case does not matter.)
TERMS_OF_ART = frozenset(word.lower() for word in (
    # methods and objectives, as PEFT and their papers name them
    "PEFT", "LoRA", "QLoRA", "DoRA", "rsLoRA", "LoHa", "LoKr", "VeRA", "AdaLoRA", "LLaMA-Adapter", "SFT", "DPO",
    "AdamW",
    # metrics, ratings and the tools and data sets behind them
    "ROUGE", "ROUGE-L", "BLEU", "chrF", "ECE", "Brier", "cloze", "SQuAD", "MMLU", "KMMLU", "lm-evaluation-harness",
    "sacrebleu", "n-gram", "exp", "Top-p", "Elo", "Bradley-Terry", "BT",
    # file formats, and the fields a data file must name as they are written
    "JSON", "JSONL", "CSV", "Parquet", "safetensors", "zip", "Alpaca",
    "instruction", "input", "output", "prompt", "completion", "messages", "chosen", "rejected",
    # machines, units, the Hub
    "GPU", "CPU", "CUDA", "MiB", "GiB", "MB", "GB", "ms", "Hugging", "Face", "Hub", "ID",
))
# What is not a word of the page's sentences: a token with code, a path, a file, sample or model name, an id or a
# number in it (`sample:ko_review_sentiment`, `runs/…`, `config.json`, `.jsonl`, `{n}`, `1e-4`, `SmolLM2-135M`), a
# value quoted as it is typed ('sft', 'embedded'), and the English term in brackets right after the Korean one, as
# Korean textbooks introduce a term: 저랭크 적응(Low-Rank Adaptation), 온도 (temperature).
CODE_TOKEN = re.compile(r"\S*(?:[_/:{}@=#\\\d]|\.\w)\S*")
QUOTED = re.compile(r"'[^'\n]{1,40}'")
GLOSS = re.compile(r"(?<=[가-힣])\s?\([A-Za-z][A-Za-z ,\-]*\)")
ENGLISH_WORD = re.compile(r"[A-Za-z]+(?:[-'’][A-Za-z]+)*")
# Not the page's words: code spans, the chats' messages, Gradio's own footer and its table filter box.
NOT_CHECKED = 'script, style, code, pre, footer, [data-testid="bot"], [data-testid="user"], .search-input'
PREVIEW_CELLS = '[role="tabpanel"] [role="tabpanel"] :is(tbody, .virtual-row)'  # the Data tab's rows: data, not UI

# The visible text under `root` (text, and what each text box shows: its value or else its placeholder), leaving out
# what `skip` matches.
VISIBLE_TEXT = """
([root, skip]) => {
  const shown = el => el.checkVisibility({visibilityProperty: true}) && !el.closest(skip);
  const texts = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.textContent.trim() && shown(node.parentElement)) texts.push(node.textContent.trim());
  }
  const boxes = 'input:not([type=checkbox], [type=radio], [type=range], [type=number], [type=file], [type=hidden]), '
    + 'textarea';
  for (const box of root.querySelectorAll(boxes)) {
    if (shown(box) && (box.value || box.placeholder)) texts.push(box.value || box.placeholder);
  }
  return texts;
}
"""


def _data_strings(app) -> list[str]:
    """What the page shows of the app's own data, named as it is stored: the runs (their names, the pickers' labels,
    their errors), the models the votes name, the bundled presets, the app's name. Longest first, so that a label
    goes before a name inside it."""
    from workbench.i18n import catalogue
    from workbench.presets import BUNDLED_DIR

    workbench = app.workbench
    records = workbench.store.list_runs()
    strings = {"PEFT Workbench", catalogue("ko")["app.guide"],  # the guide's title names both languages on purpose
               "embedded", *(path.stem for path in BUNDLED_DIR.glob("*.yaml")),
               *(r.name for r in records), *(r.error for r in records),
               *(label for trained in (False, True) for label, _run_id in workbench.run_choices(trained)),
               *(model for vote in workbench.votes.list() for model in (vote.left_model, vote.right_model))}
    return sorted((s for s in strings if s and s.strip()), key=len, reverse=True)


def _english_words(texts: list[str], data: list[str]) -> dict[str, str]:
    """{English word: the first text it is in} of the texts, outside the data, code and terms of art."""
    found: dict[str, str] = {}
    for text in texts:
        shown = text
        for name in data:
            shown = shown.replace(name, " ")
        shown = GLOSS.sub(" ", QUOTED.sub(" ", CODE_TOKEN.sub(" ", shown)))
        for word in ENGLISH_WORD.findall(shown):
            if len(word) > 1 and word.lower() not in TERMS_OF_ART:
                found.setdefault(word, text)
    return found


def _open_accordions(page) -> None:
    """Every closed accordion of the tab shown, nested ones too: their settings' labels and help are drawn."""
    closed = page.locator('[role="tabpanel"] button.label-wrap:not(.open)').filter(visible=True)
    for _ in range(30):
        if closed.count() == 0:
            return
        closed.first.click()
        page.wait_for_timeout(200)
    assert closed.count() == 0, "accordions that do not open"


def test_10_every_tab_in_both_languages_screenshots_and_no_english_left_on_the_korean_page(app, page):
    from workbench.i18n import catalogue

    # --- The app in a Korean and an English browser: every tab with its accordions open, a full-page screenshot of
    # each (10-ko-train.png, 10-en-train.png, ...); on the Korean page, every English word a tab shows outside the
    # terms of art above fails the test, named with its tab.
    english_left: dict[str, dict[str, str]] = {}
    for lang, locale in (("ko", "ko-KR"), ("en", "en-US")):
        words = catalogue(lang)
        context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}, locale=locale)
        context.add_init_script(TOAST_WATCH)
        try:
            other = context.new_page()
            other.set_default_timeout(30_000)
            other.goto(app.url)
            # Ready: the line above Start (written by the page's first load, in the page's language).
            _tab(other, words["tab.train"])
            headline = words["data.headline"].split("{", 1)[0].replace("*", "").strip()  # "학습 데이터:"
            expect(_visible(other.get_by_text(headline)).first).to_be_visible(timeout=LOAD_S * 1000)
            _wait_until_done(other, LOAD_S)
            for key in TAB_KEYS:
                _tab(other, words[f"tab.{key}"])
                _wait_until_done(other, LOAD_S)  # a tab's first visit draws it and runs its events
                _open_accordions(other)
                _wait_until_done(other, LOAD_S)
                other.wait_for_timeout(500)  # the charts of an opened accordion are drawn
                _shot(other, f"10-{lang}-{key}.png")
                if lang == "ko":
                    panel = other.locator('[role="tabpanel"]').filter(visible=True).first
                    skip = NOT_CHECKED + (f", {PREVIEW_CELLS}" if key == "data" else "")
                    texts = other.evaluate(VISIBLE_TEXT, [panel.element_handle(), skip])
                    assert len(texts) > 10, f"the {key} tab shows almost nothing: {texts}"
                    english_left[key] = _english_words(texts, _data_strings(app))
            if lang == "ko":  # the header and the tab names, and any message that popped up meanwhile
                body = other.locator("body").element_handle()
                texts = other.evaluate(VISIBLE_TEXT, [body, f'{NOT_CHECKED}, [role="tabpanel"]'])
                english_left["header"] = _english_words(texts + [t["text"] for t in _toasts(other)],
                                                        _data_strings(app))
        finally:
            context.close()
    left = {where: found for where, found in english_left.items() if found}
    assert not left, "English words left on the Korean page, by tab:\n" + "\n".join(
        f"{where}: {', '.join(sorted(found))}\n    in: " + " | ".join(dict.fromkeys(t[:120] for t in found.values()))
        for where, found in left.items())
