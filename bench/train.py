"""Training speed: the plain recipe (transformers Trainer + PEFT LoRA, padded to a fixed length) vs this engine.

    python bench/train.py [--steps 10] [--rounds 1] [--preset presets/classroom-lora.yaml]

Both train the same LoRA (rank, alpha, targets, dropout, learning rate, schedule, batch size, seed) on the same
examples in the same order (the engine's seeded batch order is handed to the Trainer as an iterable dataset) for
the same number of optimiser steps, one after the other and alternating for --rounds rounds; the best round of
each counts. Printed per side: real (non-pad) tokens/s, seconds per step, peak resident memory, the per-step losses
(they must agree: same examples, same steps), and the ratio ours / plain. The last line is one JSON object with
ratio, ours_tokens_per_s, plain_tokens_per_s, ours_peak_mb and plain_peak_mb.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.memory import PeakRss  # noqa: E402


def ordered_batches(config, tokenizer, steps: int) -> list[list]:
    """The engine's batches for `steps` optimiser steps: the examples both sides train on, in order."""
    from workbench.training import batches, prepare_data

    data = prepare_data(config, tokenizer)
    stream = batches(data.train, config.train.batch_size, config.train.seed)
    return [next(stream) for _ in range(steps * config.train.grad_accum)]


def run_plain(config, steps: int, order: list[list]) -> dict:
    """The tutorial recipe: Trainer + get_peft_model, every row padded to max_seq_len."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import IterableDataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from workbench.formatting import IGNORE_INDEX
    from workbench.methods import get_method
    from workbench.models import load_model

    cfg, width = config.train, config.train.max_seq_len
    torch.manual_seed(cfg.seed)
    loaded = load_model(config.model)
    spec = get_method(config.method.name)
    target_modules = spec.build(config.method, loaded.model).target_modules
    model = get_peft_model(loaded.model, LoraConfig(r=config.method.rank, lora_alpha=config.method.alpha,
                                                    lora_dropout=config.method.dropout,
                                                    target_modules=target_modules, task_type="CAUSAL_LM"))
    pad = loaded.tokenizer.pad_token_id
    rows = [item for batch in order for item in batch]

    class Rows(IterableDataset):  # in the engine's order: no sampler, no shuffle
        def __iter__(self):
            for item in rows:
                n = len(item.input_ids)
                yield {"input_ids": torch.tensor(item.input_ids + [pad] * (width - n)),
                       "attention_mask": torch.tensor([1] * n + [0] * (width - n)),
                       "labels": torch.tensor(item.labels + [IGNORE_INDEX] * (width - n))}

    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_schedule, warmup_steps=int(cfg.warmup_ratio * steps),
            weight_decay=cfg.weight_decay, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
            seed=cfg.seed, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[Losses()])
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    tokens = sum(len(item.input_ids) for item in rows)
    return {"seconds": seconds, "tokens": tokens, "losses": losses}


def run_ours(config, steps: int) -> dict:
    from workbench.training import run_training

    losses: list[float] = []

    def on_event(event) -> None:
        if event.kind == "step":
            losses.append(float(event.values["train_loss"]))
            on_event.loop_seconds = event.values["elapsed"]

    with tempfile.TemporaryDirectory() as out:
        result = run_training(config, out, on_event=on_event)
    return {"seconds": on_event.loop_seconds, "tokens": result.tokens, "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per side")
    parser.add_argument("--rounds", type=int, default=1, help="plain, ours alternated this many times; best counts")
    parser.add_argument("--preset", default=str(ROOT / "presets" / "classroom-lora.yaml"))
    args = parser.parse_args()

    import torch

    from workbench.config import load_preset
    from workbench.models import free_memory, load_tokenizer

    config = load_preset(args.preset).with_overrides({
        "train.max_steps": args.steps, "train.eval_every": 0, "train.general_every": 0, "train.eval_test": False,
        "train.checkpoint_every": 0, "data.val_size": 0, "data.test_size": 0})
    order = ordered_batches(config, load_tokenizer(config.model), args.steps)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for side, run in (("plain", lambda: run_plain(config, args.steps, order)),
                          ("ours", lambda: run_ours(config, args.steps))):
            free_memory()
            with PeakRss() as peak:
                result = run()
            result["peak_mb"] = peak.peak
            result["tokens_per_s"] = result["tokens"] / result["seconds"]
            if side not in best or result["seconds"] < best[side]["seconds"]:
                best[side] = result
    plain, ours = best["plain"], best["ours"]
    assert plain["tokens"] == ours["tokens"], (plain["tokens"], ours["tokens"])
    diffs = [abs(a - b) for a, b in zip(plain["losses"], ours["losses"], strict=True)]
    print(f"{config.name or args.preset}: LoRA r={config.method.rank} ({config.method.targets}), batch "
          f"{config.train.batch_size}, max length {config.train.max_seq_len}, {args.steps} steps, "
          f"{torch.get_num_threads()} threads, {ours['tokens']} real tokens")
    for side, result in (("plain", plain), ("ours", ours)):
        print(f"  {side:<5} {result['tokens_per_s']:7.1f} real tok/s · {result['seconds'] / args.steps:6.2f} s/step · "
              f"peak {result['peak_mb']:6.0f} MB · losses {' '.join(f'{x:.3f}' for x in result['losses'])}")
    ratio = ours["tokens_per_s"] / plain["tokens_per_s"]
    print(f"  ratio ours/plain ×{ratio:.2f} · largest per-step loss difference {max(diffs):.4f}")
    print(json.dumps({"ratio": round(ratio, 3), "ours_tokens_per_s": round(ours["tokens_per_s"], 1),
                      "plain_tokens_per_s": round(plain["tokens_per_s"], 1), "ours_peak_mb": round(ours["peak_mb"]),
                      "plain_peak_mb": round(plain["peak_mb"]), "steps": args.steps,
                      "max_loss_difference": round(max(diffs), 5), "ours_losses": ours["losses"],
                      "plain_losses": plain["losses"]}))


if __name__ == "__main__":
    main()
