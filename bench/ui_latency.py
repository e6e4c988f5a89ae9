"""How fast the app answers light calls while a run trains, against the same calls while it is idle.

    python bench/ui_latency.py [--seconds 60] [--steps 400]

The app is started as its own process (`app.py` on a free port over a temporary home), as a user runs it. A
gradio_client in this process then calls two light endpoints in turn, a few times a second: `/list_runs` (the
Runs table) and `/poll_run` (the progress line and the loss chart of a run), first with nothing training
(idle), then while a classroom LoRA run trains in the app's background thread (started through the Train form,
stopped at the end). Printed: p50 / p95 / p99 / max latency per phase and endpoint, and the training speed during
the measurement. The goal is p95 ≤ 300 ms while training. The last line is one JSON object with p95_ms_training,
p95_ms_idle and ratio (training p95 / idle p95).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase")
    parser.add_argument("--steps", type=int, default=400, help="max steps of the run (it is stopped at the end)")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between calls")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        home, port = Path(folder) / "home", free_port()
        app = start_app(home, port)
        try:
            client = connect(f"http://127.0.0.1:{port}/", app)
            # A first run, so that /poll_run has a run to show while idle; it is stopped at once.
            fields = {"Max steps": args.steps, "Eval every": 0, "Probe every N steps": 0,
                      "Score the test split after training": False, "Checkpoint every": 0}
            first = client.predict(**form(client, **fields, **{"Run name": "latency-idle"}), api_name="/start_run")
            first_id = first["value"] if isinstance(first, dict) else first
            client.predict(first_id, api_name="/stop_run")
            while progress(client, first_id)[0] in ("queued", "running"):
                time.sleep(1)
            for name in LIGHT_CALLS:  # warm-up
                client.predict(*((first_id,) if name == "/poll_run" else ()), api_name=name)
            idle = summary(measure(client, first_id, args.seconds, args.pause))

            result = client.predict(**form(client, **fields, **{"Run name": "latency-train"}), api_name="/start_run")
            run_id = result["value"] if isinstance(result, dict) else result
            while progress(client, run_id)[1] < 1:  # training for real: the first step is done
                time.sleep(0.5)
            _, step_before = progress(client, run_id)
            started = time.monotonic()
            training = summary(measure(client, run_id, args.seconds, args.pause))
            status, step_after = progress(client, run_id)
            steps_per_min = (step_after - step_before) / (time.monotonic() - started) * 60
            client.predict(run_id, api_name="/stop_run")
            client.close()
        finally:
            app.terminate()
            app.wait(timeout=60)

    print(f"light calls ({', '.join(LIGHT_CALLS)} in turn, {args.pause:g} s apart, {args.seconds:g} s per phase)")
    for phase, numbers in (("idle", idle), ("training", training)):
        per_call = " · ".join(f"{name} p95 {numbers[name]['p95_ms']:.0f} ms" for name in LIGHT_CALLS)
        print(f"  {phase:<9} {numbers['calls']:4d} calls · p50 {numbers['p50_ms']:6.1f} ms · p95 "
              f"{numbers['p95_ms']:6.1f} ms · p99 {numbers['p99_ms']:6.1f} ms · max {numbers['max_ms']:6.1f} ms · "
              f"{per_call}")
    print(f"  the run trained {steps_per_min:.1f} steps/min meanwhile ({status} at step {step_after}); goal: "
          f"training p95 ≤ 300 ms")
    print(json.dumps({"p95_ms_training": training["p95_ms"], "p95_ms_idle": idle["p95_ms"],
                      "ratio": round(training["p95_ms"] / idle["p95_ms"], 2), "steps_per_min": round(steps_per_min, 1),
                      "idle": idle, "training": training}))


if __name__ == "__main__":
    main()
