"""Logins, what the server binds to, and names and paths that try to leave the data folder, on the real app."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from appdriver import CALL_TIMEOUT_S, _free_port
from gradio_client import Client

from workbench.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import keep_gradio_analytics_light, launch_options, parse_args, read_accounts  # noqa: E402

pytestmark = pytest.mark.slow


def test_defaults_bind_this_machine_only_with_no_login():
    args = parse_args([])
    assert args.host == "127.0.0.1" and read_accounts(args.auth, args.auth_file) is None
    options = launch_options(args, None)
    assert options["server_name"] == "127.0.0.1" and options["share"] is False
    assert options["max_file_size"] == "200mb"
    with pytest.raises(SystemExit):
        parse_args(["--max-upload-mb", "0"])


def test_gradio_keeps_its_call_statistics_light_unless_the_operator_says_otherwise(monkeypatch):
    """Gradio's own defaults rebuild a table of 10,000 calls after every call (bench/ui_latency.py)."""
    import gradio as gr

    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    monkeypatch.setenv("GRADIO_ANALYTICS_MAX_EVENTS", "50")  # an operator's own choice stays
    keep_gradio_analytics_light()
    with gr.Blocks() as demo:
        gr.Markdown("x")
    demo.queue()
    assert demo._queue.ANAYLTICS_CACHE_FREQUENCY == 1000 and demo._queue.ANALYTICS_MAX_EVENTS == 50


def test_an_upload_over_the_cap_is_refused_and_one_under_it_is_kept(tmp_path):
    import requests

    from workbench.app import Workbench
    from workbench.ui.app import SESSIONS_KEPT, build_app

    workbench = Workbench(tmp_path / "home")
    demo = build_app(workbench)
    options = {**launch_options(parse_args(["--max-upload-mb", "1"]), None), "server_port": _free_port()}
    demo.queue().launch(prevent_thread_lock=True, quiet=True, **options)
    url = f"http://127.0.0.1:{options['server_port']}/gradio_api/upload"
    try:
        assert demo.state_session_capacity == SESSIONS_KEPT  # sessions kept in memory: capped (see server_options)
        big = requests.post(url, files={"files": ("big.jsonl", b"x" * (2 * 2**20))}, timeout=60)
        assert big.status_code == 413 and "maximum allowed size" in big.text, (big.status_code, big.text)
        small = requests.post(url, files={"files": ("small.jsonl", b'{"prompt": "a", "completion": "b"}\n')},
                              timeout=60)
        assert small.status_code == 200 and Path(small.json()[0]).read_bytes().startswith(b'{"prompt"')
    finally:
        demo.close()
        workbench.close()


def test_accounts_come_from_the_flag_and_a_file_and_bad_entries_are_named(tmp_path):
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# teachers\nkim:s3cret\n\n lee : pa:ss \n", encoding="utf-8")
    assert read_accounts("admin:pw", str(accounts)) == [("admin", "pw"), ("kim", "s3cret"), ("lee", " pa:ss")]
    with pytest.raises(ValueError, match="--auth: the value must look like USER:PASSWORD"):
        read_accounts("nopassword", None)
    accounts.write_text("kim:s3cret\nbroken\n", encoding="utf-8")
    with pytest.raises(ValueError, match="accounts.txt line 2: an entry must look like USER:PASSWORD"):
        read_accounts(None, str(accounts))
    accounts.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no accounts in it"):
        read_accounts(None, str(accounts))
    with pytest.raises(ValueError, match="cannot read it"):
        read_accounts(None, str(tmp_path / "missing.txt"))


def test_a_login_keeps_out_whoever_has_no_account_and_names_never_leave_the_home(tmp_path):
    import requests
    from gradio_client.exceptions import AppError

    from workbench.app import Workbench
    from workbench.config import RunConfig
    from workbench.ui.app import build_app

    workbench = Workbench(tmp_path / "home")
    demo = build_app(workbench)
    port = _free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                        auth=[("kim", "s3cret")])
    url = f"http://127.0.0.1:{port}/"
    try:
        assert requests.get(f"{url}config", timeout=30).status_code in (401, 403)  # nothing without a login
        with pytest.raises(Exception):  # noqa: B017 - the client cannot even read the API without a login
            Client(url, verbose=False, auth=("kim", "wrong"))
        client = Client(url, verbose=False, auth=("kim", "s3cret"))
        for bad in ("../../etc/passwd", "/etc", "..", "20260101-120000-lora-1a2b3c/../../x"):
            with pytest.raises(AppError, match="invalid run id"):
                client.submit(bad, api_name="/poll_run").result(timeout=CALL_TIMEOUT_S)
        with pytest.raises(AppError):
            client.submit("../../etc", api_name="/export_zip").result(timeout=CALL_TIMEOUT_S)
        record = workbench.store.create_run(RunConfig(name="../../escape"))
        assert workbench.store.run_dir(record.run_id).parent == workbench.store.root  # the name is not a path
        assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
        client.close()
    finally:
        demo.close()
        workbench.close()


def test_a_pickled_adapter_is_never_loaded(tmp_path):
    from workbench.config import ModelConfig, RunConfig
    from workbench.generate.engine import ChatEngine
    from workbench.train.jobs import resolve_init_adapter

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}', encoding="utf-8")
    (folder / "adapter_model.bin").write_bytes(b"not safetensors: a pickle could run code when loaded")
    with pytest.raises(ValueError, match=r"\.bin files are not read"):
        resolve_init_adapter(RunStore(tmp_path / "runs"),
                             RunConfig().with_overrides({"train.init_adapter": str(folder)}))
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        ChatEngine(ModelConfig()).ensure_adapter("pickled", folder)


def test_the_key_of_the_browsers_saved_choices_is_made_once_kept_and_owner_only(tmp_path):
    """Browsers keep their choices encrypted with a key of the workbench home: the same after a restart (else every
    reload after one would start from the defaults), readable by its owner only."""
    from workbench.app import Workbench

    first = Workbench(tmp_path / "home").browser_secret()
    path = tmp_path / "home" / "browser-secret"
    assert len(first) >= 24 and path.read_text(encoding="utf-8") == first
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Workbench(tmp_path / "home").browser_secret() == first  # an app restart: the same key
    assert Workbench(tmp_path / "other").browser_secret() != first
    assert not [p.name for p in (tmp_path / "home").iterdir() if p.name.startswith(".browser-secret")]
