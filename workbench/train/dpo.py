"""Preference training (DPO): `run_dpo(config, output_dir, emit, should_stop) -> RunResult`, with trl's DPOTrainer.

DPO learns from pairs — a prompt, a chosen and a rejected answer — by raising the chosen answer's log-probability
relative to a frozen reference model more than the rejected one's. The events and the result are the same as the
SFT engine's (`workbench.train.loop`), so the job runner, the store and the UI need nothing new.

Only LoRA-family methods run here; the trained result is a standard PEFT adapter on the base model. The reference:

- a new adapter (`train.init_adapter` empty): trl computes the reference with the adapter switched off, i.e. the
  base model — the same thing as the untrained adapter, whose LoRA B starts at zero;
- an existing adapter (`train.init_adapter` = a run's `adapter/` folder): it is loaded trainable, and trl keeps a
  frozen copy of it as a second adapter named "ref" on the same base weights (no second base model in memory), so
  DPO measures the shift from that model. The copy is removed before saving.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from workbench.config import RunConfig
from workbench.data.examples import DataError, read_examples, split_examples
from workbench.data.formatting import FALLBACK_TEMPLATE
from workbench.data.samples import resolve_data_path
from workbench.methods.registry import dpo_methods, for_adapter, get_method
from workbench.models.adapters import is_peft_adapter, save_trained
from workbench.models.loading import free_memory, load_model, one_build_at_a_time
from workbench.train.attach import count_parameters
from workbench.train.events import SCHEDULES, RunResult, TrainEvent
from workbench.train.preflight import check_runnable, quantize_bits

REF_ADAPTER = "ref"  # the name trl gives the frozen copy of a loaded adapter
_NO_PREFERENCE_ROWS = ("DPO needs preference rows (prompt, chosen, rejected): upload a preference file, or vote "
                       "left/right in the Arena tab and export the votes as preference data. To train on this "
                       "file as it is, use the SFT objective.")


@dataclass
class PreferenceData:
    train: list[dict]
    val: list[dict]
    test: list[Any]  # raw examples, like the SFT engine's test split
    notes: list[str]


def check_dpo_method(name: str) -> None:
    """DPO trains an adapter against a reference; only the LoRA family gives a standard adapter for it here."""
    if not get_method(name).dpo:
        raise ValueError(f"method {name!r} cannot train with DPO; choose one of: {', '.join(dpo_methods())} "
                         "(or use the SFT objective for this method)")


def preference_row(example: Any) -> dict[str, list[dict]]:
    """An example in trl's conversational preference format: the chat template renders it, with the header of
    the assistant turn in the prompt, so only the answer tokens (and the turn's end) get the loss."""
    return {"prompt": [dict(turn) for turn in example.prompt_messages],
            "chosen": [{"role": "assistant", "content": example.chosen}],
            "rejected": [{"role": "assistant", "content": example.rejected}]}


def read_preferences(path: Path) -> Any:
    """The file's preference rows; a clear error when it holds instruction (SFT) data instead."""
    try:
        return read_examples(path, kind="preference")
    except DataError:
        try:
            shapes = read_examples(path, kind="auto").shapes
        except DataError:
            raise  # unusable whatever the kind: its own report says why
        found = ", ".join(f"{count} {shape}" for shape, count in shapes.items())
        raise DataError(f"{path}: no preference rows (found {found} row(s)). {_NO_PREFERENCE_ROWS}") from None


def prepare_preferences(config: RunConfig) -> PreferenceData:
    """Read and split the configured preference data into trl rows."""
    report = read_preferences(resolve_data_path(config.data.path))
    train, val, test = split_examples(report.examples, config.data.val_size, config.data.test_size,
                                      config.data.split_seed)
    notes = list(report.notes)
    if report.bad:
        notes.append(f"{report.bad} bad row(s) skipped; see `python -m workbench data check`")
    return PreferenceData([preference_row(e) for e in train], [preference_row(e) for e in val], test, notes)


@one_build_at_a_time
def load_policy(model: Any, config: RunConfig, init_adapter: str) -> Any:
    """The model to train: a new adapter from the method's settings, or an existing adapter loaded trainable."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training


    if getattr(model, "is_quantized", False):  # QLoRA: casts norms to fp32, enables input grads
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if not init_adapter:
        spec = get_method(config.method.name)
        return get_peft_model(model, spec.build(config.method, model, config.train.max_steps))
    path = Path(init_adapter).expanduser()
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=True)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"train.init_adapter {str(path)!r} does not fit the base model "
                         f"{config.model.name_or_path!r} ({exc}); give an adapter trained on this base") from None


def check_init_adapter(path: Path) -> None:
    if not is_peft_adapter(path):
        raise ValueError(f"train.init_adapter {str(path)!r} is not a PEFT adapter folder (it needs "
                         "adapter_config.json and adapter_model.safetensors); give a run's adapter/ folder, or leave "
                         "it empty to start a new adapter")
    peft_type = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
    spec = for_adapter(peft_type)
    if spec is None or not spec.dpo:
        raise ValueError(f"train.init_adapter {str(path)!r} is a {peft_type} adapter; DPO continues adapters of "
                         f"these methods only: {', '.join(dpo_methods())}")


def dpo_arguments(config: RunConfig, work_dir: Path, device: str, dtype: Any, has_val: bool) -> Any:
    """trl's settings from the run's: one log per optimiser step, no checkpoints, no reporting, fp32 on CPU."""
    import torch
    from trl import DPOConfig

    cfg = config.train
    eval_every = cfg.eval_every if has_val else 0
    return DPOConfig(
        output_dir=str(work_dir), beta=float(getattr(cfg, "dpo_beta", 0.1)), learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps or -1, num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_seq_len, lr_scheduler_type=SCHEDULES[cfg.lr_schedule],
        warmup_steps=cfg.warmup_ratio,  # a value below 1 is a share of the steps (rounded up)
        weight_decay=cfg.weight_decay, max_grad_norm=1.0, seed=cfg.seed, data_seed=cfg.seed,
        eval_strategy="steps" if eval_every else "no", eval_steps=eval_every or None,
        logging_strategy="steps", logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=device == "cpu", bf16=device == "cuda" and dtype == torch.bfloat16,
        fp16=device == "cuda" and dtype == torch.float16, gradient_checkpointing=cfg.gradient_checkpointing,
        dataloader_num_workers=0, remove_unused_columns=True,  # trl keeps its token-id columns and drops the text
    )


def planned_steps(config: RunConfig, train_rows: int) -> int:
    """The optimiser steps the trainer will take (transformers' own arithmetic)."""
    cfg = config.train
    if cfg.max_steps:
        return cfg.max_steps
    batches = math.ceil(train_rows / cfg.batch_size)
    per_epoch = max(1, math.ceil(batches / cfg.grad_accum))
    return max(1, math.ceil(cfg.epochs * per_epoch))


class EventBridge(TrainerCallback):
    """Turns the trainer's logs into TrainEvents and asks should_stop() after every step's log.

    transformers calls every callback hook by name, so subclassing its no-op base is the way in; no behaviour is
    inherited.
    """

    def __init__(self, emit: Callable[[TrainEvent], None], should_stop: Callable[[], bool], total: int):
        self.emit, self.should_stop, self.total = emit, should_stop, total
        self.started = time.perf_counter()
        self.stopped, self.tokens, self.eval_step = False, 0, -1
        self.train_loss: float | None = None
        self.val_loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs:  # eval logs come through on_evaluate; the end-of-training summary is not a step
            return
        step, elapsed = state.global_step, time.perf_counter() - self.started
        self.tokens = int(logs.get("num_tokens", self.tokens))
        self.train_loss = float(logs["loss"])
        self.emit(TrainEvent("step", step, self.total, {
            "train_loss": self.train_loss, "lr": float(logs.get("learning_rate", 0.0)), "tokens": self.tokens,
            "epoch": float(logs.get("epoch", state.epoch or 0.0)), "elapsed": elapsed,
            "tokens_per_s": self.tokens / max(elapsed, 1e-9), "eta": elapsed / max(step, 1) * (self.total - step),
            "reward_accuracy": logs.get("rewards/accuracies"), "reward_margin": logs.get("rewards/margins"),
            "reward_chosen": logs.get("rewards/chosen"), "reward_rejected": logs.get("rewards/rejected"),
            "grad_norm": logs.get("grad_norm"),
        }))
        # Asked here rather than in on_step_end, which runs before this step's log: a stop requested after the
        # UI has seen step k then ends the run at step k. The trainer checks the flag right after logging.
        if step < self.total and self.should_stop():
            self.stopped = True
            control.should_training_stop = True

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        if "eval_loss" not in metrics:
            return
        self.val_loss, self.eval_step = float(metrics["eval_loss"]), state.global_step
        self.emit(TrainEvent("eval", state.global_step, self.total, {
            "val_loss": self.val_loss, "epoch": float(state.epoch or 0.0), "tokens": self.tokens,
            "val_reward_accuracy": metrics.get("eval_rewards/accuracies"),
            "val_reward_margin": metrics.get("eval_rewards/margins"),
        }))


def build_trainer(policy: Any, tokenizer: Any, data: PreferenceData, args: Any, bridge: EventBridge) -> Any:
    """trl's DPOTrainer on our rows. ref_model stays None: trl then takes the reference from the adapter itself
    (switched off for a new adapter, a frozen "ref" copy for a loaded one)."""
    import datasets
    from transformers import PrinterCallback
    from trl import DPOTrainer


    if not getattr(tokenizer, "chat_template", None):  # the same fallback the SFT engine formats with
        tokenizer.chat_template = FALLBACK_TEMPLATE
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # tokenising a few rows needs no progress bar on the CLI's output
    try:
        trainer = DPOTrainer(model=policy, ref_model=None, args=args, train_dataset=datasets.Dataset.from_list(
            data.train), eval_dataset=datasets.Dataset.from_list(data.val) if data.val else None,
            processing_class=tokenizer, callbacks=[bridge])
    finally:
        if bars:
            datasets.enable_progress_bars()
    trainer.remove_callback(PrinterCallback)  # the events carry the logs; no dicts printed on stdout
    return trainer


def run_dpo(
    config: RunConfig,
    output_dir: str | Path,
    emit: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train a LoRA-family adapter with DPO until done (or should_stop() says so); save it under output_dir."""
    emit = emit or (lambda event: None)
    stop = should_stop or (lambda: False)
    started, init_adapter = time.perf_counter(), str(getattr(config.train, "init_adapter", "") or "")
    check_dpo_method(config.method.name)
    if init_adapter:
        check_init_adapter(Path(init_adapter).expanduser())
    check_runnable(config)
    data = prepare_preferences(config)
    loaded = load_model(config.model, quantize_bits=quantize_bits(config))
    policy = load_policy(loaded.model, config, init_adapter)
    if init_adapter:
        data.notes.append(f"continuing the adapter in {init_adapter} (its own rank and targets); the reference "
                          "is that adapter as it was at the start")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".dpo-", dir=output_dir))
    try:
        args = dpo_arguments(config, work_dir, loaded.device, loaded.model.dtype, bool(data.val))
        bridge = EventBridge(emit, stop, total=0)
        counts = count_parameters(policy)  # before trl adds its frozen "ref" copy of a loaded adapter
        trainer = build_trainer(policy, loaded.tokenizer, data, args, bridge)
        result = train_and_save(trainer, bridge, config, data, output_dir, started, counts)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    del trainer, policy, loaded  # free the weights before the next run starts
    free_memory()
    return result


def train_and_save(trainer: Any, bridge: EventBridge, config: RunConfig, data: PreferenceData, output_dir: Path,
                   started: float, counts: tuple[int, int]) -> RunResult:
    """Announce the run, train, evaluate at the end, save the adapter and report."""
    model = trainer.model
    dropped = len(data.train) - len(trainer.train_dataset)
    if dropped:
        data.notes.append(f"{dropped} pair(s) dropped: their prompt alone fills max length "
                          f"{config.train.max_seq_len}; raise train.max_seq_len to keep them")
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"no training pair is left: every prompt is at least {config.train.max_seq_len} tokens; "
                         "raise train.max_seq_len")
    bridge.total = planned_steps(config, len(trainer.train_dataset))
    trainable, total_params = counts
    val_pairs = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    bridge.emit(TrainEvent("start", 0, bridge.total, {
        "trainable_params": trainable, "total_params": total_params, "train_examples": len(trainer.train_dataset),
        "val_examples": val_pairs, "test_examples": len(data.test), "notes": data.notes,
        "device": str(trainer.args.device.type), "objective": "dpo",
    }))
    if bridge.should_stop():
        bridge.stopped = True
    else:
        trainer.train()
    step = trainer.state.global_step
    if val_pairs and step > 0 and bridge.eval_step != step:
        trainer.evaluate()  # the end point of the val curve, whatever the interval
    if REF_ADAPTER in model.peft_config:
        model.delete_adapter(REF_ADAPTER)  # keep the saved folder a plain one-adapter PEFT folder
    adapter_path = save_trained(model, config.method.name, output_dir / "adapter")
    result = RunResult(
        status="stopped" if bridge.stopped and step < bridge.total else "completed", steps=step,
        total_steps=bridge.total, train_loss=bridge.train_loss, val_loss=bridge.val_loss,
        seconds=time.perf_counter() - started, tokens=bridge.tokens, trainable_params=trainable,
        total_params=total_params, adapter_path=str(adapter_path), train_examples=len(trainer.train_dataset),
        val_examples=val_pairs, test_examples=len(data.test),
    )
    bridge.emit(TrainEvent("end", step, bridge.total, result.to_dict()))
    return result
