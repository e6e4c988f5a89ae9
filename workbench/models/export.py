"""Take a run's result elsewhere: a zip of the adapter, a merged model, or a push to the Hugging Face Hub."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from workbench.methods.registry import METHODS, for_adapter
from workbench.models.adapters import is_peft_adapter, is_weights_adapter, load_trained
from workbench.models.loading import hub_reachable, load_model
from workbench.runs.store import RunStore


class ExportError(RuntimeError):
    """An export that cannot be done; the message says why and what to do instead."""


def zip_adapter(store: RunStore, run_id: str, out_dir: str | Path | None = None) -> Path:
    """The run's adapter folder (and its config) as one zip file, in out_dir or else inside the run folder."""
    adapter = store.adapter_dir(run_id)
    if not adapter.is_dir():
        record = store.get_run(run_id)
        raise ExportError(f"run {record.name!r} has no saved adapter (status {record.status})")
    folder = Path(out_dir) if out_dir is not None else store.run_dir(run_id) / "export"
    target = folder / f"{run_id}-adapter.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(adapter.rglob("*")):
            if path.is_file():
                archive.write(path, Path("adapter") / path.relative_to(adapter))
        archive.write(store.run_dir(run_id) / "config.yaml", "config.yaml")
    tmp.replace(target)
    return target


def merge_adapter(store: RunStore, run_id: str) -> Path:
    """Fold the trained update into the base weights and save a standalone model (safetensors + tokenizer)."""
    adapter = store.adapter_dir(run_id)
    if is_peft_adapter(adapter):
        peft_type = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["peft_type"]
        spec = for_adapter(peft_type)
        if spec is None or not spec.merges:
            mergeable = ", ".join(s.label for s in METHODS.values() if s.merges)
            raise ExportError(f"a {peft_type} adapter cannot be merged into the weights (only {mergeable} can); use "
                              "it as an adapter, or download it as a zip")
    elif not is_weights_adapter(adapter):
        raise ExportError(f"run {store.get_run(run_id).name!r} has no saved adapter to merge")
    config = store.load_config(run_id)
    loaded = load_model(config.model, device="cpu")
    model = load_trained(loaded.model, adapter)
    if is_peft_adapter(adapter):
        model = model.merge_and_unload()
    target = store.run_dir(run_id) / "merged"
    staging = target.with_name("merged.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    loaded.tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def push_adapter(store: RunStore, run_id: str, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload the adapter folder to a Hub repository; returns its URL."""
    if repo_id.count("/") != 1 or any(not part.strip() for part in repo_id.split("/")):
        raise ExportError(f"Hub repository {repo_id!r} must look like 'your-name/adapter-name'")
    adapter = store.adapter_dir(run_id)
    if not adapter.is_dir():
        raise ExportError(f"run {store.get_run(run_id).name!r} has no saved adapter to push")
    if not hub_reachable():
        raise ExportError("the Hugging Face Hub cannot be reached from this machine; download the zip and upload "
                          "it from a machine that is online")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(adapter), repo_id=repo_id, commit_message=f"Upload adapter of {run_id}")
    except Exception as exc:  # network and permission errors all end here: say which, in one line
        raise ExportError(f"pushing to {repo_id} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}; check "
                          "your token (huggingface-cli login or HF_TOKEN) and that you may write there") from None
    return f"https://huggingface.co/{repo_id}"
