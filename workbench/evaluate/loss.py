"""The mean answer-token loss of a model over tokenized examples: validation loss while training,
perplexity when scoring.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from workbench.data.formatting import IGNORE_INDEX, TokenizedExample, collate


def token_loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over answer tokens and their count (so micro-batches weigh by tokens).

    Only the positions that predict an answer token go through the output layer (a 49k-word projection, a fifth of
    the small model's arithmetic, and the float32 cross-entropy over it): the same sum as projecting every position,
    for about a quarter of the positions on instruction data, where the prompt is most of each row.
    """
    import torch.nn.functional as F

    labels = batch["labels"][:, 1:]
    answer = labels != IGNORE_INDEX
    if keeps_answer_logits_only(model):
        keep = F.pad(answer, (0, 1), value=False)  # logits at position p predict the token at p + 1
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       logits_to_keep=keep).logits.reshape(-1, model.config.vocab_size)
        targets = labels[answer]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # Prompt tuning and P-tuning put their virtual tokens in front: their logits are longer than the labels.
        logits = logits[:, -batch["labels"].size(1):-1, :].reshape(-1, logits.size(-1))
        targets = labels.reshape(-1)
    loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int(answer.sum())


def keeps_answer_logits_only(model: Any) -> bool:
    """Whether the model can project only chosen positions (`logits_to_keep` as a per-row mask): a causal LM whose
    forward takes it, and no soft prompt in front of the tokens (its virtual positions would shift the mask)."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _forward_takes_logits_to_keep(type(base))


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    return "logits_to_keep" in inspect.signature(cls.forward).parameters


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
