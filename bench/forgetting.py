"""Forgetting and its mitigations, measured: the classroom LoRA run plain, with replay, and with L2 toward the start.

    python bench/forgetting.py [--steps 80] [--replay 0.2] [--l2 1.0] [--samples 50]

All variants train the same preset on the same data with the same seed in this one invocation; the forgetting
probe measures the loss on the same 50 items of the general reference set (never trained on) before the first
step and at the end. Printed per variant: task val loss at the end, general-set loss before → after and its rise
in %, and how much of the plain run's rise the variant avoided. The last line is one JSON object.
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


def train_variant(overrides: dict, steps: int, samples: int) -> dict:
    from workbench.config import load_preset
    from workbench.train.loop import run_training

    config = load_preset(ROOT / "presets" / "classroom-lora.yaml").with_overrides({
        "train.max_steps": steps, "train.general_samples": samples, "train.general_every": max(1, steps // 8),
        "train.eval_every": max(1, steps // 4), "train.eval_test": False, **overrides})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = run_training(config, out)
    rise = (result.general_loss - result.general_loss_start) / result.general_loss_start
    return {"val_loss": result.val_loss, "general_start": result.general_loss_start,
            "general_end": result.general_loss, "general_rise": rise, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--replay", type=float, default=0.2, help="replay ratio of the replay variant")
    parser.add_argument("--l2", type=float, default=1.0, help="λ of the L2-toward-the-start variant")
    parser.add_argument("--samples", type=int, default=50, help="general-set items the probe measures")
    args = parser.parse_args()
    variants = {"plain": {}, f"replay {args.replay:g}": {"train.replay_ratio": args.replay},
                f"L2 {args.l2:g}": {"train.l2_to_base": args.l2},
                "replay + L2": {"train.replay_ratio": args.replay, "train.l2_to_base": args.l2}}
    rows = {}
    for name, overrides in variants.items():
        rows[name] = train_variant(overrides, args.steps, args.samples)
        print(f"  trained {name}: {rows[name]['seconds']:.0f} s", file=sys.stderr)
    plain_rise = rows["plain"]["general_rise"]
    print(f"{'variant':<14} {'val loss':>9} {'general before → after':>24} {'rise':>8} {'rise avoided':>13}")
    for name, row in rows.items():
        row["rise_avoided"] = 1 - row["general_rise"] / plain_rise if plain_rise > 0 else None
        avoided = f"{row['rise_avoided']:.0%}" if row["rise_avoided"] is not None else "–"
        print(f"{name:<14} {row['val_loss']:>9.4f} {row['general_start']:>11.4f} → {row['general_end']:<10.4f} "
              f"{row['general_rise']:>+8.1%} {avoided:>13}")
    print(json.dumps({"steps": args.steps, "variants": rows}))


if __name__ == "__main__":
    main()
