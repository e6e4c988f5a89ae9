"""The bundled sample data sets, named `sample:<name>` in configs and the UI."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from workbench.i18n import message

SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLE_PREFIX = "sample:"
DEFAULT_SAMPLE = "en_ticket_triage"
GENERAL_REFERENCE = "general_reference"


def list_samples() -> list[str]:
    """Names of the bundled training sets (the general reference set is for forgetting checks, not listed)."""
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.jsonl") if p.stem != GENERAL_REFERENCE)


def resolve_data_path(spec: str) -> Path:
    """A config's data path as a file: `sample:NAME` → the bundled file, anything else → that path."""
    if spec.startswith(SAMPLE_PREFIX):
        name = spec[len(SAMPLE_PREFIX):]
        path = SAMPLES_DIR / f"{name}.jsonl"
        if name not in list_samples() + [GENERAL_REFERENCE] or not path.is_file():
            raise FileNotFoundError(message("core.data.sample.unknown", name=repr(name),
                                            choices=", ".join(list_samples())))
        return path
    return Path(spec).expanduser()


@functools.cache
def _infos() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((SAMPLES_DIR / "samples.yaml").read_text(encoding="utf-8")) or {}


def sample_info(name: str) -> dict[str, Any]:
    """What a bundled sample is measured by (samples.yaml): its headline metric, its preset, whether it needs a
    base model that reads Korean."""
    if name not in _infos():
        raise ValueError(message("core.data.sample.no_entry", name=repr(name), path=str(SAMPLES_DIR / "samples.yaml")))
    return {"preset": "classroom-lora", "korean_base": False, **_infos()[name]}
