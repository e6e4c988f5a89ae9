"""Builds the tabbed app around a Workbench; handlers stay thin and call the core."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from workbench.app import Workbench
from workbench.data.samples import list_samples
from workbench.i18n import text
from workbench.ui.arena_tab import build_arena_tab
from workbench.ui.class_tab import build_class_tab
from workbench.ui.compare_tab import CompareTab, build_compare_tab
from workbench.ui.data_tab import DataTab, build_data_tab
from workbench.ui.eval_tab import build_eval_tab
from workbench.ui.i18n import I18N, T, lang_of
from workbench.ui.runs_tab import build_runs_tab
from workbench.ui.sides import FEW_SHOT, OFF, side_choices
from workbench.ui.train_tab import TrainTab, build_train_tab
from workbench.ui.who import viewer_of

# The steps again in Korean, for the many students whose first language it is (kept as Markdown beside this file).
KOREAN_GUIDE = (Path(__file__).with_name("guide_ko.md")).read_text(encoding="utf-8")


def name_range_errors(demo: gr.Blocks) -> None:
    """Out-of-range numbers are refused by Gradio itself before any handler runs, as "Value 4 is less than minimum
    value 8." — no field named. Give every slider and number box an error that names its field, the value and
    the valid range (instance by instance: the component classes stay as they are)."""
    for block in demo.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)) and (block.minimum is not None or block.maximum is not None):
            block.preprocess = _named_preprocess(block, block.preprocess)


def _label_text(label: Any) -> str:
    """A label as text: one from the catalogues arrives as its key (the preprocess step has no browser to ask for
    its language, so English)."""
    key = getattr(label, "key", None)
    return text(key, "en") if key else str(label or "")


def _named_preprocess(block: gr.Slider | gr.Number, preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(payload: Any) -> Any:
        lo, hi = block.minimum, block.maximum
        number = isinstance(payload, (int, float)) and not isinstance(payload, bool)
        if number and ((lo is not None and payload < lo) or (hi is not None and payload > hi)):
            allowed = (f"from {lo:g} to {hi:g}" if lo is not None and hi is not None
                       else f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
            raise gr.Error(f"{_label_text(block.label) or 'A number'}: {payload:g} is out of range; choose a value "
                           f"{allowed}.")
        return preprocess(payload)

    return checked


# What a browser that is not logged in may load: the login page, what it draws with (Gradio's own script, style,
# font and image files, the theme, the icon), the login and logout routes, and the call `launch` itself makes to
# start the queue. Gradio 6.31 guards its API, upload and file routes with a login, but not FastAPI's
# /openapi.json (a list of every route), /gradio_api/app_id, /token, /user, /runs, /reset, /cancel, /heartbeat,
# /manifest.json, /robots.txt, /monitoring/KEY... (tests/test_app_files.py asks each).
PUBLIC_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                          "/gradio_api/startup-events"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")  # Gradio's bundled front-end files: no data of the app
# Gradio's login page still embeds the whole API description (every endpoint, its inputs and defaults) in the page;
# the login form does not use it, and the page after login gets it again. `<` is escaped inside it, so the first
# `;</script>` ends it.
API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)
REFUSED = {"detail": "Not authenticated: log in on the app's page first"}


class LoginWall:
    """ASGI middleware around Gradio's server: with a login configured, every request but the login page's needs
    the cookie of a logged-in account (401 otherwise), and the login page carries no API description. With no
    login it lets everything through, as Gradio does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        access = _access(scope) if scope["type"] in ("http", "websocket") else "open"
        if access in ("open", "public"):
            await self.app(scope, receive, send)
        elif access == "login page":
            await self.app(scope, receive, _without_api_info(send))
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await JSONResponse(REFUSED, status_code=401)(scope, receive, send)


def _access(scope: dict) -> str:
    """"open" (no login configured, or logged in), "login page", "public" (what the login page loads) or
    "refused"."""
    server = scope.get("app")  # Gradio's App: Starlette puts itself in the scope before any middleware runs
    if getattr(server, "auth", None) is None:  # no login configured (or another kind of auth): nothing to guard
        return "open"
    cookies = HTTPConnection(scope).cookies  # the names and store Gradio's /login uses
    token = cookies.get(f"access-token-{server.cookie_id}") or cookies.get(f"access-token-unsecure-{server.cookie_id}")
    if token is not None and token in server.tokens:
        return "open"
    path, root = scope["path"], scope.get("root_path", "")
    path = (path[len(root):] or "/") if root and path.startswith(root) else path  # served under a prefix
    if path == "/":
        return "login page"
    return "public" if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) else "refused"


def _without_api_info(send: Callable) -> Callable:
    """`send` for the login page: the page is held until its last byte, then sent without the API description."""
    start: dict = {}
    chunks: list[bytes] = []

    async def send_page(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = API_INFO.sub(b"window.gradio_api_info = null;</script>", b"".join(chunks), count=1)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return send_page


SESSIONS_KEPT = 1000


def server_options() -> dict:
    """What `launch` needs besides the address and login: the login wall around Gradio's server, and a cap on the
    sessions kept in memory.

    Each session (a browser tab, or an API call that names none) keeps its own copy of the page's settings, about
    half a megabyte for this page, and Gradio keeps up to 10,000 of them (5 GB). The app keeps the 1,000 used most
    recently: a class of browsers stays well inside it, and a script calling the API without a session cannot fill
    the memory.
    """
    return {"app_kwargs": {"middleware": [Middleware(LoginWall)]}, "state_session_capacity": SESSIONS_KEPT,
            "i18n": I18N}  # the page in the browser's language (Korean or English)


CHOICES_KEY = "peft-workbench-choices"  # where a browser keeps its choices (localStorage, encrypted)


def remember_choices(demo: gr.Blocks, workbench: Workbench, data: DataTab, train: TrainTab,
                     compare: CompareTab) -> None:
    """Each browser keeps its data, Train form and Compare sides across reloads and app restarts: saved in the
    browser whenever one changes, put back when the page opens. The page opens ready to train: the data checked
    (the default sample the first time) and the parameter count shown."""
    saved = gr.BrowserState({}, storage_key=CHOICES_KEY, secret=workbench.browser_secret())
    sides = {f"side_{n}": dropdown for n, dropdown in enumerate(compare.side_dropdowns, start=2)}
    remembered = {**train.form, "sample": data.sample_dropdown, **sides}

    def on_remember(**values):
        return {"version": 1, "form": {name: values[name] for name in train.form},
                "sample": values["sample"], "sides": {name: values[name] for name in sides}}

    def on_restore(choices: dict | None, request: gr.Request = None):
        choices = choices if isinstance(choices, dict) else {}
        viewer = viewer_of(workbench, request)
        updates, notes = train.restore(choices.get("form"), lang_of(request), viewer)
        samples = list_samples()
        if choices.get("sample") in samples:
            updates[data.sample_dropdown] = choices["sample"]
        options = side_choices(workbench, viewer)  # off, few-shot, then the trained runs, newest first
        values = [value for _label, value in options]
        trained = [value for value in values if value not in (OFF, FEW_SHOT)]
        # First visit: the newest trained run beside the base.
        picked = choices.get("sides") or {"side_2": trained[0] if trained else OFF}
        for name, dropdown in sides.items():
            pick = picked.get(name, OFF)
            updates[dropdown] = gr.update(choices=options, value=pick if pick in values else OFF)
        for note in notes:
            gr.Warning(note)
        return updates

    gr.on([component.change for component in remembered.values()], on_remember, inputs_kwargs=remembered,
          outputs=saved, api_visibility="private", show_progress="hidden", trigger_mode="always_last", queue=False)
    demo.load(on_restore, saved, list(remembered.values()), api_visibility="private").then(
        data.on_show, inputs_kwargs=data.show_inputs, outputs=data.outputs, api_visibility="private").then(
        train.on_form_change, inputs_kwargs=train.form, outputs=train.params_md, api_visibility="private")


def build_app(workbench: Workbench) -> gr.Blocks:
    """The whole UI. Per-browser state lives in gr.State; the Workbench is the only shared state."""
    # Gradio serves returned files only from the cwd, the temp dir or allowed paths; the workbench home is none of
    # these. Serve its exports folder (download zips and CSVs), nothing else of it.
    workbench.exports.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([workbench.exports])
    # transformers loads its modules lazily, and two threads doing it at once can fail ("cannot import name
    # AutoModelForCausalLM"): the first page load runs several handlers together. Load them here, once.
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    with gr.Blocks(title="PEFT Workbench") as demo:
        gr.Markdown(T("app.intro"))
        with gr.Accordion(T("app.guide"), open=False):
            gr.Markdown(KOREAN_GUIDE)
        with gr.Tabs() as tabs:
            with gr.Tab(T("tab.data"), id="data"):
                data = build_data_tab(workbench)
            with gr.Tab(T("tab.train"), id="train"):
                train = build_train_tab(workbench, data)
            with gr.Tab(T("tab.compare"), id="compare"):
                compare = build_compare_tab(workbench, data, train)
            with gr.Tab(T("tab.evaluate"), id="evaluate"):
                evaluation = build_eval_tab(workbench, data, train)
            with gr.Tab(T("tab.arena"), id="arena") as arena_tab:
                arena = build_arena_tab(workbench, data, train)
            with gr.Tab(T("tab.runs"), id="runs") as runs_tab:
                build_runs_tab(workbench, runs_tab)
            class_tab = build_class_tab(workbench) if workbench.in_class else None  # the teacher's only
        remember_choices(demo, workbench, data, train, compare)
        demo.load(train.on_page_load, None, train.run_dropdown, api_visibility="private")
        if class_tab is not None:
            demo.load(class_tab.on_page_load, None, class_tab.tab, api_visibility="private")
        arena_picks = [arena.candidates_dropdown, arena.picked_state]
        demo.load(arena.on_page_load, None, arena_picks, api_visibility="private")
        # A trained run's next step, one click away: its tab opens with the run already chosen.
        def on_compare_next(run_id: str, request: gr.Request = None):
            choices = side_choices(workbench, viewer_of(workbench, request))
            return gr.Tabs(selected="compare"), gr.update(choices=choices, value=run_id)

        def on_evaluate_next(run_id: str, request: gr.Request = None):
            return gr.Tabs(selected="evaluate"), *evaluation.pick(workbench, run_id, viewer_of(workbench, request))

        train.compare_next_btn.click(on_compare_next, train.run_dropdown, [tabs, compare.side_2_dropdown],
                                     api_visibility="private")
        train.evaluate_next_btn.click(
            on_evaluate_next, train.run_dropdown,
            [tabs, evaluation.source_radio, evaluation.split_run_dropdown, evaluation.models_dropdown],
            api_visibility="private")
        arena_tab.select(arena.on_leaderboard, arena.leaderboard_inputs, arena.leaderboard_outputs,
                         api_visibility="private")
        arena_tab.select(arena.on_open, arena_picks, arena_picks, api_visibility="private")
    name_range_errors(demo)
    return demo
