"""Who sent an event: the `Viewer` behind a request (its logged-in account in classroom mode, else the single user),
and the run store as that viewer may use it. Every handler that reads or changes a run, file or vote goes through
these, so ownership is checked on the server whatever the browser sends."""

from __future__ import annotations

import gradio as gr

from workbench.app import Workbench
from workbench.classroom.access import Viewer
from workbench.runs.scoped import ScopedStore


def viewer_of(workbench: Workbench, request: gr.Request | None) -> Viewer:
    """The account behind the request. With none (the page being built; an event without a login, which the login
    wall lets through only outside classroom mode) the page's viewer: in classroom mode nobody, who sees only what
    is shared and changes nothing."""
    user = getattr(request, "username", None)
    return workbench.viewer(user) if user else workbench.page_viewer()


def store_of(workbench: Workbench, request: gr.Request | None) -> ScopedStore:
    return workbench.store_for(viewer_of(workbench, request))
