"""Classroom mode through the real HTTP API: a second student is refused every endpoint that takes another student's
run id, file or vote, and nothing of theirs changes; the lists a student gets hold only their own and shared things;
the Class tab's endpoints answer the teacher only.

One app in classroom mode (accounts teach / kim / lee, logged in over HTTP with gradio_client, as browsers do). Kim's
things are made directly in the store (a finished run with a real adapter, a run in the trash, an upload, a vote),
so the refusals are checked without training: each call is refused before any model loads.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from appdriver import CALL_TIMEOUT_S, _free_port, _tiny_run_form
from gradio_client import Client
from gradio_client.exceptions import AppError

from workbench.arena.votes import Vote
from workbench.classroom.access import Viewer
from workbench.classroom.accounts import hash_password, parse_accounts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFUSAL = "no run of yours"  # classroom.not_yours in English: the same whether the run exists or not
KOREAN_REFUSAL = "내 실행"
SECRET = "KIMS-SECRET-ANSWER-7c1"


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, make_adapter, tiny_config):
    from workbench.app import Workbench
    from workbench.ui.app import build_app, server_options

    home = tmp_path_factory.mktemp("classroom") / "home"
    accounts = parse_accounts("user,password,role\n"
                              f"teach,{hash_password('t-pass', iterations=1000)},teacher\n"
                              "kim,k-pass,student\nlee,l-pass,student\n")
    workbench = Workbench(home, accounts=accounts, max_waiting=2)
    store = workbench.store
    kim = Viewer("kim")

    def finished(name: str, owner: str, shared: bool = False) -> str:
        record = store.create_run(tiny_config(name=name), owner=owner)
        make_adapter(store.run_dir(record.run_id), seed=len(name))
        store.update_run(record.run_id, status="finished", steps=3, shared=int(shared))
        return record.run_id

    kims_run = finished("kims-run", "kim")
    store.write_json(kims_run, "scores.json", {"base": {"rougeL": 0.1}, "adapter": {"rougeL": 0.9}})
    trashed = finished("kims-deleted", "kim")
    store.delete_run(trashed)
    shared_run = finished("teachers-example", "teach", shared=True)
    upload = home.parent / "kims-data.jsonl"
    upload.write_text("".join(json.dumps({"prompt": f"q{n}", "completion": SECRET}) + "\n" for n in range(4)),
                      encoding="utf-8")
    kims_file = str(workbench.save_upload(upload, kim))
    workbench.votes.add(Vote(prompt="p", left_model="base", right_model="kims-run", left_answer="a",
                             right_answer=SECRET, choice="right", owner="kim"))

    demo = build_app(workbench)
    port = _free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                        show_error=True, auth=workbench.login, **server_options())
    url = f"http://127.0.0.1:{port}/"
    clients = {user: Client(url, auth=(user, password), verbose=False)
               for user, password in (("kim", "k-pass"), ("lee", "l-pass"), ("teach", "t-pass"))}
    yield {"workbench": workbench, "kims_run": kims_run, "trashed": trashed, "shared_run": shared_run,
           "kims_file": kims_file, **clients}
    for client in clients.values():
        client.close()
    demo.close()
    workbench.close()


def _refused(client: Client, api_name: str, expected: str = REFUSAL, **kwargs) -> str:
    with pytest.raises(AppError) as caught:
        client.submit(api_name=api_name, **kwargs).result(timeout=CALL_TIMEOUT_S)
    message = str(caught.value)
    assert expected in message, (api_name, message)
    assert SECRET not in message and "kims-run" not in message, (api_name, message)
    return message


def _start_form(client: Client, **by_name) -> dict:
    """The Train form's fields (a tiny run), with some changed by parameter name."""
    return {**_tiny_run_form(types.SimpleNamespace(client=client)), **by_name}


def _call(client: Client, api_name: str, **kwargs):
    return client.submit(api_name=api_name, **kwargs).result(timeout=CALL_TIMEOUT_S)


def test_a_student_is_refused_every_endpoint_that_takes_another_students_run(classroom):
    lee, run = classroom["lee"], classroom["kims_run"]
    before = classroom["workbench"].store.get_run(run)
    for api_name in ("/poll_run", "/stop_run", "/resume_run", "/load_run_settings", "/stored_scores",
                     "/export_zip", "/export_merge", "/delete_run"):
        _refused(lee, api_name, run_id=run)
    _refused(lee, "/rename_run", run_id=run, name="mine now")
    _refused(lee, "/export_push", run_id=run, repo="lee/stolen")
    for api_name in ("/overlay_runs", "/forgetting_runs", "/run_scores", "/run_lengths"):
        _refused(lee, api_name, run_ids=[run])
    _refused(lee, "/compare", prompt="hi", side_2=run)
    _refused(lee, "/answer_sheet", text="hi", csv_path=None, side_2=run)
    _refused(lee, "/new_battle", prompt="hi", candidates=["base", run])
    _refused(lee, "/evaluate", source="A run's test split", run_id=run, use_base=True, run_ids=[])
    _refused(lee, "/evaluate", source="A file or sample", path="sample:en_support_qa", run_ids=[run])
    _refused(lee, "/probe_forgetting", run_ids=[run])
    _refused(lee, "/multiple_choice", mc_set="knowledge_ko", shots=0, limit=1, style="letters", use_base=True,
             run_ids=[run])
    _refused(lee, "/start_run", **_start_form(lee, init_adapter=run))
    _refused(lee, "/restore_run", run_id=classroom["trashed"])
    # Nothing changed: the run, its name, its place; the deleted run still in the trash.
    after = classroom["workbench"].store.get_run(run)
    assert (after.name, after.status, after.owner) == (before.name, before.status, "kim")
    trash = [record.run_id for record, _when, _size in classroom["workbench"].store.trash()]
    assert classroom["trashed"] in trash


def test_a_refusal_is_in_the_students_language_and_the_same_for_a_run_that_does_not_exist(classroom):
    lee = classroom["lee"]
    missing = classroom["kims_run"][:-6] + "000000"
    assert _refused(lee, "/load_run_settings", run_id=missing) == _refused(lee, "/load_run_settings",
                                                                           run_id=classroom["kims_run"])
    korean = Client(lee.src, auth=("lee", "l-pass"), verbose=False, headers={"Accept-Language": "ko-KR,ko"})
    try:
        _refused(korean, "/load_run_settings", KOREAN_REFUSAL, run_id=classroom["kims_run"])
    finally:
        korean.close()


def test_a_student_cannot_read_another_students_file(classroom):
    lee, path = classroom["lee"], classroom["kims_file"]
    _refused(lee, "/evaluate", "refused", source="A file or sample", path=path, use_base=True, run_ids=[])
    _refused(lee, "/start_run", "refused", **_start_form(lee, data_path=path))
    _refused(lee, "/compare", "refused", prompt="hi", side_2="few-shot", shots_path=path)
    _refused(lee, "/class_share_data", "teacher", path=path)
    _refused(lee, "/multiple_choice", "refused", mc_set=path, shots=0, limit=1, style="letters", use_base=True,
             run_ids=[])
    kim = classroom["kim"]  # the owner reads it
    _call(kim, "/evaluate", source="A file or sample", path=path, use_base=False, run_ids=[classroom["kims_run"]],
          split="all", limit=1, max_tokens=8)


def test_lists_hold_only_the_students_own_and_shared_things(classroom):
    lee, kim, teach = classroom["lee"], classroom["kim"], classroom["teach"]
    kims, shared = classroom["kims_run"], classroom["shared_run"]

    def ids(listing) -> set[str]:
        return {value for _label, value in listing["choices"]}

    lee_runs = _call(lee, "/list_runs")
    assert kims not in json.dumps(lee_runs) and shared in json.dumps(lee_runs)
    assert kims in json.dumps(_call(kim, "/list_runs")) and kims in json.dumps(_call(teach, "/list_runs"))
    assert kims not in ids(_call(lee, "/list_adapters")) and shared in ids(_call(lee, "/list_adapters"))
    assert kims not in ids(_call(lee, "/list_candidates")) and kims in ids(_call(kim, "/list_candidates"))
    # Votes: the leaderboard and the export of a student hold their own votes only; the teacher's pool them.
    assert "kims-run" not in json.dumps(_call(lee, "/leaderboard", base_model="embedded"))
    assert "kims-run" in json.dumps(_call(teach, "/leaderboard", base_model="embedded"))
    with pytest.raises(AppError):  # lee has no votes to export
        _call(lee, "/export_votes")
    exported = _call(kim, "/export_votes")
    assert SECRET in Path(exported[0]).read_text(encoding="utf-8")
    # A shared run is read, never changed, by a student.
    _call(lee, "/load_run_settings", run_id=shared)
    _refused(lee, "/rename_run", run_id=shared, name="taken")
    _refused(lee, "/delete_run", run_id=shared)


def test_the_class_endpoints_answer_the_teacher_only(classroom):
    lee, teach, run = classroom["lee"], classroom["teach"], classroom["kims_run"]
    _refused(lee, "/class_overview", "teacher", metric="test rougeL")
    _refused(lee, "/class_export", "teacher")
    for api_name in ("/class_stop_run", "/class_pin_run", "/class_share_run", "/class_unshare_run"):
        _refused(lee, api_name, "teacher", run_id=run)
    _refused(lee, "/class_step_budget", "teacher", steps=1)
    _refused(lee, "/class_share_preset", "teacher", name="x")
    overview = _call(teach, "/class_overview", metric="test rougeL")
    table = json.dumps(overview[1])
    assert "kims-run" in table and "teachers-example" in table and "kim" in table
    board = overview[3]
    assert board["data"][0][1] == "kim" and board["data"][0][4] == 0.9  # kim's scored run leads
    csv_text = Path(_call(teach, "/class_export")).read_text(encoding="utf-8-sig")
    assert csv_text.splitlines()[0].startswith("owner,name,status") and "kims-run" in csv_text
    assert classroom["workbench"].step_budget == 0


def test_the_teacher_shares_a_data_file_and_every_student_can_then_use_it(classroom):
    lee, teach = classroom["lee"], classroom["teach"]
    message = _call(teach, "/class_share_data", path=classroom["kims_file"])
    shared = message.split("`")[1]
    assert Path(shared).is_file() and "class" in Path(shared).parts
    _call(lee, "/evaluate", source="A file or sample", path=shared, use_base=True, run_ids=[], split="all",
          limit=1, max_tokens=8)


def test_app_py_takes_a_classroom_file_and_refuses_a_bad_one_naming_the_line(tmp_path, monkeypatch, capsys):
    import app

    with pytest.raises(SystemExit):
        app.parse_args(["--classroom", "a.csv", "--auth", "u:p"])
    assert "--classroom has its own accounts" in capsys.readouterr().err
    args = app.parse_args(["--classroom", "a.csv", "--class-queue-limit", "3", "--class-step-budget", "40"])
    assert (args.classroom, args.class_queue_limit, args.class_step_budget) == ("a.csv", 3, 40)
    bad = tmp_path / "accounts.csv"
    bad.write_text("user,password,role\nteach,t,teacher\nkim,k,pupil\n", encoding="utf-8")
    for name in ("GRADIO_TEMP_DIR", "GRADIO_EXAMPLES_CACHE"):  # main() points Gradio at the home's cache
        monkeypatch.setenv(name, str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as stopped:
        app.main(["--home", str(tmp_path / "home"), "--classroom", str(bad)])
    assert "line 3" in str(stopped.value) and "pupil" in str(stopped.value)


def test_in_a_browser_the_teacher_sees_the_class_tab_and_a_student_does_not(classroom):
    import shutil

    from playwright import sync_api
    from playwright.sync_api import expect

    executable = next((c for c in ("/usr/bin/chromium", shutil.which("chromium")) if c and Path(c).is_file()), None)
    if executable is None:
        pytest.skip("no chromium for the browser tests: install Debian's with `apt-get install chromium`")
    url = classroom["lee"].src
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            for user, password, korean, sees in (("teach", "t-pass", True, True), ("lee", "l-pass", False, False)):
                context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                              locale="ko-KR" if korean else "en-US")
                # Logged in as the login form does it (its POST /login sets the session cookie for this browser).
                answer = context.request.post(f"{url}login", form={"username": user, "password": password})
                assert answer.ok, answer.status
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(url)
                runs_tab = "실행 기록" if korean else "Runs"
                expect(page.get_by_role("tab", name=runs_tab, exact=True)).to_be_visible()
                class_tab = page.get_by_role("tab", name="수업" if korean else "Class", exact=True)
                if sees:
                    expect(class_tab).to_be_visible()
                    class_tab.click()
                    page.get_by_role("button", name="↻ 새로 고침").click()
                    expect(page.get_by_text("kims-run").first).to_be_visible()
                    page.screenshot(path=str(ROOT / "tests" / "artifacts" / "class-teacher-ko.png"), full_page=True)
                else:
                    page.wait_for_timeout(1500)  # the page's load events have run
                    expect(class_tab).to_have_count(0)
                context.close()
        finally:
            browser.close()
