"""What the served app reads, writes and answers, on the real app as `python app.py` starts it.

Two apps run side by side, each with a home and a login of its own, as two classes on one machine would: app A
with a --data-dir folder. Checked over real HTTP (plain requests and gradio_client): data comes only from a bundled
sample, an uploaded file or a --data-dir folder (an absolute path, a ../ path or a symlink to a secret file
elsewhere is refused and none of it comes back); each app keeps its uploads in its own Gradio cache and serves none
of the other's; with a login, every route but the login page refuses a visitor who has not logged in. And every CSV
the app writes has its spreadsheet formulas made inert.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
from appdriver import CALL_TIMEOUT_S, _free_port, _kwargs, _tiny_run_form, _value
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import parse_args  # noqa: E402

SECRET = "SECRET-4f9c-do-not-leak"
START_S = 240  # two apps loading on 2 shared cores
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "=cmd|' /C calc'!A0", "@SUM(A1)", "+1+cmd|x",
            "-2+3"]


@dataclass
class Served:
    url: str
    home: Path
    account: tuple[str, str]
    process: subprocess.Popen

    def session(self) -> requests.Session:
        """A logged-in HTTP session (the login form's POST /login, as the browser sends it)."""
        session = requests.Session()
        user, password = self.account
        answer = session.post(f"{self.url}login", data={"username": user, "password": password}, timeout=30)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        return session

    def client(self) -> Client:
        return Client(self.url, verbose=False, auth=self.account)


def _serve(home: Path, account: tuple[str, str], log: Path, *flags: str) -> Served:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "GRADIO_TEMP_DIR"}  # Gradio's default cache
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with open(log, "w", encoding="utf-8") as out:  # a file, not a pipe: a full pipe would stall the app
        process = subprocess.Popen([sys.executable, "app.py", "--home", str(home), "--port", str(port), "--auth",
                                    ":".join(account), *flags], cwd=ROOT, env=env, stdout=out, stderr=out)
    return Served(f"http://127.0.0.1:{port}/", home, account, process)


def _wait_until_up(served: Served, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while True:
        assert served.process.poll() is None, f"the app exited:\n{log.read_text(encoding='utf-8')[-3000:]}"
        assert time.monotonic() < deadline, f"the app did not start:\n{log.read_text(encoding='utf-8')[-3000:]}"
        try:
            if requests.get(served.url, timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.5)


def _stop(served: Served) -> None:
    served.process.terminate()  # SIGTERM: the app closes as on Ctrl+C
    try:
        served.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait(timeout=30)


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """(A, B, A's --data-dir folder, a secret file outside every allowed place)."""
    root = tmp_path_factory.mktemp("two-apps")
    allowed, secret = root / "class-data", root / "secret.jsonl"
    allowed.mkdir()
    secret.write_text(f'{{"prompt": "{SECRET} prompt", "completion": "{SECRET} answer"}}\n' * 4, encoding="utf-8")
    rows = [{"prompt": text, "completion": f"reference {n}"} for n, text in enumerate(FORMULAS)]
    pd.DataFrame(rows).to_json(allowed / "formulas.jsonl", orient="records", lines=True, force_ascii=False)
    (allowed / "link.jsonl").symlink_to(secret)  # inside the folder, pointing out of it
    first = _serve(root / "home-a", ("kim", "s3cret"), root / "a.log", "--data-dir", str(allowed))
    second = _serve(root / "home-b", ("lee", "pa55"), root / "b.log")
    try:
        _wait_until_up(first, root / "a.log")
        _wait_until_up(second, root / "b.log")
        yield first, second, allowed, secret
    finally:
        _stop(first)
        _stop(second)


def _eval_form(client: Client, path: str, **changes) -> dict:
    fields = {"Data": "A file or sample", "Run": None, "File": path, "Split": "all", "Limit": 2,
              "Include the base model": True, "Runs": [], "Max new tokens": 8,
              "Similarity": False, "Perplexity": False}
    return _kwargs(types.SimpleNamespace(client=client), "/evaluate", **{**fields, **changes})


def _refused(client: Client, api_name: str, form: dict, path: str) -> str:
    with pytest.raises(AppError) as caught:
        client.submit(api_name=api_name, **form).result(timeout=CALL_TIMEOUT_S)
    message = str(caught.value)
    assert path in message and "refused" in message, message  # which path was refused, named
    assert "sample:NAME" in message and "upload" in message and "--data-dir FOLDER" in message, message  # the way out
    assert SECRET not in message, message
    return message


def test_the_app_reads_data_only_from_samples_uploads_and_data_dirs(apps):
    served, _other, allowed, secret = apps
    client = served.client()
    escapes = [str(secret), os.path.relpath(secret, ROOT), f"{allowed}/../{secret.name}", str(allowed / "link.jsonl"),
               f"{served.home}/uploads/../../{secret.parent.name}/{secret.name}"]
    for path in escapes:
        _refused(client, "/evaluate", _eval_form(client, path), path)
    train = types.SimpleNamespace(client=client)
    for path in (str(secret), os.path.relpath(secret, ROOT)):
        _refused(client, "/start_run", _tiny_run_form(train, **{"Data used for training": path}), path)
    table, _choices = client.submit(api_name="/list_runs").result(timeout=CALL_TIMEOUT_S)
    assert not [row for row in table["data"] if dict(zip(table["headers"], row))["run id"]], table  # none began

    # A file under the --data-dir folder is read; its formulas reach the downloaded CSV inert.
    _summary, _legend, _bars, examples, csv_path = client.submit(
        api_name="/evaluate", **_eval_form(client, str(allowed / "formulas.jsonl"), Limit=0)).result(
        timeout=CALL_TIMEOUT_S)
    assert list(pd.DataFrame(examples["data"], columns=examples["headers"])["prompt"]) == FORMULAS
    saved = pd.read_csv(csv_path, encoding="utf-8-sig", keep_default_na=False)
    assert list(saved["prompt"]) == [f"'{text}" for text in FORMULAS]
    assert list(saved["reference"]) == [f"reference {n}" for n in range(len(FORMULAS))]

    # An uploaded file is kept in the uploads folder, and that copy is read.
    upload = allowed.parent / "mine.jsonl"
    upload.write_text("".join(f'{{"prompt": "Say hi {n}", "completion": "hi"}}\n' for n in range(3)), encoding="utf-8")
    kept = _value(client.submit("en_ticket_triage", handle_file(str(upload)), 0.0, 0.0, 0,
                                api_name="/check_data").result(timeout=CALL_TIMEOUT_S)[0])
    assert Path(kept).parent == served.home / "uploads", kept
    *_rest, uploaded_csv = client.submit(api_name="/evaluate", **_eval_form(client, kept)).result(
        timeout=CALL_TIMEOUT_S)
    assert all(prompt.startswith("Say hi") for prompt in pd.read_csv(uploaded_csv, encoding="utf-8-sig")["prompt"])
    form = _tiny_run_form(train, **{"Data used for training": str(allowed / "formulas.jsonl"), "Max steps": 1,
                                    "Batch size": 1, "Max seq len": 64, "Eval every": 0, "Validation share": 0.0,
                                    "Test share": 0.0})
    run_id = _value(client.submit(api_name="/start_run", **form).result(timeout=CALL_TIMEOUT_S))
    assert re.fullmatch(r"\d{8}-\d{6}-lora-\w+", run_id), run_id
    client.submit(run_id, api_name="/stop_run").result(timeout=CALL_TIMEOUT_S)
    client.close()


def test_each_app_keeps_its_uploads_in_its_home_and_serves_none_of_the_others(apps):
    first, second, _allowed, _secret = apps
    session_a, session_b = first.session(), second.session()
    sent = b'{"prompt": "only for class A", "completion": "yes"}\n'
    answer = session_a.post(f"{first.url}gradio_api/upload", files={"files": ("a.jsonl", sent)}, timeout=60)
    assert answer.status_code == 200, answer.text
    path = Path(answer.json()[0])
    assert path.is_relative_to((first.home / "cache" / "gradio").resolve()), path  # not a cache every app shares
    assert session_a.get(f"{first.url}gradio_api/file={path}", timeout=30).content == sent
    other = session_b.get(f"{second.url}gradio_api/file={path}", timeout=30)
    assert other.status_code == 403 and sent not in other.content, (other.status_code, other.text)


PUBLIC = ["/", "/theme.css", "/gradio_api/theme.css", "/favicon.ico"]
GUARDED_GET = ["/openapi.json", "/config", "/info", "/docs", "/redoc", "/gradio_api/info",
               "/gradio_api/openapi.json", "/gradio_api/app_id", "/gradio_api/token", "/gradio_api/user",
               "/gradio_api/runs", "/gradio_api/heartbeat/abc", "/gradio_api/queue/data?session_hash=abc",
               "/gradio_api/upload_progress?upload_id=abc", "/gradio_api/file=app.py",
               "/gradio_api/file=/etc/hostname", "/manifest.json", "/robots.txt", "/monitoring",
               "/gradio_api/deep_link?session_hash=abc", "/gradio_api/mcp/schema"]
GUARDED_POST = {"/gradio_api/queue/join": {"data": [], "fn_index": 0, "session_hash": "abc"},
                "/gradio_api/reset": {"event_id": "abc"}, "/gradio_api/cancel": {"event_id": "abc"},
                "/gradio_api/run/evaluate": {"data": []}, "/gradio_api/call/evaluate": {"data": []}}


def test_with_a_login_only_the_login_page_answers_a_visitor_who_has_not_logged_in(apps):
    served = apps[0]
    base = served.url.rstrip("/")
    for path in PUBLIC:
        assert requests.get(base + path, timeout=30).status_code == 200, path
    page = requests.get(base + "/", timeout=30).text
    assert "/evaluate" not in page and "named_endpoints" not in page and "Data used for training" not in page
    for path in GUARDED_GET:
        answer = requests.get(base + path, timeout=30, allow_redirects=False)
        assert answer.status_code in (401, 403), (path, answer.status_code, answer.text[:200])
        assert "/evaluate" not in answer.text and "start_run" not in answer.text, path
    for path, body in GUARDED_POST.items():
        answer = requests.post(base + path, json=body, timeout=30)
        assert answer.status_code in (401, 403), (path, answer.status_code, answer.text[:200])
    upload = requests.post(base + "/gradio_api/upload", files={"files": ("x.jsonl", b"{}")}, timeout=30)
    assert upload.status_code in (401, 403), upload.text

    bad = requests.post(base + "/login", data={"username": served.account[0], "password": "wrong"}, timeout=30)
    assert bad.status_code == 400
    session = served.session()  # logged in: the app works
    assert session.get(base + "/config", timeout=30).status_code == 200
    assert "/evaluate" in session.get(base + "/gradio_api/info", timeout=30).text
    assert "/evaluate" in session.get(base + "/", timeout=30).text  # the page after login describes the API again
    client = served.client()
    assert client.submit(api_name="/list_runs").result(timeout=CALL_TIMEOUT_S)
    client.close()


def test_every_csv_the_app_writes_has_its_formulas_made_inert(tmp_path):
    from workbench.fsio import write_csv

    cells = [*FORMULAS, "\tpadded", "\rback", "plain text", "-0.5", None]
    frame = pd.DataFrame({"prompt": cells, "score": [0.5, -0.5, 1, 2, 3, 4, 5, -6.25, 7, 8],
                          "@header": list("abcdefghij")})
    path = write_csv(tmp_path / "out.csv", frame)
    text = Path(path).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "prompt,score,'@header"
    saved = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False)
    expected = ["'=HYPERLINK(\"http://evil.example\",\"click\")", "'=cmd|' /C calc'!A0", "'@SUM(A1)", "'+1+cmd|x",
                "'-2+3", "'\tpadded", "'\rback", "plain text", "-0.5", ""]
    assert list(saved["prompt"]) == expected  # the number written as text stays as it was: it cannot run
    assert list(saved["score"]) == [0.5, -0.5, 1, 2, 3, 4, 5, -6.25, 7, 8]  # number columns untouched
    assert frame.loc[0, "prompt"] == FORMULAS[0]  # the caller's table is not changed


def test_no_module_writes_a_csv_but_through_write_csv():
    """write_csv is the one writer that neutralises formulas: no other code may write a CSV by itself."""
    offenders = []
    for source in sorted((ROOT / "workbench").rglob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\.to_csv\(|csv\.(writer|DictWriter)\(", line) and not (
                    source.name == "fsio.py" and "safe.to_csv(" in line):
                offenders.append(f"{source.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_data_path_check_names_the_path_and_the_way_out(tmp_path):
    from workbench.app import Workbench

    allowed, outside = tmp_path / "allowed", tmp_path / "outside.jsonl"
    allowed.mkdir()
    outside.write_text("{}\n", encoding="utf-8")
    (allowed / "escape.jsonl").symlink_to(outside)
    workbench = Workbench(tmp_path / "home", data_dirs=[allowed])
    assert workbench.check_data_path("sample:en_ticket_triage") == "sample:en_ticket_triage"
    assert workbench.check_data_path(f" {allowed}/a.jsonl ") == str(allowed.resolve() / "a.jsonl")
    kept = workbench.uploads / "x.jsonl"
    assert workbench.check_data_path(kept) == str(kept.resolve())
    for bad in (str(outside), f"{allowed}/../outside.jsonl", str(allowed / "escape.jsonl"), "relative.jsonl",
                f"{workbench.uploads}/../../outside.jsonl"):
        with pytest.raises(ValueError, match="refused") as caught:
            workbench.check_data_path(bad)
        assert "--data-dir FOLDER" in str(caught.value) and "upload the file" in str(caught.value).lower()
    for empty in ("", "  ", None):  # no data chosen (a failed upload): said as such, with the way out
        with pytest.raises(ValueError, match="No data chosen.*pick a bundled sample or upload a fixed file"):
            workbench.check_data_path(empty)
    workbench.close()
    assert parse_args(["--data-dir", str(allowed), "--data-dir", str(tmp_path)]).data_dir == [str(allowed),
                                                                                           str(tmp_path)]
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", str(tmp_path / "missing")])
