"""The fair order of a shared machine's queue: which waiting run trains next.

One run trains at a time. The next one is not the oldest but the oldest of the student who has waited longest since
their last run started (round-robin across students, first come first served within a student), so a student who
queues ten runs does not make the class wait: everyone else's first run goes before their second. Runs the teacher
moved to the front go first, in the order they were moved. The order is a function of what the store holds (who
owns each waiting run, when it was queued and pinned, when each student's last run started), so an app restarted
mid-lesson picks the queue up in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workbench.i18n import Message, message


@dataclass(frozen=True)
class Waiting:
    run_id: str
    owner: str  # "" outside classroom mode: one owner, so the order is first come, first served
    queued_at: float
    pinned_at: float | None = None  # when the teacher moved it to the front; None = its fair place


def fair_order(waiting: Sequence[Waiting], last_started: Mapping[str, float]) -> list[Waiting]:
    """The waiting runs in the order they will start, given when each owner's last run started."""
    pinned = sorted((w for w in waiting if w.pinned_at is not None), key=lambda w: (w.pinned_at, w.queued_at))
    queues: dict[str, list[Waiting]] = {}
    for run in sorted((w for w in waiting if w.pinned_at is None), key=lambda w: (w.queued_at, w.run_id)):
        queues.setdefault(run.owner, []).append(run)
    # An owner's turn comes by when they were last served: never (-1, …) first, then the real start times, then the
    # turns handed out below, in the order handed out.
    served = {owner: (0, at) for owner, at in last_started.items()}
    order = list(pinned)
    for turn, run in enumerate(pinned):
        served[run.owner] = (1, turn)
    turn = len(pinned)
    while queues:
        owner = min(queues, key=lambda o: (served.get(o, (-1, 0.0)), queues[o][0].queued_at))
        order.append(queues[owner].pop(0))
        served[owner], turn = (1, turn), turn + 1
        if not queues[owner]:
            del queues[owner]
    return order


def queue_refusal(owner: str, waiting: Sequence[Waiting], limit: int) -> Message | None:
    """Why `owner` may not queue another run (they have `limit` waiting already), or None. limit 0 = no limit."""
    mine = sum(run.owner == owner for run in waiting)
    if limit and mine >= limit:
        return message("classroom.queue.limit", limit=limit)
    return None


def expected_starts(order: Sequence[Waiting], now: float, busy_for: float,
                    durations: Mapping[str, float]) -> dict[str, float]:
    """When each waiting run should start: after what trains now (`busy_for` seconds more) and every run ahead of it
    (`durations`: expected seconds per run id; one not given counts as the mean of those given, or 0)."""
    known = [durations[run.run_id] for run in order if run.run_id in durations]
    typical = sum(known) / len(known) if known else 0.0
    starts, at = {}, now + busy_for
    for run in order:
        starts[run.run_id] = at
        at += durations.get(run.run_id, typical)
    return starts
