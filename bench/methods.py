"""Benchmark every method on the embedded model: speed, memory, size and loss after a fixed number of steps.

    python bench/methods.py [--steps 10] [--methods lora,ia3,...] [--out bench/results]

Each method trains in its own process (so peak memory is that method's alone) on the English sample with the
same data, batch, sequence length and seed. Printed: a table, with each method's seconds per step relative to
LoRA measured in the same invocation; written: a plotly chart (HTML) and a JSON file. The last line printed is
one JSON object with the table's rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure_one(method: str, steps: int) -> dict:
    """Train one method for `steps` steps in this process and return its numbers."""
    from workbench.config import RunConfig
    from workbench.methods.registry import get_method
    from workbench.train.loop import run_training

    spec = get_method(method)
    config = RunConfig().with_overrides({
        "method.name": method, "train.learning_rate": spec.learning_rate, "train.max_steps": steps,
        "train.batch_size": 4, "train.max_seq_len": 256, "train.eval_every": 0, "data.val_size": 16,
        "data.test_size": 0, "train.seed": 0, "train.general_every": 0, "train.eval_test": False,
    })
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_event(event) -> None:
        if event.kind == "step":
            now = time.perf_counter()
            step_times.append(now - last[0])
            last[0] = now
        elif event.kind == "start":
            last[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        result = run_training(config, out, on_event=on_event)
        adapter_bytes = sum(p.stat().st_size for p in Path(result.adapter_path).rglob("*") if p.is_file())
    timed = step_times[1:] or step_times  # the first step pays one-time costs
    return {
        "method": method, "steps": result.steps, "s_per_step": sum(timed) / len(timed),
        "tokens_per_s": result.tokens / sum(step_times), "peak_mb": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024, "trainable_params": result.trainable_params,
        "adapter_mb": adapter_bytes / 2**20, "train_loss": result.train_loss, "val_loss": result.val_loss,
    }


def make_chart(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [r["method"] for r in rows]
    fig = make_subplots(rows=2, cols=2, subplot_titles=("seconds per step", "peak memory (MB)",
                                                        "trainable parameters (log)", "val loss after the run"))
    fig.add_trace(go.Bar(x=names, y=[r["s_per_step"] for r in rows], name="s/step"), 1, 1)
    fig.add_trace(go.Bar(x=names, y=[r["peak_mb"] for r in rows], name="peak MB"), 1, 2)
    fig.add_trace(go.Bar(x=names, y=[r["trainable_params"] for r in rows], name="trainable"), 2, 1)
    fig.add_trace(go.Bar(x=names, y=[r["val_loss"] for r in rows], name="val loss"), 2, 2)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_layout(height=700, showlegend=False, template="plotly_white", title="Methods on the embedded model")
    return fig


def main() -> None:
    from workbench.methods.registry import METHODS
    from workbench.train.preflight import cuda_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--methods", default="", help="comma-separated; default: every method this machine runs")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one method in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.steps)))
        return
    names = [m for m in (args.methods.split(",") if args.methods else METHODS) if m]
    names = [m for m in names if cuda_available() or not METHODS[m].needs_cuda]
    if "lora" not in names:
        names.insert(0, "lora")  # the baseline every ratio refers to
    rows = []
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-1500:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr)
    lora = next(r for r in rows if r["method"] == "lora")
    for row in rows:
        row["s_per_step_vs_lora"] = row["s_per_step"] / lora["s_per_step"]
    header = f"{'method':<15}{'s/step':>8}{'×LoRA':>7}{'tok/s':>8}{'peak MB':>9}{'trainable':>13}{'size MB':>9}" \
             f"{'train loss':>11}{'val loss':>9}"
    print(header)
    for r in rows:
        print(f"{r['method']:<15}{r['s_per_step']:>8.2f}{r['s_per_step_vs_lora']:>7.2f}{r['tokens_per_s']:>8.0f}"
              f"{r['peak_mb']:>9.0f}{r['trainable_params']:>13,}{r['adapter_mb']:>9.2f}{r['train_loss']:>11.3f}"
              f"{r['val_loss']:>9.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make_chart(rows).write_html(out / "methods.html", include_plotlyjs="cdn")
    (out / "methods.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps({"steps": args.steps, "rows": rows}))


if __name__ == "__main__":
    main()
