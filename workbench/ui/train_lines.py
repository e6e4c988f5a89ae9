"""The lines the Train tab writes, in the reader's language: the progress line beside Start, and the presets' names
in the preset picker."""

from __future__ import annotations

import functools
import html
import time
from typing import Any

from workbench.app import Workbench
from workbench.classroom.access import SINGLE_USER, Viewer
from workbench.i18n import catalogue, say, text
from workbench.presets import Preset, list_presets
from workbench.ui.i18n import derived


def preset_label(preset: Preset, lang: str) -> str:
    if preset.shared:
        return text("train.preset.shared", lang, name=preset.name)
    return text("train.preset.saved", lang, name=preset.name) if preset.saved else preset.name


def preset_choices(workbench: Workbench, lang: str | None = None,
                   viewer: Viewer = SINGLE_USER) -> list[tuple[Any, str]]:
    """The presets the viewer may load as (label, key): bundled, shared with the class, their own saved ones; as the
    page is built (lang None) a saved one's label is drawn by the browser."""
    presets = list_presets(workbench.preset_home(viewer), shared_home=workbench.class_home)
    if lang is None:
        return [(derived(f"train.preset.saved:{p.key}", functools.partial(preset_label, p)) if p.saved else p.name,
                 p.key) for p in presets]
    return [(preset_label(p, lang), p.key) for p in presets]


def status_words(status: str, lang: str) -> str:
    """A run's status in `lang` ("stopped" → "중지됨"); one without words stays as it is."""
    key = f"train.status.{status}"
    return text(key, lang) if key in catalogue("en") else status


def format_progress(snapshot: Any, lang: str = "en") -> str:
    """An HTML progress bar with step / total, ETA, speed and losses, in `lang`."""
    parts = [f"<b>{status_words(snapshot.status, lang)}</b>",
             text("train.progress.step", lang, step=snapshot.step, total=snapshot.total_steps or "?")]
    if snapshot.eta is not None:
        parts.append(text("train.progress.eta", lang, minutes=int(snapshot.eta // 60),
                          seconds=f"{int(snapshot.eta % 60):02d}"))
    if snapshot.tokens_per_s:
        parts.append(text("train.progress.speed", lang, speed=f"{snapshot.tokens_per_s:.0f}"))
    if snapshot.train_loss is not None:
        parts.append(text("train.progress.train_loss", lang, loss=f"{snapshot.train_loss:.4f}"))
    if snapshot.val_loss is not None:
        parts.append(text("train.progress.val_loss", lang, loss=f"{snapshot.val_loss:.4f}"))
    if snapshot.queue_position:
        parts.append(text("train.progress.queue", lang, position=snapshot.queue_position))
        if getattr(snapshot, "expected_start", None) is not None:  # after the runs ahead, at this machine's pace
            wait = max(0, round((snapshot.expected_start - time.time()) / 60))
            parts.append(text("train.progress.starts_in", lang, minutes=wait))
    # After the last step the bar sits at 100 % while the test split is scored: say so, or it looks stalled.
    if snapshot.phase:
        parts.append(f"<i>{html.escape(say(snapshot.phase, lang))}</i>")
    error = f"<div style='color:#b91c1c'>{html.escape(snapshot.error, quote=False)}</div>" if snapshot.error else ""
    return (f"<div>{' · '.join(parts)}</div><div style='background:#e5e7eb;border-radius:6px;height:14px'>"
            f"<div style='width:{100 * snapshot.fraction:.1f}%;background:#2563eb;height:14px;border-radius:6px'>"
            f"</div></div>{error}")
