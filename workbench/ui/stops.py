"""Stop buttons that end a long event from the inside: the event checks its flag and returns as usual.

Gradio's own `cancels=` cancels the event's task; under load the page can miss the end of a cancelled event and
keep its spinners forever. A flag per browser session (and per kind of work) lets the event finish normally: what it
showed so far stays, and the page sees it end.
"""

from __future__ import annotations

import threading

import gradio as gr


class SessionStops:
    """One stop flag per browser session: Stop in one window ends that window's work only."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or ""

    def new(self, request: gr.Request | None) -> threading.Event:
        """A fresh flag for the work this session starts now (an older one of the session is replaced)."""
        event = threading.Event()
        with self._lock:
            self._events[self._key(request)] = event
        return event

    def stop(self, request: gr.Request | None) -> bool:
        """Set the session's flag; False when nothing of the session is running."""
        with self._lock:
            event = self._events.get(self._key(request))
        if event is None or event.is_set():
            return False
        event.set()
        return True

    def done(self, event: threading.Event) -> None:
        """The work ended: a late Stop has nothing to end (and the flag is dropped)."""
        event.set()
        with self._lock:
            for key, kept in list(self._events.items()):
                if kept is event:
                    del self._events[key]

    def handler(self, request: gr.Request) -> None:
        """A Stop button's event: sets the flag of the button's session (nothing running: nothing to do)."""
        self.stop(request)
