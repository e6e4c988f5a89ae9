"""What a training run reports while it runs (TrainEvent) and when it ends (RunResult); shared by the
SFT loop, DPO, the job runner and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainEvent:
    """Something the trainer reports: kind is 'phase' (what it is doing before the first step, e.g. "loading the
    model"; values["phase"], a catalogue Message that whoever shows it puts into words, or "" when it is done),
    'start', 'step', 'eval' or 'end'."""

    kind: str
    step: int
    total_steps: int
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    status: str  # "completed" | "stopped"
    steps: int
    total_steps: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    tokens: int
    trainable_params: int
    total_params: int
    adapter_path: str
    train_examples: int
    val_examples: int
    test_examples: int
    general_loss_start: float | None = None  # forgetting probe before the first step …
    general_loss: float | None = None  # … and at the end
    # Set when early stopping ended the run: the step, the best evaluation's step and val loss, whether its
    # weights were put back (workbench.train.early_stop.EarlyStop.report)
    early_stop: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# train.lr_schedule → the name transformers.get_scheduler knows: both loops (SFT here, DPO through trl) build the
# learning-rate schedule with it, so one config warms up and decays the same way in either.
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def resume_problem(config: Any) -> str | None:
    """Why a run cannot be resumed from its checkpoint, or None (the one statement of this rule)."""
    if config.train.objective == "dpo":
        return "resuming works for SFT runs; a DPO run is short: start it again"
    return None
