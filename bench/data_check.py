"""Checking a big data file: the CLI's `data check` vs the Data tab's check of the same file.

    python bench/data_check.py [--rows 500000] [--max-len 256] [--rounds 1]

Builds a JSONL file of short Alpaca rows (500,000 rows: about 35 MB) in a temporary folder, then times, one after
the other and for --rounds rounds (the best round of each counts):

- cli: `python -m workbench data check FILE` as a command (start-up, reading and validating every row, the report);
- read: the same reader in this process (workbench.data.examples.read_examples), without the start-up;
- describe: workbench.app.describe_data, what the Data tab shows: the same read, the split, the token lengths
  for the chart and the exact count of examples longer than --max-len (the model's tokenizer loaded beforehand, as
  the app does when it starts);
- tab: the Data tab's whole handler (describe_data, the kept copy of the upload, the chart and the previews).

The last line is one JSON object with rows, megabytes, cli_s, read_s, describe_s, tab_s, ratio (describe_s / cli_s:
the goal is at most 1.5) and tab_ratio (tab_s / cli_s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("the model learns a small update to each layer while the base weights stay frozen and the answers change "
         "format data rank alpha memory gradient step token batch loss curve adapter prompt question").split()


def build_file(path: Path, rows: int, seed: int = 0) -> Path:
    """`rows` short Alpaca rows (an instruction of 5 words, an answer of 2): about 70 bytes a row."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            instruction = f"Task {i}: " + " ".join(rng.choice(WORDS) for _ in range(3))
            out.write(json.dumps({"instruction": instruction, "output": " ".join(rng.choice(WORDS) for _ in range(2))})
                      + "\n")
    return path


def time_cli(path: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "data", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"data check failed:\n{proc.stderr[-2000:]}")
    return elapsed


def time_read(path: Path) -> float:
    from workbench.data.examples import read_examples

    start = time.perf_counter()
    read_examples(path)
    return time.perf_counter() - start


def time_describe(path: Path, max_len: int) -> tuple[float, int]:
    from workbench.data.view import _MEASURED, describe_data

    _MEASURED.clear()  # each round measures a first check, not a cached one
    start = time.perf_counter()
    view = describe_data(str(path), 0.1, 0.1, 0, max_len=max_len)
    return time.perf_counter() - start, view.truncated


def time_tab(path: Path, max_len: int, home: Path) -> float:
    import gradio as gr

    from workbench.app import Workbench
    from workbench.data.view import _MEASURED
    from workbench.ui.data_tab import build_data_tab

    with gr.Blocks():
        tab = build_data_tab(Workbench(home))
    from workbench.plots import warm

    warm()  # the app loads plotly's figure classes and template at start-up (app.py, warm_up), not on a first chart
    _MEASURED.clear()
    start = time.perf_counter()
    outputs = tab.on_check("en_ticket_triage", str(path), 0.1, 0.1, 0, max_len)
    elapsed = time.perf_counter() - start
    if "Not used" in str(outputs[1]):
        raise SystemExit(f"the Data tab refused the file: {outputs[1]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-tab", action="store_true", help="skip the Data tab's handler (no gradio import)")
    args = parser.parse_args()

    from workbench.models.loading import cached_tokenizer

    cached_tokenizer("embedded")  # the app loads it when it starts
    with tempfile.TemporaryDirectory() as folder:
        path = build_file(Path(folder) / "big.jsonl", args.rows)
        megabytes = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {megabytes:.1f} MB: {path}", file=sys.stderr)
        best: dict[str, float] = {}
        truncated = 0
        for round_no in range(1, args.rounds + 1):
            times = {"cli": time_cli(path), "read": time_read(path)}
            times["describe"], truncated = time_describe(path, args.max_len)
            if not args.no_tab:
                times["tab"] = time_tab(path, args.max_len, Path(folder) / "home")
            for name, seconds in times.items():
                best[name] = min(best.get(name, seconds), seconds)
            print(f"round {round_no}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()),
                  file=sys.stderr)
    ratio = best["describe"] / best["cli"]
    print(f"CLI data check {best['cli']:.2f} s (reader in-process {best['read']:.2f} s); describe_data "
          f"{best['describe']:.2f} s; ratio {ratio:.2f}" + (f"; Data tab handler {best['tab']:.2f} s" if "tab" in best
                                                            else ""))
    result = {"rows": args.rows, "megabytes": round(megabytes, 1), "cli_s": round(best["cli"], 3),
              "read_s": round(best["read"], 3), "describe_s": round(best["describe"], 3), "ratio": round(ratio, 3),
              "truncated": truncated}
    if "tab" in best:
        result |= {"tab_s": round(best["tab"], 3), "tab_ratio": round(best["tab"] / best["cli"], 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
