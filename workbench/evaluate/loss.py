"""The mean answer-token loss of a model over tokenized examples: validation loss while training,
perplexity when scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.data.formatting import IGNORE_INDEX, TokenizedExample, collate


def token_loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over answer tokens and their count (so micro-batches weigh by tokens)."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Prompt tuning and P-tuning put their virtual tokens in front: their logits are longer than the labels.
    logits = logits[:, -batch["labels"].size(1):-1, :]
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((labels != IGNORE_INDEX).sum())


class StopRequested(Exception):
    """Stop was pressed while the run was still getting ready or measuring: it ends where it is."""


def evaluate_loss(model: Any, data: list[TokenizedExample], batch_size: int, pad_id: int, device: str,
                  stop: Callable[[], bool] | None = None) -> float:
    """Mean answer-token loss over a data set; raises StopRequested between batches when stop() says so."""
    import torch

    was_training, total, count = model.training, 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            if stop and stop():
                model.train(was_training)
                raise StopRequested
            batch = {k: v.to(device) for k, v in collate(data[start:start + batch_size], pad_id).items()}
            loss, n = token_loss_sum(model, batch)
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)
