"""Where the workbench keeps things: its home (runs, votes, uploads) and the converted-model cache.
A leaf: it imports nothing of the workbench.
"""

from __future__ import annotations

import os
from pathlib import Path


def workbench_home() -> Path:
    """Root of everything the workbench writes: runs, the model cache. Set WORKBENCH_HOME to move it."""
    return Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".peft-workbench").expanduser()


def model_cache_dir() -> Path:
    """Converted models; shared by every WORKBENCH_HOME on this machine. Set WORKBENCH_MODEL_CACHE to move it."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "peft-workbench" / "models"
    return Path(os.environ.get("WORKBENCH_MODEL_CACHE") or default).expanduser()
