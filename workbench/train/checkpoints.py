"""Resumable checkpoints: the trained tensors, the optimiser and scheduler state, the RNG and the loop counters.

    <run>/checkpoint/trainable.safetensors   every trainable tensor, by parameter name
    <run>/checkpoint/optimizer.safetensors   AdamW moments and step counts per parameter, and the torch RNG state
    <run>/checkpoint/state.json              step, tokens, losses, scheduler and optimiser settings

Only safetensors and JSON: loading a checkpoint never unpickles anything. A checkpoint is written beside the old
one and swapped in by renames, so a crash at any moment leaves a whole checkpoint (the new or the previous one).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint"
_FILES = ("trainable.safetensors", "optimizer.safetensors", "state.json")


def checkpoint_dir(run_dir: str | Path) -> Path | None:
    """The run's last whole checkpoint (the previous one if a swap was cut short), or None."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        folder = Path(run_dir) / name
        if all((folder / file).is_file() for file in _FILES):
            return folder
    return None


def load_counters(run_dir: str | Path) -> dict[str, Any] | None:
    """The loop counters of the run's last checkpoint (step, tokens, elapsed, losses), or None."""
    folder = checkpoint_dir(run_dir)
    return json.loads((folder / "state.json").read_text(encoding="utf-8")) if folder else None


def checkpoint_step(run_dir: str | Path) -> int | None:
    counters = load_counters(run_dir)
    return counters["step"] if counters else None


def save_checkpoint(run_dir: str | Path, model: Any, optimizer: Any, scheduler: Any, counters: dict[str, Any]) -> Path:
    """Write a checkpoint of the training state after `counters["step"]` optimiser steps."""
    import torch
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    fresh, final, old = run_dir / f"{CHECKPOINT}.tmp", run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.old"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    trainable = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, fresh / "trainable.safetensors")
    state = optimizer.state_dict()
    tensors = {"rng_state": torch.get_rng_state()}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = value.detach().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    save_file(tensors, fresh / "optimizer.safetensors")
    payload = {**counters, "param_groups": state["param_groups"], "scheduler": scheduler.state_dict()}
    (fresh / "state.json").write_text(json.dumps(payload, default=_plain), encoding="utf-8")
    for file in _FILES:
        _fsync(fresh / file)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(fresh, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(run_dir: str | Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Put a checkpoint's state back into a freshly built model, optimiser and scheduler; returns the counters."""
    import torch
    from safetensors.torch import load_file

    folder = checkpoint_dir(run_dir)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}: the run stopped before it saved one; start it again")
    payload = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    weights = load_file(folder / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = sorted(set(weights) ^ {name for name, p in params.items() if p.requires_grad})
    if missing:
        raise ValueError(f"the checkpoint in {folder} does not fit this run's model (first differing tensors: "
                         f"{', '.join(missing[:3])}); was the run's method or model changed?")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    tensors = load_file(folder / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("rng_state"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": payload.pop("param_groups")})
    scheduler.load_state_dict(payload.pop("scheduler"))
    return payload


def remove_checkpoint(run_dir: str | Path) -> None:
    """A finished run needs no checkpoint (for full fine-tuning it is three times the model's size)."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old", f"{CHECKPOINT}.tmp"):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
