"""The training engine: `run_training(config, output_dir, on_event, should_stop) -> RunResult`.

No threads and no UI here. The CLI calls it directly and the job runner calls it from its background thread;
both get the same events. The loop reads top to bottom: data → model → method → optimiser → steps → save.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.data.examples import read_examples, split_examples
from workbench.data.formatting import IGNORE_INDEX, TokenizedExample, collate, encode_examples
from workbench.data.general import probe_examples, replay_examples
from workbench.data.samples import resolve_data_path
from workbench.evaluate.loss import StopRequested, evaluate_loss, token_loss_sum
from workbench.i18n import Message, message
from workbench.methods.registry import get_method
from workbench.models.adapters import save_trained
from workbench.models.loading import free_memory, load_model
from workbench.train.attach import attach_method, count_parameters
from workbench.train.checkpoints import load_checkpoint, load_counters, remove_checkpoint, save_checkpoint
from workbench.train.early_stop import EarlyStop, copies_weights
from workbench.train.events import SCHEDULES, RunResult, TrainEvent, resume_problem
from workbench.train.preflight import check_runnable, quantize_bits


@dataclass
class PreparedData:
    train: list[TokenizedExample]
    val: list[TokenizedExample]
    test: list[Any]  # raw examples, scored after training
    notes: list[str]
    general: list[TokenizedExample] = field(default_factory=list)  # the forgetting probe's fixed sample
    replayed: int = 0  # general examples mixed into train


def prepare_data(config: RunConfig, tokenizer: Any) -> PreparedData:
    """Read, split and encode the configured data; raises DataError with the file's report when unusable."""
    report = read_examples(resolve_data_path(config.data.path), kind="sft")
    train, val, test = split_examples(report.examples, config.data.val_size, config.data.test_size,
                                      config.data.split_seed)
    train_enc, stats = encode_examples(train, tokenizer, config.train.max_seq_len)
    val_enc, _ = encode_examples(val, tokenizer, config.train.max_seq_len)
    notes = list(report.notes)
    if report.bad:
        notes.append(f"{report.bad} bad row(s) skipped; see `python -m workbench data check`")
    if stats.truncated:
        notes.append(f"{stats.truncated} example(s) longer than {config.train.max_seq_len} tokens were cut")
    if not train_enc:
        raise ValueError("no training example is left after the split; lower data.val_size / data.test_size")
    replay = replay_examples(len(train_enc), config.train.replay_ratio, config.train.seed)
    if replay:
        train_enc += encode_examples(replay, tokenizer, config.train.max_seq_len)[0]
        notes.append(f"replay: {len(replay)} general example(s) mixed into {len(train_enc) - len(replay)} "
                     f"training examples ({config.train.replay_ratio:.0%} of the mix)")
    general = []
    if config.train.general_every:
        general = encode_examples(probe_examples(config.train.general_samples), tokenizer,
                                  config.train.max_seq_len)[0]
    return PreparedData(train=train_enc, val=val_enc, test=test, notes=notes, general=general,
                        replayed=len(replay))


def earlier_seconds(counters: dict) -> float:
    """The wall time of a run's earlier segments (loading, measuring and training) from its checkpoint's counters;
    a checkpoint written before this was counted has the training loop's time only."""
    return counters.get("seconds", counters.get("elapsed", 0.0))


def stopped_before_training(config: RunConfig, output_dir: str | Path, started: float) -> RunResult:
    """The result of a run stopped before its first step: nothing trained, any earlier checkpoint kept."""
    counters = load_counters(output_dir) or {}
    adapter = Path(output_dir) / "adapter"
    return RunResult(
        status="stopped", steps=counters.get("step", 0), total_steps=counters.get("total_steps", 0),
        train_loss=counters.get("train_loss"), val_loss=counters.get("val_loss"),
        seconds=earlier_seconds(counters) + time.perf_counter() - started, tokens=counters.get("tokens", 0),
        trainable_params=0, total_params=0, adapter_path=str(adapter) if adapter.is_dir() else "",
        train_examples=0, val_examples=0, test_examples=0)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them (non-reentrant: it works
    with frozen inputs and restores the random state, so dropout masks, and hence the losses, stay the same)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False


def batches(data: list[TokenizedExample], batch_size: int, seed: int) -> Iterator[list[TokenizedExample]]:
    """Endless batches: a fresh seeded shuffle every epoch."""
    rng, epoch = random.Random(seed), 0
    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [data[i] for i in order[start:start + batch_size]]
        epoch += 1


def l2_to_start(params: list[Any], start: list[Any]) -> Any:
    """Σ(θ − θ₀)² over the trained tensors: the L2-SP distance from where training began."""
    return sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start, strict=True))


def measure(model: Any, data: PreparedData, step: int, batch_size: int, pad_id: int, device: str,
            every: tuple[int, int], stop: Callable[[], bool] | None = None, val: bool = True) -> dict[str, float]:
    """Val loss and forgetting-probe loss due at this step (step 0 = before training: the starting point).
    A stop pressed while measuring ends the measuring: what was measured in full is returned."""
    eval_every, general_every = every
    values = {}
    try:
        if val and data.val and (step == 0 or (eval_every and step % eval_every == 0)):
            values["val_loss"] = evaluate_loss(model, data.val, batch_size, pad_id, device, stop)
        if data.general and general_every and step % general_every == 0:
            values["general_loss"] = evaluate_loss(model, data.general, batch_size, pad_id, device, stop)
    except StopRequested:
        pass
    return values


def run_training(
    config: RunConfig,
    output_dir: str | Path,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
) -> RunResult:
    """Train one run to the end (or until should_stop() says so) and save its adapter under output_dir.

    A stopped run (and every `train.checkpoint_every` steps, a running one) leaves a checkpoint in output_dir;
    `resume=True` continues from it with the same optimiser, scheduler, RNG and data order, as if never stopped.
    """
    import torch
    from transformers import get_scheduler

    emit = on_event or (lambda event: None)
    stop = should_stop or (lambda: False)
    cfg, started = config.train, time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    check_runnable(config)
    if config.train.objective == "dpo":  # preference pairs: the DPO loop, same events and result
        from workbench.train.dpo import run_dpo  # deferred: trl takes seconds to import, and SFT never needs it

        if resume and resume_problem(config):
            raise ValueError(resume_problem(config))

        return run_dpo(config, output_dir, emit, stop)

    def halt(phase: Message | str) -> None:  # Stop while getting ready ends the run here, with nothing new trained
        if stop():
            raise StopRequested(phase)
        emit(TrainEvent("phase", 0, 0, {"phase": phase}))

    try:
        halt(message("train.phase.loading_model"))
        loaded = load_model(config.model, quantize_bits=quantize_bits(config))
        halt(message("train.phase.reading_data"))
        tokenizer, device = loaded.tokenizer, loaded.device
        data = prepare_data(config, tokenizer)
        steps_per_epoch = math.ceil(len(data.train) / (cfg.batch_size * cfg.grad_accum))
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        halt(message("train.phase.setting_up"))
        model = attach_method(loaded.model, config, total_steps)
        halt("")
    except StopRequested:
        return stopped_before_training(config, output_dir, started)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    trainable, total_params = count_parameters(model)
    spec = get_method(config.method.name)  # its hooks, if any, run at every step
    warmup = int(cfg.warmup_ratio * total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates every tensor in one launch on a GPU (same arithmetic); the CPU keeps the default.
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                  fused=True if device == "cuda" else None)
    scheduler = get_scheduler(SCHEDULES[cfg.lr_schedule], optimizer, num_warmup_steps=warmup,
                              num_training_steps=total_steps)
    stream = batches(data.train, cfg.batch_size, cfg.seed)
    start_weights = [p.detach().clone() for p in params] if cfg.l2_to_base else []
    pad_id, every = tokenizer.pad_token_id, (cfg.eval_every, cfg.general_every)
    # elapsed: the training loop's time, for speed and ETA; seconds: the whole run's wall time, every segment of it
    counters = {"step": 0, "tokens": 0, "elapsed": 0.0, "seconds": 0.0, "train_loss": None, "val_loss": None,
                "general_start": None, "early_stop": None}
    watch = EarlyStop(cfg.early_stop_patience if data.val and cfg.eval_every else 0, cfg.early_stop_min_delta)
    copy_best = copies_weights(trainable, total_params)
    if resume:  # weights, optimiser, scheduler and RNG as they were; the batches it already saw are skipped
        counters.update(load_checkpoint(output_dir, model, optimizer, scheduler))
        counters["seconds"] = earlier_seconds(counters)
        watch.load_state(counters["early_stop"])
        for _ in range(counters["step"] * cfg.grad_accum):
            next(stream)
    counters_start = counters["step"]
    emit(TrainEvent("start", counters["step"], total_steps, {
        "trainable_params": trainable, "total_params": total_params, "train_examples": len(data.train),
        "val_examples": len(data.val), "test_examples": len(data.test), "notes": data.notes, "device": device,
        "replayed_examples": data.replayed, "general_examples": len(data.general), "resumed_from": counters["step"],
    }))
    measured = {}
    if not resume:  # the starting point of the curves
        emit(TrainEvent("phase", 0, total_steps, {"phase": message("train.phase.starting_loss")}))
        measured = measure(model, data, 0, cfg.batch_size, pad_id, device, every, stop)
        emit(TrainEvent("phase", 0, total_steps, {"phase": ""}))
        if measured:
            emit(TrainEvent("eval", 0, total_steps, {**measured, "epoch": 0.0, "tokens": 0}))
    general_start = general_end = measured.get("general_loss", counters["general_start"])

    model.train()
    step, tokens, train_loss, status = counters["step"], counters["tokens"], counters["train_loss"], "completed"
    val_loss = measured.get("val_loss", counters["val_loss"])
    loop_start = time.perf_counter() - counters["elapsed"]

    def checkpoint() -> None:  # everything resume needs to go on as if never stopped
        save_checkpoint(output_dir, model, optimizer, scheduler, {
            "step": step, "tokens": tokens, "elapsed": time.perf_counter() - loop_start,
            "seconds": counters["seconds"] + time.perf_counter() - started, "train_loss": train_loss,
            "val_loss": val_loss, "general_start": general_start, "early_stop": watch.state()})

    while step < total_steps:
        if stop():
            status = "stopped"
            break
        micro = [{k: v.to(device) for k, v in collate(next(stream), tokenizer.pad_token_id).items()}
                 for _ in range(cfg.grad_accum)]
        answer_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in micro)
        step_loss, extra = 0.0, {}
        if start_weights:  # the penalty enters once per optimiser step, beside the answer-token loss
            penalty = cfg.l2_to_base * l2_to_start(params, start_weights)
            penalty.backward()
            extra["l2_penalty"] = float(penalty.detach())
        if spec.extra_loss:  # the method's own regulariser, once per optimiser step
            regulariser = spec.extra_loss(model)
            regulariser.backward()
            extra["method_regulariser"] = float(regulariser.detach())
        for batch in micro:  # loss summed over tokens, divided by the step's answer tokens: exact accumulation
            loss_sum, _ = token_loss_sum(model, batch)
            (loss_sum / max(1, answer_tokens)).backward()
            step_loss += float(loss_sum.detach())
            tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if spec.after_step:  # e.g. AdaLoRA moves its rank budget, reading this step's gradients
            spec.after_step(model, step)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        train_loss = step_loss / max(1, answer_tokens)
        elapsed = time.perf_counter() - loop_start
        emit(TrainEvent("step", step, total_steps, {
            "train_loss": train_loss, "lr": scheduler.get_last_lr()[0], "tokens": tokens,
            "epoch": step / steps_per_epoch, "elapsed": elapsed, "tokens_per_s": tokens / max(elapsed, 1e-9),
            "eta": elapsed / step * (total_steps - step), **extra,
        }))
        measured = (measure(model, data, step, cfg.batch_size, pad_id, device, every, stop) if step < total_steps
                    else {})
        if measured:
            val_loss = measured.get("val_loss", val_loss)
            general_end = measured.get("general_loss", general_end)
            emit(TrainEvent("eval", step, total_steps, {**measured, "epoch": step / steps_per_epoch,
                                                         "tokens": tokens}))
            if watch.on and "val_loss" in measured and watch.observe(step, val_loss, params, copy_best):
                break  # the validation loss stopped improving: the run is done (status "completed")
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total_steps:
            checkpoint()

    if status == "stopped" and step > 0:  # resume continues from here
        checkpoint()
    elif status == "completed":
        remove_checkpoint(output_dir)
    early_stop = None
    if watch.stopped_at is not None:  # back to the best evaluation's weights, whose val loss is known
        early_stop = watch.report(restored=watch.restore_best(params))
        val_loss = watch.best_loss if early_stop["restored_best"] else val_loss
    if step > 0 and status == "completed":  # the end point: val and probe once more, whatever the intervals
        measured = measure(model, data, 0, cfg.batch_size, pad_id, device, every, stop, val=early_stop is None)
        if measured:
            val_loss = measured.get("val_loss", val_loss)
            general_end = measured.get("general_loss", general_end)
            emit(TrainEvent("eval", step, total_steps, {**measured, "epoch": step / steps_per_epoch,
                                                         "tokens": tokens}))
    adapter_path = Path(output_dir) / "adapter"
    if step > counters_start:  # nothing new to save when stopped before the first step
        save_trained(model, config.method.name, adapter_path)
    result = RunResult(
        status=status, steps=step, total_steps=total_steps, train_loss=train_loss, val_loss=val_loss,
        seconds=counters["seconds"] + time.perf_counter() - started, tokens=tokens, trainable_params=trainable,
        total_params=total_params, adapter_path=str(adapter_path), train_examples=len(data.train),
        val_examples=len(data.val), test_examples=len(data.test), general_loss_start=general_start,
        general_loss=general_end, early_stop=early_stop,
    )
    emit(TrainEvent("end", step, total_steps, result.to_dict()))
    model = optimizer = loaded = None  # free the weights before the next run starts (the cells too)
    free_memory()
    return result
