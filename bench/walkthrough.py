"""A student's first hour, walked in a Korean-locale browser: Data → Train → Compare → Evaluate → Arena → Runs on
the Korean review sample, then a reload. Takes a screenshot of each tab and checks what a student would trip over:

- no "�" anywhere on the page (a Korean answer cut in half a syllable);
- the line above Start names the data, its rows per split and its language;
- Max new tokens follows the Korean answers' lengths in Compare, Evaluate and the Arena;
- after the run: "Compare it with the base →" opens Compare with the run on side 2, and the Arena's candidates
  hold it;
- a reload keeps the data, the form and the sides.

It launches the app on a fresh home in a temporary folder (the embedded model, no network) and Debian's chromium.
Several minutes on 2 CPU cores; not part of the test suite.

    .venv/bin/python bench/walkthrough.py [--out docs/screenshots] [--steps 12]

Prints one JSON line of what it checked and how long each stage took; exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SAMPLE = "ko_review_sentiment"
PROMPT = "다음 리뷰의 감정을 분류하세요.\n\n배송이 빠르고 포장도 꼼꼼해서 아주 만족스러웠어요."
RUN_NAME = "첫-실습"
LOAD_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("no chromium: install Debian's with `apt-get install chromium`")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "tests" / "artifacts" / "walkthrough"),
                        help="folder for the screenshots (docs/screenshots to retake the README's)")
    parser.add_argument("--steps", type=int, default=12, help="training steps of the run (default 12)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright import sync_api
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # a busy CPU: answers and tabs take their time

    from workbench.app import Workbench
    from workbench.data.view import describe_data
    from workbench.i18n import catalogue
    from workbench.ui.app import build_app, server_options

    home = Path(tempfile.mkdtemp(prefix="walkthrough-"))
    workbench = Workbench(home)
    demo = build_app(workbench)
    port = _free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                        **server_options())
    korean = describe_data(f"sample:{SAMPLE}", 0.1, 0.1, 0)
    KO = catalogue("ko")  # noqa: N806 - the page's words in a Korean browser
    checks: dict[str, bool] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal started
        seconds[name] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()

    def visible(locator):
        return locator.filter(visible=True)

    def tab(page, name: str) -> None:
        page.get_by_role("tab", name=name, exact=True).click()
        expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")

    def number(page, label: str):
        return visible(page.get_by_label(label, exact=True).or_(page.get_by_label(f"number input for {label}",
                                                                                  exact=True)))

    def set_number(page, label: str, value: float) -> None:
        box = number(page, label)
        box.fill(str(value))
        box.press("Tab")
        expect(box).to_have_value(str(value))

    def no_broken_characters(page, where: str) -> None:
        text = page.evaluate("document.body.innerText + [...document.querySelectorAll('textarea, input')]"
                             ".map(e => e.value).join(' ')")
        checks[f"no U+FFFD on {where}"] = "\ufffd" not in text

    def shot(page, name: str) -> None:
        page.screenshot(path=str(out / name), full_page=True)

    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ko-KR",
                                          timezone_id="Asia/Seoul")
            page = context.new_page()
            page.set_default_timeout(LOAD_S * 1000)
            page.goto(f"http://127.0.0.1:{port}/")
            tab(page, KO["tab.train"])  # a tab's content is drawn on its first visit
            trainable = KO["train.summary.trainable"].split(":**")[0].strip("*")  # the run summary, in Korean
            expect(page.get_by_text(f"{trainable}:").first).to_be_attached()
            stage("page load")

            # 1 · Data: the Korean sample; the report explains what Korean costs on this tokenizer.
            tab(page, KO["tab.data"])
            visible(page.get_by_label(KO["data.sample.label"], exact=True)).click()
            page.get_by_role("option", name=SAMPLE, exact=True).click()
            expect(page.get_by_label(KO["data.path.label"])).to_have_value(f"sample:{SAMPLE}")
            title = re.compile(rf"^\s*{KO['data.report.label']}\s*$")
            report = visible(page.locator(".block").filter(has=page.locator(
                '[data-testid="block-info"]', has_text=title))).locator("textarea")
            expect(report).to_have_value(re.compile("한국어 텍스트: 이 토크나이저는"))  # in the page's language
            checks["Korean note in the report"] = True
            shot(page, "data.png")
            stage("data")

            # 2 · Train: what will be trained is said above Start; a short run.
            tab(page, KO["tab.train"])
            line = page.get_by_text(re.compile(rf"학습 데이터: {SAMPLE} \(예제 데이터\) · 지시문 · "
                                               r"학습 128 / 검증 16 / 테스트 16행 · 한국어"))
            expect(line).to_be_visible()
            checks["line above Start names data, rows and language"] = True
            visible(page.get_by_label(KO["train.run_name.label"], exact=True)).fill(RUN_NAME)
            set_number(page, KO["train.max_steps.label"], args.steps)
            page.get_by_role("button", name=KO["train.start"], exact=True).click()
            step = KO["train.progress.step"].format(step=r"\d+", total=r"\d+")  # 스텝 \d+ / \d+
            progress = visible(page.locator(".html-container").filter(has_text=re.compile(step)))
            expect(progress).to_contain_text(KO["train.status.running"], timeout=LOAD_S * 1000)
            expect(progress).to_contain_text(KO["train.status.completed"], timeout=(LOAD_S + 60 * args.steps) * 1000)
            checks["progress line in Korean"] = True
            next_step = visible(page.get_by_role("button", name=KO["train.next.compare"], exact=True))
            expect(next_step).to_be_visible(timeout=30_000)
            shot(page, "train.png")
            stage("train")

            # 3 · Compare: the run is already on side 2; Max new tokens follows the Korean answers.
            next_step.click()
            side_2 = visible(page.get_by_label(KO["compare.side_2"], exact=True))
            expect(side_2).to_have_value(re.compile(re.escape(RUN_NAME)))
            checks["Compare opens with the run on side 2"] = True
            expect(number(page, KO["sampling.max_new_tokens"])).to_have_value(str(korean.new_tokens))
            checks[f"Compare's Max new tokens = {korean.new_tokens}"] = True
            visible(page.get_by_label(KO["compare.prompt"], exact=True)).fill(PROMPT)
            visible(page.get_by_role("button", name=KO["compare.send"], exact=True)).click()
            stats = visible(page.get_by_text(re.compile(r"^\s*\d+ tokens · first token .* tok/s")))
            expect(stats).to_have_count(2, timeout=LOAD_S * 1000)
            expect(visible(page.locator('[data-testid="status-tracker"]:not(.hide)'))).to_have_count(0)
            no_broken_characters(page, "Compare")
            shot(page, "compare.png")
            stage("compare")

            # 4 · Evaluate: from the Train tab's next step, the run's test split, four examples.
            tab(page, KO["tab.train"])
            visible(page.get_by_role("button", name=KO["train.next.evaluate"], exact=True)).click()
            expect(page.get_by_role("tab", name=KO["tab.evaluate"], exact=True)).to_have_attribute("aria-selected",
                                                                                               "true")
            expect(number(page, KO["sampling.max_new_tokens"])).to_have_value(str(korean.new_tokens))
            checks[f"Evaluate's Max new tokens = {korean.new_tokens}"] = True
            set_number(page, KO["evaluate.limit.label"], 4)
            visible(page.get_by_role("button", name=KO["evaluate.button"], exact=True)).click()
            exact_match = KO["metric.exact_match.name"]  # a column of the summary, in Korean
            expect(visible(page.get_by_text(exact_match).first)).to_be_visible(timeout=LOAD_S * 1000)
            expect(visible(page.locator('[data-testid="status-tracker"]:not(.hide)'))).to_have_count(
                0, timeout=LOAD_S * 1000)
            no_broken_characters(page, "Evaluate")
            shot(page, "evaluate.png")
            stage("evaluate")

            # 5 · Arena: the run is a candidate from the start; one blind battle and a vote.
            tab(page, KO["tab.arena"])
            candidates = visible(page.locator(".block").filter(has=page.get_by_label(KO["arena.candidates.label"],
                                                                                     exact=True)))
            expect(candidates).to_contain_text(RUN_NAME)
            checks["Arena candidates hold the run"] = True
            expect(number(page, KO["sampling.max_new_tokens"])).to_have_value(str(korean.new_tokens))
            visible(page.get_by_label(KO["compare.prompt"], exact=True)).fill(PROMPT)
            page.get_by_role("button", name=KO["arena.new_battle"], exact=True).click()
            status = visible(page.get_by_text(re.compile(f"{re.escape(KO['arena.answered'])}|"
                                                         f"{re.escape(KO['arena.answering'])}")))
            expect(status).to_contain_text(KO["arena.answered"], timeout=LOAD_S * 1000)
            page.get_by_role("button", name=KO["arena.vote.left"], exact=True).click()
            expect(visible(page.get_by_text(re.compile(r"모델 A는 .* 모델 B는 ")))).to_be_visible()
            no_broken_characters(page, "Arena")
            shot(page, "arena.png")
            stage("arena")

            # Runs, then a reload: the choices stay.
            tab(page, KO["tab.runs"])
            row = visible(page.locator(".virtual-row").filter(has=page.get_by_text(RUN_NAME, exact=True)))
            expect(row).to_have_count(1)
            visible(page.get_by_label(KO["runs.chart.label"], exact=True)).click()
            page.get_by_role("option", name=re.compile(re.escape(RUN_NAME))).first.click()
            page.keyboard.press("Escape")
            curves = visible(page.locator(".block").filter(has=page.get_by_text(KO["runs.loss.label"], exact=True)))
            expect(curves.locator(".js-plotly-plot")).to_contain_text(f"{RUN_NAME} · train")
            expect(visible(page.locator('[data-testid="status-tracker"]:not(.hide)'))).to_have_count(0)
            shot(page, "runs.png")
            page.reload()
            tab(page, KO["tab.train"])
            expect(visible(page.get_by_label(KO["train.run_name.label"], exact=True))).to_have_value(RUN_NAME)
            expect(line).to_be_visible()
            tab(page, KO["tab.data"])
            expect(page.get_by_label(KO["data.path.label"])).to_have_value(f"sample:{SAMPLE}")
            checks["a reload keeps the data and the form"] = True
            stage("runs and reload")
            browser.close()
    except (AssertionError, sync_api.Error) as exc:  # a check that failed: say which, keep the rest of the report
        checks[f"FAILED: {str(exc).splitlines()[0]}"] = False
    finally:
        demo.close()
        workbench.close()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"checks": checks, "seconds": seconds, "screenshots": str(out)}, ensure_ascii=False))
    return 0 if checks and all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
