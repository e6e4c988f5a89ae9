"""Every bundled sample with its default preset, end to end as the Train tab runs it: does the fine-tune work, and
in how long?

    python bench/samples.py [--samples en_ticket_triage,ko_chat_polite] [--preset classroom-lora] [--set KEY=VALUE]
                            [--resamples 2000]

For each sample: the run trains in a fresh store through the same job code as the app (`execute_run`: training,
then the test split scored with the base model and the run), and the bench reports the training time, the
end-to-end time (from the first model load to the scores on disk), why training ended (all steps or early stopping),
and base → run on the sample's headline metric (label accuracy for a classification sample, exact match for a fixed
format, chrF for a rewrite: `headline` in workbench/data/samples/samples.yaml) and on ROUGE-L, each with a 95 %
bootstrap interval over the test split's examples, and the run's gain over the base with its own (paired) interval.
The machine's torch threads are what torch picks (all cores), as in the app. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_example(report, label: str, headline: str) -> dict[str, list[float]]:
    """The headline metric and ROUGE-L of one model of a scored report, example by example."""
    from workbench.evaluate.metrics import headline_scores

    model = next(m for m in report.models if m.label == label)
    return {"headline": headline_scores(headline, model.outputs, report.references),
            "rougeL": [row["rougeL"] for row in model.per_example]}


def interval(values: list[float], resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95 % percentile-bootstrap interval of the mean."""
    rng, n = random.Random(seed), len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(values) / n, means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def run_sample(name: str, preset: str, overrides: dict, resamples: int) -> dict:
    from workbench.config import load_preset
    from workbench.data.samples import sample_info
    from workbench.evaluate.scoring import read_report
    from workbench.runs.store import RunStore
    from workbench.train.jobs import execute_run

    info = sample_info(name)
    preset = info.get("preset", preset)
    config = load_preset(ROOT / "presets" / f"{preset}.yaml").with_overrides(
        {"data.path": f"sample:{name}", "name": f"bench {name}", **overrides})
    phases: dict[str, float] = {}

    def on_event(event) -> None:  # when training ended and scoring began
        if event.kind == "end":
            phases["trained"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as home:
        store = RunStore(Path(home) / "runs")
        record = store.create_run(config, claim="training")
        started = time.perf_counter()
        result = execute_run(store, record.run_id, config, on_event=on_event)
        finished = time.perf_counter()
        report = read_report(store, record.run_id)
    if report is None:
        raise SystemExit(f"{name}: the test split was not scored (is train.eval_test off?)")
    base, run = (per_example(report, label, info["headline"]) for label in ("base", "adapter"))
    row = {"sample": name, "preset": preset, "headline_metric": info["headline"],
           "test_examples": len(report.references), "steps": result.steps, "total_steps": result.total_steps,
           "early_stop": result.early_stop,
           "train_seconds": round(result.seconds, 1), "end_to_end_seconds": round(finished - started, 1),
           "scoring_seconds": round(finished - phases.get("trained", finished), 1)}
    for metric in ("headline", "rougeL"):
        gains = [r - b for b, r in zip(base[metric], run[metric])]
        row[metric] = {"base": interval(base[metric], resamples), "run": interval(run[metric], resamples),
                       "gain": interval(gains, resamples)}
    return row


def show(row: dict) -> str:
    def pct(triple) -> str:
        mean, low, high = (100 * v for v in triple)
        return f"{mean:5.1f} [{low:5.1f}, {high:5.1f}]"

    ended = (f"early stop at {row['steps']}/{row['total_steps']} (best {row['early_stop']['best_step']})"
             if row["early_stop"] else f"{row['steps']}/{row['total_steps']} steps")
    lines = [f"{row['sample']} ({row['preset']}, {row['test_examples']} test examples): {ended}; "
             f"train {row['train_seconds']:.0f} s, end to end {row['end_to_end_seconds']:.0f} s "
             f"(scoring {row['scoring_seconds']:.0f} s)"]
    for metric in ("headline", "rougeL"):
        name = row["headline_metric"] if metric == "headline" else "ROUGE-L"
        part = row[metric]
        lines.append(f"  {name:<14} base {pct(part['base'])} → run {pct(part['run'])}   gain {pct(part['gain'])}")
    return "\n".join(lines)


def main() -> None:
    import yaml

    from workbench.data.samples import list_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="", help="comma-separated sample names (default: every sample)")
    parser.add_argument("--preset", default="classroom-lora", help="the preset for samples that name none")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    names = [n for n in args.samples.split(",") if n] or list_samples()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)  # numbers, true/false and text as a preset would read them
    rows = []
    for name in names:
        rows.append(run_sample(name, args.preset, overrides, args.resamples))
        print(show(rows[-1]), flush=True)
    print(json.dumps({"preset": args.preset, "overrides": overrides, "samples": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
