"""Early stopping: end a run when its validation loss stops improving, and keep the weights of its best evaluation.

`EarlyStop` watches the validation losses the loop measures (every `train.eval_every` steps). An evaluation
improves when its loss is lower than the best so far by at least `train.early_stop_min_delta`; after
`train.early_stop_patience` evaluations in a row without one, the run ends. A copy of the trained tensors is kept at
each new best (on the CPU, and only while they are a small share of the model: a full fine-tune is not copied), so
the adapter saved is the best one seen rather than the last. Its state goes into checkpoints, so a resumed run keeps
counting where it stopped (the copy of the best weights does not: a best from before the resume cannot be restored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Trained tensors above this share of the model's parameters are not copied at each best (a full fine-tune would
# double its memory); the run then ends with its last weights, and says so.
MAX_COPIED_SHARE = 0.25


@dataclass
class EarlyStop:
    patience: int  # evaluations in a row without improvement that end the run; 0 = off
    min_delta: float
    best_loss: float | None = None
    best_step: int = 0
    waited: int = 0  # evaluations since the best
    stopped_at: int | None = None
    best_weights: list[Any] | None = field(default=None, repr=False)

    @property
    def on(self) -> bool:
        return self.patience > 0

    def observe(self, step: int, val_loss: float, params: list[Any], copy_weights: bool) -> bool:
        """Take the validation loss measured after `step`; True when the run should end here."""
        if self.best_loss is None or val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self.waited = val_loss, step, 0
            self.best_weights = [p.detach().to("cpu", copy=True) for p in params] if copy_weights else None
            return False
        self.waited += 1
        if self.waited >= self.patience:
            self.stopped_at = step
            return True
        return False

    def restore_best(self, params: list[Any]) -> bool:
        """Put the best evaluation's weights back into the trained tensors; False when no copy of them is held."""
        if self.best_weights is None:
            return False
        import torch

        with torch.no_grad():
            for param, best in zip(params, self.best_weights, strict=True):
                param.copy_(best.to(param.device))
        return True

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of it (the weights copy stays in memory)."""
        return {"best_loss": self.best_loss, "best_step": self.best_step, "waited": self.waited}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if state:
            self.best_loss, self.best_step, self.waited = state["best_loss"], state["best_step"], state["waited"]

    def report(self, restored: bool) -> dict[str, Any]:
        """The run result's record of an early stop: where, the best evaluation, and which weights were kept."""
        return {"step": self.stopped_at, "best_step": self.best_step, "best_val_loss": self.best_loss,
                "patience": self.patience, "min_delta": self.min_delta, "restored_best": restored}


def copies_weights(trainable: int, total: int) -> bool:
    """Whether the best weights are copied: only while the trained tensors are a small share of the model."""
    return total > 0 and trainable <= MAX_COPIED_SHARE * total
