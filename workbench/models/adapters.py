"""Save and load what a run trained: a standard PEFT adapter folder, or changed weights as safetensors.

PEFT methods save `adapter_config.json` + `adapter_model.safetensors`, loadable by `PeftModel.from_pretrained`.
Selective and full fine-tuning change the model's own weights; they save just the changed tensors in
`weights.safetensors` with a small manifest, and loading copies them onto a fresh base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.fsio import write_atomic
from workbench.models.loading import one_build_at_a_time

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "workbench_adapter.json"


def is_peft_adapter(path: str | Path) -> bool:
    """A PEFT adapter folder with safetensors weights (a pickled adapter_model.bin is never loaded)."""
    return (Path(path) / "adapter_config.json").is_file() and (Path(path) / "adapter_model.safetensors").is_file()


def is_weights_adapter(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def has_trained_weights(path: str | Path) -> bool:
    return is_peft_adapter(path) or is_weights_adapter(path)


def save_trained(model: Any, method: str, path: str | Path) -> Path:
    """Write a run's trained part under `path`, whatever the method."""
    from peft import PeftModel
    from safetensors.torch import save_file

    path = Path(path)
    if isinstance(model, PeftModel):
        model.save_pretrained(path, safe_serialization=True)
        return path
    changed = {name: p.detach().to("cpu").contiguous().clone() for name, p in model.named_parameters()
               if p.requires_grad}
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{WEIGHTS_FILE}.tmp"
    save_file(changed, str(tmp), metadata={"method": method})
    tmp.replace(path / WEIGHTS_FILE)
    write_atomic(path / MANIFEST_FILE, json.dumps({"method": method, "tensors": sorted(changed)}, indent=2))
    return path


def read_weights(path: str | Path) -> dict[str, Any]:
    """The changed tensors of a selective / full run (safetensors only: nothing is unpickled)."""
    from safetensors.torch import load_file

    return load_file(str(Path(path) / WEIGHTS_FILE))


@one_build_at_a_time
def load_trained(model: Any, path: str | Path, adapter_name: str = "default") -> Any:
    """The base `model` with a run's result applied, ready for inference."""
    if is_peft_adapter(path):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name)
    if is_weights_adapter(path):
        copy_weights(model, read_weights(path))
        return model
    raise FileNotFoundError(f"no trained weights in {path}: expected adapter_config.json (PEFT) or "
                            f"{MANIFEST_FILE} + {WEIGHTS_FILE}")


def copy_weights(model: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    """Copy tensors into the model's parameters in place; returns the values they replaced."""
    import torch

    params = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(params))
    if missing:
        raise ValueError(f"these saved weights do not fit this model: {missing[:5]}; was it trained on another "
                         "base model?")
    replaced = {}
    with torch.no_grad():
        for name, value in tensors.items():
            replaced[name] = params[name].detach().clone()
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return replaced
