"""Rank sweeps: one action queues the same run over several ranks, then the results chart against rank.

A sweep is recorded in its runs' names ("<sweep> · rank 8"), so it survives restarts with no extra table, and
any stored runs can be charted against rank, swept or not.
"""

from __future__ import annotations

import re
import time
from typing import Any

from workbench.config import ConfigError, RunConfig
from workbench.evaluate.scoring import read_scores
from workbench.methods.registry import get_method

DEFAULT_RANKS = (4, 8, 16, 32)
NAME_RE = re.compile(r"^(?P<sweep>.+) · rank (?P<rank>\d+)$")


def parse_ranks(text: str) -> list[int]:
    """'4, 8, 16 32' → [4, 8, 16, 32]; refuses anything that is not a list of distinct ranks from 1 to 1024."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise ConfigError("ranks is empty; give whole numbers separated by commas, e.g. 4, 8, 16, 32")
    ranks = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 1024:
            raise ConfigError(f"rank {part!r} in {text!r} is not a whole number from 1 to 1024; e.g. 4, 8, 16, 32")
        ranks.append(int(part))
    if len(set(ranks)) != len(ranks):
        raise ConfigError(f"ranks {text!r} repeat a value; give each rank once")
    return sorted(ranks)


def sweep_configs(config: RunConfig, ranks: list[int], keep_alpha_ratio: bool = True,
                  sweep_name: str = "") -> list[RunConfig]:
    """One config per rank; alpha follows the rank (same alpha/rank scale) unless keep_alpha_ratio is off."""
    if "rank" not in get_method(config.method.name).knobs:
        raise ConfigError(f"method {config.method.name!r} has no rank to sweep; choose a LoRA-family method")
    sweep = sweep_name.strip() or f"{config.name or config.method.name} sweep {time.strftime('%H%M%S')}"
    ratio = config.method.alpha / config.method.rank
    configs = []
    for rank in ranks:
        overrides: dict[str, Any] = {"method.rank": rank, "name": f"{sweep} · rank {rank}"}
        if keep_alpha_ratio:
            overrides["method.alpha"] = max(1, round(ratio * rank))
        configs.append(config.with_overrides(overrides))
    return configs


def list_sweeps(store: Any) -> dict[str, list[str]]:
    """{sweep name: run ids, by rank} of the stored runs whose names mark them as part of a sweep."""
    sweeps: dict[str, list[tuple[int, str]]] = {}
    for record in store.list_runs():
        match = NAME_RE.match(record.name)
        if match:
            sweeps.setdefault(match["sweep"], []).append((int(match["rank"]), record.run_id))
    return {name: [run_id for _, run_id in sorted(runs)] for name, runs in sweeps.items()}


def sweep_points(store: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """Rank, trainable parameters, final losses and test-split scores of runs, for the rank chart."""
    points = []
    for run_id in run_ids:
        record, config = store.get_run(run_id), store.load_config(run_id)
        scores = read_scores(store, run_id).get("adapter", {})
        has_rank = "rank" in get_method(config.method.name).knobs  # IA3, prompts etc. carry an unused default
        points.append({"run_id": run_id, "label": record.name, "rank": config.method.rank if has_rank else None,
                       "trainable_params": record.trainable_params, "val_loss": record.val_loss,
                       "train_loss": record.train_loss, "status": record.status, **scores})
    return points
