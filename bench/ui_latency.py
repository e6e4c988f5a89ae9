"""How fast the app answers light calls while a run trains, against the same calls while it is idle.

    python bench/ui_latency.py [--seconds 60] [--steps 400] [--clients 1 8 30]

The app is started as its own process (`app.py` on a free port over a temporary home), as a user runs it. A
gradio_client in this process then calls two light endpoints in turn, a few times a second: `/list_runs` (the
Runs table) and `/poll_run` (the progress line and the loss chart of a run), first with nothing training
(idle), then while a classroom LoRA run trains in the app's background thread (started through the Train form,
stopped at the end). With --clients N, N clients (one thread each, as N browsers) poll at once. Printed per N:
p50 / p95 / p99 / max latency per phase and endpoint, and the training speed meanwhile against its speed with
nobody polling. The goal is p95 ≤ 300 ms while training. The last line is one JSON object with p95_ms_training,
p95_ms_idle and steps_per_min by number of clients.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIGHT_CALLS = ("/list_runs", "/poll_run")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(home.parent / "app.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--home", str(home), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def connect(url: str, app: subprocess.Popen, timeout: float = 180):
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            if app.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start (exit code {app.poll()}); see its log") from None
            time.sleep(1)


class LightClient:
    """Calls an endpoint the way a browser's request costs the server, with two plain HTTP requests (submit, then
    read the result stream). Several gradio_clients in this process would burn more CPU than the app they
    measure (1.3 of the 2 cores for 8 of them), so the bench would time itself."""

    def __init__(self, port: int) -> None:
        import uuid

        self.port = port
        self.session = uuid.uuid4().hex  # one session for the client's life, as a browser tab keeps one

    def _request(self, method: str, path: str, body: str | None = None) -> bytes:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"} if body else {})
            return connection.getresponse().read()
        finally:
            connection.close()

    def predict(self, *args, api_name: str):
        name = api_name.strip("/")
        body = json.dumps({"data": list(args), "session_hash": self.session})
        event_id = json.loads(self._request("POST", f"/gradio_api/call/{name}", body))
        stream = self._request("GET", f"/gradio_api/call/{name}/{event_id['event_id']}").decode("utf-8")
        if "event: complete" not in stream:
            raise RuntimeError(f"{api_name} did not complete: {stream[-300:]}")
        return json.loads(stream.rsplit("data:", 1)[1])

    def close(self) -> None:
        pass


def form(client, **by_label) -> dict:
    """start_run's keyword arguments from the Train form's labels; the rest keep the form's defaults."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/start_run"]["parameters"]
    return {p["parameter_name"]: by_label[p["label"]] for p in params if p.get("label") in by_label}


def measure(client, run_id: str, seconds: float, pause: float) -> dict[str, list[float]]:
    """Latencies (ms) of the light calls, in turn, for `seconds`."""
    times: dict[str, list[float]] = {name: [] for name in LIGHT_CALLS}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in LIGHT_CALLS:
            args = (run_id,) if name == "/poll_run" else ()
            started = time.perf_counter()
            client.predict(*args, api_name=name)
            times[name].append((time.perf_counter() - started) * 1000)
            time.sleep(pause)
    return times


def measure_clients(clients: list, run_id: str, seconds: float, pause: float) -> dict[str, list[float]]:
    """The same calls from several clients at once (one thread each), pooled."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(clients)) as pool:
        parts = list(pool.map(lambda c: measure(c, run_id, seconds, pause), clients))
    return {name: [t for part in parts for t in part[name]] for name in LIGHT_CALLS}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(times: dict[str, list[float]]) -> dict:
    every = [t for values in times.values() for t in values]
    out = {"calls": len(every), "p50_ms": percentile(every, 50), "p95_ms": percentile(every, 95),
           "p99_ms": percentile(every, 99), "max_ms": max(every)}
    for name, values in times.items():
        out[name] = {"calls": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def progress(client, run_id: str) -> tuple[str, int]:
    html, _ = client.predict(run_id, api_name="/poll_run")
    status = re.search(r"<b>(\w+)</b>", html)
    step = re.search(r"step (\d+) /", html)
    return (status.group(1) if status else "?"), int(step.group(1)) if step else 0


def speed(client, run_id: str, seconds: float) -> float:
    """Steps per minute of the training run over `seconds`, asked once at each end (the baseline: no clients)."""
    _, before = progress(client, run_id)
    started = time.monotonic()
    time.sleep(seconds)
    _, after = progress(client, run_id)
    return (after - before) / (time.monotonic() - started) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase")
    parser.add_argument("--steps", type=int, default=400, help="max steps of the run (it is stopped at the end)")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between calls")
    parser.add_argument("--clients", type=int, nargs="+", default=[1],
                        help="how many browsers poll at once; several numbers measure each (e.g. 1 8 30)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        home, port = Path(folder) / "home", free_port()
        app = start_app(home, port)
        try:
            url = f"http://127.0.0.1:{port}/"
            client = connect(url, app)
            clients = [LightClient(port) for _ in range(max(args.clients))]
            # A first run, so that /poll_run has a run to show while idle; it is stopped at once.
            fields = {"Max steps": args.steps, "Eval every": 0, "Probe every N steps": 0,
                      "Score the test split after training": False, "Checkpoint every": 0}
            first = client.predict(**form(client, **fields, **{"Run name": "latency-idle"}), api_name="/start_run")
            first_id = first["value"] if isinstance(first, dict) else first
            client.predict(first_id, api_name="/stop_run")
            while progress(client, first_id)[0] in ("queued", "running", "stopping"):
                time.sleep(1)
            for name in LIGHT_CALLS:  # warm-up
                for each in clients:
                    each.predict(*((first_id,) if name == "/poll_run" else ()), api_name=name)
            idle = {n: summary(measure_clients(clients[:n], first_id, args.seconds, args.pause))
                    for n in args.clients}

            result = client.predict(**form(client, **fields, **{"Run name": "latency-train"}), api_name="/start_run")
            run_id = result["value"] if isinstance(result, dict) else result
            while progress(client, run_id)[1] < 1:  # training for real: the first step is done
                time.sleep(0.5)
            alone = speed(client, run_id, args.seconds / 2)
            training, steps_per_min = {}, {}
            for n in args.clients:
                _, step_before = progress(client, run_id)
                started = time.monotonic()
                training[n] = summary(measure_clients(clients[:n], run_id, args.seconds, args.pause))
                status, step_after = progress(client, run_id)
                steps_per_min[n] = (step_after - step_before) / (time.monotonic() - started) * 60
            client.predict(run_id, api_name="/stop_run")
            for each in clients:
                each.close()
            client.close()
        finally:
            app.terminate()
            app.wait(timeout=60)

    print(f"light calls ({', '.join(LIGHT_CALLS)} in turn, {args.pause:g} s apart per client, {args.seconds:g} s "
          f"per phase); the run trains {alone:.1f} steps/min with nobody polling")
    for n in args.clients:
        for phase, numbers in (("idle", idle[n]), ("training", training[n])):
            per_call = " · ".join(f"{name} p95 {numbers[name]['p95_ms']:.0f} ms" for name in LIGHT_CALLS)
            print(f"  {n:2d} client(s) {phase:<9} {numbers['calls']:5d} calls · p50 {numbers['p50_ms']:6.1f} ms · "
                  f"p95 {numbers['p95_ms']:6.1f} ms · p99 {numbers['p99_ms']:6.1f} ms · max "
                  f"{numbers['max_ms']:6.1f} ms · {per_call}")
        print(f"  {n:2d} client(s): the run trained {steps_per_min[n]:.1f} steps/min meanwhile "
              f"({steps_per_min[n] / alone:.0%} of its speed alone); goal: training p95 ≤ 300 ms")
    print(json.dumps({
        "clients": args.clients, "steps_per_min_alone": round(alone, 1),
        "p95_ms_training": {n: training[n]["p95_ms"] for n in args.clients},
        "p95_ms_idle": {n: idle[n]["p95_ms"] for n in args.clients},
        "steps_per_min": {n: round(v, 1) for n, v in steps_per_min.items()},
        "idle": idle, "training": training}))


if __name__ == "__main__":
    main()
