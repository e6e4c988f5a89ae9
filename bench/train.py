"""Training speed: the plain recipe (transformers Trainer + PEFT LoRA, padded to a fixed length) vs this engine.

    python bench/train.py [--steps 10] [--rounds 1] [--preset presets/classroom-lora.yaml]
    python bench/train.py --model random:llama-8b --layers 8 --data long --seq 2048 --batch 4   # GPU throughput, MFU

Both train the same LoRA (rank, alpha, targets, dropout, learning rate, schedule, batch size, seed) on the same
examples in the same order (the engine's seeded batch order is handed to the Trainer as an iterable dataset) for
the same number of optimiser steps, one after the other and alternating for --rounds rounds; the best round of
each counts. Printed per side: real (non-pad) tokens/s, seconds per step, peak memory (resident; on a GPU also the
GPU's), the per-step losses (they must agree: same examples, same steps), and the ratio ours / plain. On a GPU
(or with --peak-tflops) also the MFU: real tokens/s × (4 × frozen + 6 × trainable parameters + 12 × layers ×
hidden × mean row length) FLOPs per token / peak. The last line is one JSON object with ratio, ours_tokens_per_s,
plain_tokens_per_s, ours_peak_mb and plain_peak_mb (and mfu when measured).

Where no weights can be downloaded (a lent GPU machine), `--model random:SHAPE` builds a model of that shape with
random weights (fine for throughput, not for losses) around the embedded model's tokenizer; save that tokenizer
beforehand with `--export-tokenizer DIR` and pass `--tokenizer DIR` there. `--data long` trains on synthetic rows
that fill `--seq` tokens.
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

# Model shapes for --model random:SHAPE (Llama layout; the vocabulary is the tokenizer's).
SHAPES = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "tie_word_embeddings": True},
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "tie_word_embeddings": True},
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "tie_word_embeddings": True},
    "llama-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "tie_word_embeddings": False},
}
WORDS = ("the model learns a small update to each layer while the base weights stay frozen and the answers change "
         "format data rank alpha memory gradient step token batch loss curve adapter prompt question teacher student "
         "class sample review ticket priority category polite speech").split()


def random_model(shape: str, layers: int, tokenizer_dir: str, folder: Path) -> Path:
    """A model of `shape` with random weights, saved as a local folder (safetensors + the tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = {**SHAPES[shape], **({"num_hidden_layers": layers} if layers else {})}
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=8192, rope_theta=500_000.0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **sizes)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialised where it runs: 8B parameters take minutes on a CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def long_rows(path: Path, count: int, seq: int, seed: int = 0) -> Path:
    """Synthetic prompt/completion rows of about `seq` tokens each (a word is about one token): 55 % prompt."""
    import random

    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            prompt = " ".join(rng.choice(WORDS) for _ in range(int(seq * 0.5)))
            answer = " ".join(rng.choice(WORDS) for _ in range(int(seq * 0.4)))
            out.write(json.dumps({"prompt": f"Summarise: {prompt}", "completion": answer}) + "\n")
    return path


def flops_per_token(trainable: int, total: int, layers: int, hidden: int, mean_len: float) -> float:
    """Training FLOPs per token: forward 2N, backward 2N through every weight and 2N more for the trained ones'
    gradients, plus attention's score and value products (12 · layers · hidden · length, forward and backward)."""
    return 4 * (total - trainable) + 6 * trainable + 12 * layers * hidden * mean_len


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def ordered_batches(config, tokenizer, steps: int) -> list[list]:
    """The engine's batches for `steps` optimiser steps: the examples both sides train on, in order."""
    from workbench.train.loop import batches, prepare_data

    data = prepare_data(config, tokenizer)
    stream = batches(data.train, config.train.batch_size, config.train.seed)
    return [next(stream) for _ in range(steps * config.train.grad_accum)]


def run_plain(config, steps: int, order: list[list]) -> dict:
    """The tutorial recipe: Trainer + get_peft_model, every row padded to max_seq_len."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import IterableDataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from workbench.data.formatting import IGNORE_INDEX
    from workbench.methods.registry import get_method
    from workbench.models.loading import load_model

    cfg, width = config.train, config.train.max_seq_len
    torch.manual_seed(cfg.seed)
    loaded = load_model(config.model)
    spec = get_method(config.method.name)
    target_modules = spec.build(config.method, loaded.model, cfg.max_steps).target_modules
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
            seed=cfg.seed, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True,
            bf16=loaded.model.dtype == torch.bfloat16, gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
        trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[Losses()])
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    tokens = sum(len(item.input_ids) for item in rows)
    return {"seconds": seconds, "tokens": tokens, "losses": losses}


def run_ours(config, steps: int) -> dict:
    from workbench.train.loop import run_training

    losses: list[float] = []

    def on_event(event) -> None:
        if event.kind == "step":
            losses.append(float(event.values["train_loss"]))
            on_event.loop_seconds = event.values["elapsed"]

    with tempfile.TemporaryDirectory() as out:
        result = run_training(config, out, on_event=on_event)
    return {"seconds": on_event.loop_seconds, "tokens": result.tokens, "losses": losses,
            "trainable": result.trainable_params, "total": result.total_params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per side")
    parser.add_argument("--rounds", type=int, default=1, help="plain, ours alternated this many times; best counts")
    parser.add_argument("--preset", default=str(ROOT / "presets" / "classroom-lora.yaml"))
    parser.add_argument("--model", default="preset", help="'preset' (its model), a model folder, or random:SHAPE "
                        f"with SHAPE one of {', '.join(SHAPES)} (random weights, for throughput)")
    parser.add_argument("--layers", type=int, default=0, help="layers of a random model (0 = the shape's own)")
    parser.add_argument("--tokenizer", default="", help="tokenizer folder for a random model (default: embedded)")
    parser.add_argument("--export-tokenizer", default="", help="save the embedded model's tokenizer here and exit")
    parser.add_argument("--data", default="preset", help="'preset' (its data) or 'long': rows that fill --seq")
    parser.add_argument("--seq", type=int, default=0, help="max sequence length (0 = the preset's)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (0 = the preset's)")
    parser.add_argument("--targets", default="", help="LoRA targets: attention or all-linear (default: preset's)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on for both sides")
    parser.add_argument("--peak-tflops", type=float, default=0,
                        help="peak dense TFLOP/s for the MFU (default on CUDA: 989, H100/H200 bf16)")
    args = parser.parse_args()

    import torch

    from workbench.config import ModelConfig, load_preset
    from workbench.models.loading import embedded_model_dir, free_memory, load_tokenizer

    if args.export_tokenizer:
        load_tokenizer(ModelConfig()).save_pretrained(args.export_tokenizer)
        print(f"saved the embedded tokenizer to {args.export_tokenizer}")
        return
    config = load_preset(args.preset)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    overrides = {"train.max_steps": args.steps, "train.eval_every": 0, "train.general_every": 0,
                 "train.eval_test": False, "train.checkpoint_every": 0, "data.val_size": 0, "data.test_size": 0,
                 "train.gradient_checkpointing": args.gradient_checkpointing}
    if args.model.startswith("random:"):
        shape = args.model.split(":", 1)[1]
        if shape not in SHAPES:
            parser.error(f"--model random:{shape}: unknown shape; choose one of {', '.join(SHAPES)}")
        overrides["model.name_or_path"] = str(random_model(shape, args.layers, args.tokenizer or
                                                           str(embedded_model_dir()), work / "model"))
    elif args.model != "preset":
        overrides["model.name_or_path"] = args.model
    overrides.update({key: value for key, value in (("train.max_seq_len", args.seq), ("train.batch_size", args.batch),
                                                    ("method.targets", args.targets)) if value})
    config = config.with_overrides(overrides)
    if args.data == "long":
        rows = args.steps * config.train.batch_size * config.train.grad_accum + 8
        config = config.with_overrides({"data.path": str(long_rows(work / "long.jsonl", rows,
                                                                   config.train.max_seq_len))})
    order = ordered_batches(config, load_tokenizer(config.model), args.steps)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for side, run in (("plain", lambda: run_plain(config, args.steps, order)),
                          ("ours", lambda: run_ours(config, args.steps))):
            free_memory()
            reset_gpu_peak()
            with PeakRss() as peak:
                result = run()
            result["peak_mb"], result["gpu_peak_mb"] = peak.peak, gpu_peak_mb()
            result["tokens_per_s"] = result["tokens"] / result["seconds"]
            if side not in best or result["seconds"] < best[side]["seconds"]:
                best[side] = result
    plain, ours = best["plain"], best["ours"]
    assert plain["tokens"] == ours["tokens"], (plain["tokens"], ours["tokens"])
    diffs = [abs(a - b) for a, b in zip(plain["losses"], ours["losses"], strict=True)]
    peak_tflops = args.peak_tflops or (989.0 if torch.cuda.is_available() else 0.0)
    mfu = {}
    if peak_tflops:
        from transformers import AutoConfig

        from workbench.models.loading import resolve_model_source

        shape = AutoConfig.from_pretrained(resolve_model_source(config.model.name_or_path)[0])
        rows = sum(len(batch) for batch in order)
        per_token = flops_per_token(ours["trainable"], ours["total"], shape.num_hidden_layers, shape.hidden_size,
                                    ours["tokens"] / rows)
        mfu = {side: result["tokens_per_s"] * per_token / (peak_tflops * 1e12) for side, result in best.items()}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    layers = f" ({args.layers} layers)" if args.layers else ""
    print(f"{config.name or args.preset} on {device}: model {args.model}{layers}, LoRA r={config.method.rank} "
          f"({config.method.targets}), "
          f"batch {config.train.batch_size}, max length {config.train.max_seq_len}, data {args.data}, {args.steps} "
          f"steps, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, {ours['tokens']} real "
          "tokens")
    for side, result in (("plain", plain), ("ours", ours)):
        gpu = f" · GPU peak {result['gpu_peak_mb']:7.0f} MB" if result["gpu_peak_mb"] is not None else ""
        share = f" · MFU {mfu[side]:.1%}" if mfu else ""
        losses = " ".join(f"{x:.3f}" for x in result["losses"])
        print(f"  {side:<5} {result['tokens_per_s']:8.1f} real tok/s · {result['seconds'] / args.steps:6.2f} s/step · "
              f"peak {result['peak_mb']:6.0f} MB{gpu}{share} · losses {losses}")
    ratio = ours["tokens_per_s"] / plain["tokens_per_s"]
    print(f"  ratio ours/plain ×{ratio:.2f} · largest per-step loss difference {max(diffs):.4f}")
    print(json.dumps({"ratio": round(ratio, 3), "ours_tokens_per_s": round(ours["tokens_per_s"], 1),
                      "plain_tokens_per_s": round(plain["tokens_per_s"], 1), "ours_peak_mb": round(ours["peak_mb"]),
                      "plain_peak_mb": round(plain["peak_mb"]), "ours_gpu_peak_mb": ours["gpu_peak_mb"],
                      "plain_gpu_peak_mb": plain["gpu_peak_mb"], **{f"{k}_mfu": round(v, 4) for k, v in mfu.items()},
                      "device": device, "model": args.model, "layers": args.layers, "steps": args.steps,
                      "max_loss_difference": round(max(diffs), 5), "ours_losses": ours["losses"],
                      "plain_losses": plain["losses"]}))


if __name__ == "__main__":
    main()
