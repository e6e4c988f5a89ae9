"""Many users at once on the real app: ten gradio_client clients each start a run; the runs queue first in, first out
and train one at a time, all finish, and chat keeps answering meanwhile."""

from __future__ import annotations

import threading
import time

from appdriver import APP_TESTS, CALL_TIMEOUT_S, _call, _text, _tiny_run_form, _value
from gradio_client import Client

pytestmark = APP_TESTS

CLIENTS = 10


def test_ten_clients_start_runs_that_queue_train_one_at_a_time_and_all_finish(app):
    forms = [_tiny_run_form(app, **{"Max steps": 1, "Batch size": 1, "Max seq len": 64, "Eval every": 0,
                                    "Validation share": 0.0, "Test share": 0.0, "Run name": f"client-{i}"})
             for i in range(CLIENTS)]
    started: dict[int, str] = {}
    errors: list[BaseException] = []

    def start(index: int) -> None:  # each user has a client (and a session) of their own
        try:
            client = Client(app.url, verbose=False)
            job = client.submit(**forms[index], api_name="/start_run")
            started[index] = _value(job.result(timeout=CALL_TIMEOUT_S))
            client.close()
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT_S)
    assert not errors, errors
    run_ids = set(started.values())
    assert len(run_ids) == CLIENTS

    store, most_running, answered = app.workbench.store, 0, 0
    deadline = time.monotonic() + 600
    while True:
        statuses = [store.get_run(run_id).status for run_id in run_ids]
        most_running = max(most_running, statuses.count("running"))
        if all(status not in ("queued", "running") for status in statuses):
            break
        assert time.monotonic() < deadline, f"runs not finished: {statuses}"
        if "running" in statuses and answered < 2:  # chat answers while a run trains
            _prompt, *panes = _call(app, "/compare", "Say hi.", side_2="off", max_new_tokens=8)
            assert _text(panes[0][1]).strip()
            answered += 1
        time.sleep(0.5)
    assert statuses == ["completed"] * CLIENTS
    assert most_running == 1  # one training at a time; the others waited in the queue
    assert answered >= 1
    records = sorted((store.get_run(run_id) for run_id in run_ids), key=lambda r: r.created_at)
    finished = [r.updated_at for r in records]
    assert finished == sorted(finished)  # first in, first out
    assert {r.name for r in records} == {f"client-{i}" for i in range(CLIENTS)}

