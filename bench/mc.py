"""Multiple choice with calibration (#16): the base model and a short LoRA run on the bundled sets, 0- and 5-shot.

    python bench/mc.py [--steps 20] [--shots 0,5] [--sets knowledge_en,knowledge_ko] [--limit N] [--base-only]

Trains the classroom LoRA preset for a few steps (what it learns is a ticket format, not facts: the point is
whether the fine-tune kept the base's knowledge and its calibration), then scores the base and the run through
lm-evaluation-harness on each set at each shot count: the lettered sets by default (MMLU's and KMMLU's prompt);
their cloze forms, knowledge_en_cloze and knowledge_ko_cloze, show what a small model knows. Prints per set, shots
and model: accuracy, acc_norm, macro-F1, ECE, Brier and seconds, then the seconds the base took on every set at the
most shots (the goal on 2 CPU cores: both sets, one model, 5-shot, within 60 s). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 60


def train_lora(steps: int, folder: str) -> tuple[str, float]:
    from workbench.config import load_preset
    from workbench.train.loop import run_training

    config = load_preset(ROOT / "presets" / "classroom-lora.yaml").with_overrides({
        "train.max_steps": steps, "train.eval_every": 0, "train.eval_test": False, "train.general_every": 0})
    started = time.perf_counter()
    result = run_training(config, folder)
    return result.adapter_path, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps of the LoRA run")
    parser.add_argument("--shots", default="0,5", help="comma-separated k-shot counts (0 to 5)")
    parser.add_argument("--sets", default="knowledge_en,knowledge_ko", help="bundled sets, files or harness tasks")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N questions of each set")
    parser.add_argument("--base-only", action="store_true", help="score the base model only (no training)")
    args = parser.parse_args()

    from workbench.config import ModelConfig
    from workbench.evaluate.multiple_choice import score_mc

    shots_list, sets = [int(s) for s in args.shots.split(",")], args.sets.split(",")
    with tempfile.TemporaryDirectory() as folder:
        adapters, train_seconds = [], 0.0
        if not args.base_only:
            adapter, train_seconds = train_lora(args.steps, folder)
            adapters = [("lora", adapter)]
            print(f"  trained the LoRA run ({args.steps} steps): {train_seconds:.0f} s", file=sys.stderr)
        results = []
        for name in sets:
            for shots in shots_list:
                cpu = time.process_time()
                report = score_mc(ModelConfig(), adapters, name, shots=shots, limit=args.limit)
                cpu = time.process_time() - cpu  # all models of the call: on a shared machine, steadier than wall
                for s in report.scores:
                    results.append({"set": name, "shots": shots, "model": s.label, "questions": s.count,
                                    "accuracy": s.accuracy, "acc_norm": s.acc_norm, "macro_f1": s.macro_f1,
                                    "ece": s.ece, "brier": s.brier, "confidence": s.confidence,
                                    "seconds": s.seconds, "cpu_seconds_all_models": cpu})
    print(f"{'set':<14} {'shots':>5} {'model':<6} {'n':>4} {'acc':>6} {'norm':>6} {'F1':>6} {'ECE':>6} {'Brier':>6} "
          f"{'conf':>6} {'s':>6}")
    for r in results:
        print(f"{r['set']:<14} {r['shots']:>5} {r['model']:<6} {r['questions']:>4} {r['accuracy']:>6.3f} "
              f"{r['acc_norm']:>6.3f} {r['macro_f1']:>6.3f} {r['ece']:>6.3f} {r['brier']:>6.3f} "
              f"{r['confidence']:>6.3f} {r['seconds']:>6.1f}")
    most = max(shots_list)
    base_seconds = sum(r["seconds"] for r in results if r["model"] == "base" and r["shots"] == most)
    print(f"base, every set, {most}-shot: {base_seconds:.1f} s (goal on 2 CPU cores: ≤ {GOAL_SECONDS} s for both "
          "bundled sets at 5 shots)")
    if not any(name.endswith("_cloze") for name in sets):
        print("(a small model answers lettered questions at chance even where it knows the fact: add "
              "--sets knowledge_en_cloze,knowledge_ko_cloze to see what it knows)")
    print(json.dumps({"steps": 0 if args.base_only else args.steps, "train_seconds": round(train_seconds, 1),
                      "limit": args.limit, "base_seconds_at_most_shots": round(base_seconds, 1),
                      "goal_seconds": GOAL_SECONDS, "results": results}))


if __name__ == "__main__":
    main()
