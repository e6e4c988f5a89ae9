"""The general reference set, split once into a probe part and a replay part.

Catastrophic forgetting is measured on the probe part (a fixed sample, the same for every run, so curves compare)
and fought with the replay part (mixed into the training data). The two never overlap: a probe that measured
examples the model had just trained on would hide the forgetting it is there to show.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from workbench.data.examples import read_examples
from workbench.data.samples import GENERAL_REFERENCE, SAMPLE_PREFIX, resolve_data_path

GENERAL_SPEC = f"{SAMPLE_PREFIX}{GENERAL_REFERENCE}"
PROBE_EVERY = 3  # every third item of the set belongs to the probe: 50 of 150, English and Korean alike


@lru_cache(maxsize=1)
def general_parts() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(probe, replay) examples of the bundled general reference set."""
    examples = read_examples(resolve_data_path(GENERAL_SPEC), kind="sft").examples
    probe = tuple(ex for i, ex in enumerate(examples) if i % PROBE_EVERY == 0)
    replay = tuple(ex for i, ex in enumerate(examples) if i % PROBE_EVERY != 0)
    return probe, replay


def probe_examples(count: int) -> list[Any]:
    """The first `count` probe examples: a fixed sample, so every run is measured on the same items."""
    probe, _ = general_parts()
    return list(probe[:max(0, count)])


def replay_examples(train_count: int, ratio: float, seed: int) -> list[Any]:
    """General examples to add to `train_count` task examples so that they make up `ratio` of the mix."""
    if ratio <= 0 or train_count <= 0:
        return []
    _, replay = general_parts()
    wanted = round(ratio / (1 - ratio) * train_count)
    rng = random.Random(seed)
    if wanted <= len(replay):
        return rng.sample(list(replay), wanted)
    return [rng.choice(replay) for _ in range(wanted)]  # more than the pool: draw with repeats
