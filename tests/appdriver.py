"""Drive the real app through its public API, as a remote user would: launch it over a home on a free port, call
its endpoints by name or by their inputs' labels, read what comes back. Shared by the UI tests (not a test module).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

SAMPLE = "en_ticket_triage"
SAMPLE_PATH = f"sample:{SAMPLE}"
PROMPT = "Triage this customer message.\n\nI was charged twice for my order #1234."
SKIPPED = {"__type__": "update"}  # how gr.skip() arrives through the client: an update that changes nothing
TERMINAL = ("completed", "failed", "stopped", "cancelled", "interrupted")
# The marks of a module that drives the shared `app` (conftest.py), set as `pytestmark = APP_TESTS`: under pytest-xdist
# every such module runs on one worker (conftest's scheduler), so the app is launched and the model loaded once.
# Each module gets a session of its own, and torch keeps to one thread meanwhile.
APP_TESTS = [pytest.mark.slow, pytest.mark.usefixtures("own_session", "one_torch_thread")]
TRAIN_TIMEOUT_S = 300  # a 3-step run takes 20-60 s on 2 idle cores; far longer when the CPU is shared
CALL_TIMEOUT_S = 180


@dataclass
class App:
    home: Path
    url: str
    client: Client
    workbench: Any
    demo: Any
    state: dict = field(default_factory=dict)
    closed: bool = False

    def restart(self) -> None:
        """Close the app and launch it again over the same home, as when its process is restarted; this object
        then drives the new one (a new port, workbench and client)."""
        self.close()
        new = _launch(self.home)
        self.url, self.client, self.workbench, self.demo, self.closed = new.url, new.client, new.workbench, new.demo, \
            False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.close()
            self.demo.close()
            self.workbench.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(home: Path) -> App:
    from workbench.app import Workbench
    from workbench.ui.app import build_app, server_options

    workbench = Workbench(home)
    demo = build_app(workbench)
    port = _free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, show_error=True,
                        quiet=True, **server_options())  # as app.py launches it: the login wall, the catalogues
    url = f"http://127.0.0.1:{port}/"
    return App(home=home, url=url, client=Client(url, verbose=False), workbench=workbench, demo=demo)


def _call(app: App, api_name: str, *args: Any, timeout: float = CALL_TIMEOUT_S, **kwargs: Any) -> Any:
    return app.client.submit(*args, api_name=api_name, **kwargs).result(timeout=timeout)


def _value(update: Any) -> Any:
    """A component value that may arrive bare or inside a gr.update(...) dict."""
    return update["value"] if isinstance(update, dict) and update.get("__type__") == "update" else update


def _figure(plot: Any) -> dict:
    """A gr.Plot output through the client: {"type": "plotly", "plot": "<figure JSON>"}."""
    assert isinstance(plot, dict) and plot.get("type") == "plotly", plot
    figure = json.loads(plot["plot"])
    assert isinstance(figure.get("data"), list)
    return figure


def _train_points(plot: Any) -> tuple[list, list]:
    traces = [t for t in _figure(plot)["data"] if str(t.get("name", "")).endswith("train")]
    assert len(traces) == 1, [t.get("name") for t in _figure(plot)["data"]]
    return traces[0]["x"], traces[0]["y"]


def _text(message: dict) -> str:
    """A chatbot message's text; content comes back as a string or a list of {"type": "text", "text": ...}."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _runs(app: App) -> dict[str, dict]:
    table, _choices = _call(app, "/list_runs")
    return {row["run id"]: row for row in (dict(zip(table["headers"], r)) for r in table["data"])}


def _label(component: dict) -> str:
    """A component's label in the API description, in English: a label from the catalogues arrives as its key."""
    label = component.get("label", "")
    if isinstance(label, dict) and "key" in label:
        from workbench.i18n import text

        return text(label["key"], "en")
    return str(label)


def _form(app: App, endpoint: str = "/start_run", **by_label: Any) -> dict[str, Any]:
    """An endpoint's keyword arguments (param_0, param_1, ...) from the form's labels; the rest keep defaults."""
    params = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint][
        "parameters"]
    wanted = {label.lower(): value for label, value in by_label.items()}
    kwargs = {p["parameter_name"]: wanted.pop(_label(p).lower()) for p in params if _label(p).lower() in wanted}
    assert not wanted, f"the Train form has no fields labelled {sorted(wanted)}; it has " \
                       f"{[_label(p) for p in params]}"
    return kwargs


def _returned(app: App, endpoint: str, values: list) -> dict[str, Any]:
    """An endpoint's returned values by their components' labels."""
    returns = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint]["returns"]
    assert len(returns) == len(values)
    return {_label(r): _value(v) for r, v in zip(returns, values, strict=True)}


def _tiny_run_form(app: App, **changes: Any) -> dict[str, Any]:
    fields = {"Base model": "embedded", "Method": "lora", "Rank r": 4, "Max steps": 3, "Batch size": 2,
              "Max seq len": 128, "Eval every": 2, "Data used for training": SAMPLE_PATH,
              "Validation share": 0.05, "Test share": 0.05, "Split seed": 0, "Run name": "",
              # Probe and test-split scoring have their own UI tests (test_ui_eval.py); off to keep this run short.
              "Probe every N steps": 0, "Score the test split after training": False}
    return _form(app, **{**fields, **changes})


def _poll_until_finished(app: App, run_id: str, timeout: float = TRAIN_TIMEOUT_S) -> tuple[str, Any]:
    deadline, plot = time.monotonic() + timeout, SKIPPED
    while True:
        html, new_plot = _call(app, "/poll_run", run_id)
        plot = plot if new_plot == SKIPPED else new_plot  # an unchanged chart may be skipped, as in the browser
        status = re.search(r"<b>(\w+)</b>", html)
        if status and status.group(1) in TERMINAL:
            return html, plot
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} not finished after {timeout}s; last progress: {html}")
        time.sleep(1.5)


def _kwargs(app: App, endpoint: str, **by_label: Any) -> dict[str, Any]:
    """An endpoint's keyword arguments from its inputs' labels; unnamed inputs keep their defaults."""
    params = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint]["parameters"]
    labels = [_label(p).lower() for p in params]
    wanted = {label.lower(): value for label, value in by_label.items()}
    assert all(labels.count(label) == 1 for label in wanted), f"{endpoint}: labels not unique: {labels}"
    kwargs = {p["parameter_name"]: wanted.pop(label) for p, label in zip(params, labels) if label in wanted}
    assert not wanted, f"{endpoint} has no inputs labelled {sorted(wanted)}; it has {labels}"
    return kwargs
