"""The Compare tab's plain-data helpers: few-shot sides, answer costs, and a sheet of prompts answered by all sides.

Few-shot: k examples from the training data are placed in the base model's prompt as earlier user/assistant
turns, zero / one / few-shot in-context learning to set beside the fine-tune. Cost: what an answer would cost at
user-entered prices per 1,000 prompt and generated tokens, as hosted models are billed.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.data.examples import read_examples
from workbench.data.files import DataError, read_text
from workbench.data.samples import resolve_data_path
from workbench.i18n import Message, message

MAX_SIDES = 4
MAX_SHOTS = 8


def few_shot_turns(data_path: str, k: int, seed: int = 0, exclude: str = "") -> tuple[dict, ...]:
    """k user/assistant example turns drawn (seeded) from a data file's single-turn examples."""
    if not 0 <= k <= MAX_SHOTS:
        raise ValueError(f"few-shot k is {k!r}; choose 0 to {MAX_SHOTS} examples")
    if k == 0:
        return ()
    examples = [ex for ex in read_examples(resolve_data_path(data_path), kind="sft").examples
                if sum(t["role"] == "user" for t in ex.prompt_messages) == 1]
    examples = [ex for ex in examples if _user_text(ex) != exclude.strip()]  # never show the asked prompt itself
    if len(examples) < k:
        raise ValueError(f"{data_path} has {len(examples)} single-turn example(s); few-shot needs {k}")
    turns: list[dict] = []
    for example in random.Random(seed).sample(examples, k):
        turns += [{"role": "user", "content": _user_text(example)}, {"role": "assistant", "content": example.answer}]
    return tuple(turns)


def _user_text(example: Any) -> str:
    return next(t["content"] for t in example.prompt_messages if t["role"] == "user").strip()


@dataclass(frozen=True)
class Prices:
    """Prices per 1,000 tokens (any currency); zero = no cost shown."""

    prompt_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prompt_per_1k", "output_per_1k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1000:
                raise ValueError(f"price {name} must be a number from 0 to 1000 per 1K tokens; got {value!r}")

    @property
    def shown(self) -> bool:
        return bool(self.prompt_per_1k or self.output_per_1k)

    def cost(self, prompt_tokens: int, new_tokens: int) -> float:
        return prompt_tokens / 1000 * self.prompt_per_1k + new_tokens / 1000 * self.output_per_1k


def side_numbers(state: Any, prices: Prices | None = None) -> dict[str, Any]:
    """One side's numbers for tables: tokens, time to first token, total time, tokens/s and cost."""
    row = {"side": state.label, "answer": state.text, "prompt_tokens": state.prompt_tokens,
           "cached_prompt_tokens": state.cached_tokens, "new_tokens": state.new_tokens,
           "ttft_s": round(state.ttft, 3) if state.ttft is not None else None,
           "seconds": round(state.seconds, 3),
           "tokens_per_s": round(state.tokens_per_s, 1) if state.tokens_per_s else None}
    if prices is not None and prices.shown:
        row["cost"] = round(prices.cost(state.prompt_tokens, state.new_tokens), 6)
    return row


def parse_prompt_sheet(text: str) -> list[str]:
    """Prompts from pasted text (one per line, blank lines skipped) or a one-column CSV's lines."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if prompts and prompts[0].lower() in ("prompt", "prompts"):
        prompts = prompts[1:]  # a CSV header
    if not prompts:
        raise ValueError(message("compare.sheet.error.empty"))
    return prompts


def prompt_sheet_csv(path: str) -> tuple[list[str], list[str]]:
    """The prompts of a CSV's `prompt` column (any case; UTF-8, UTF-16 or Korean Excel's CP949) and notes on how the
    file was read. A cell may hold several lines: it is one prompt, asked as one line."""
    name = Path(path).name
    try:
        text, notes = read_text(path)
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (DataError, csv.Error) as exc:
        error = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], Message) else str(exc)
        raise ValueError(message("compare.sheet.error.unreadable", name=name, error=error)) from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "prompt" not in header:
        found = ", ".join(cell for cell in (rows[0] if rows else []) if cell.strip())
        raise ValueError(message("compare.sheet.error.no_prompt_column", name=name,
                                 found=found or message("compare.sheet.error.no_columns")))
    column = header.index("prompt")
    cells = [row[column].replace("\r", " ").replace("\n", " ") for row in rows[1:] if len(row) > column]
    return parse_prompt_sheet("\n".join(cells)), notes


def answer_sheet(engine: Any, sides: Sequence[Any], prompts: Sequence[str], sampling: Any,
                 prices: Prices | None = None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Every side answers every prompt (sides batched as in chat); yields (prompt index, rows) as it goes."""
    for index, prompt in enumerate(prompts):
        history = [{"role": "user", "content": prompt}]
        states: list[Any] = []
        for states in engine.stream(list(sides), [history] * len(sides), sampling):  # noqa: B007 - last = final
            pass
        yield index, [{"#": index + 1, "prompt": prompt, **side_numbers(state, prices)} for state in states]
