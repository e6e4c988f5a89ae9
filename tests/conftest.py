"""Shared fixtures. Tests use the real embedded model (converted once per machine into the model cache), real
PEFT, real SQLite and real files; each test gets its own WORKBENCH_HOME so runs never leak between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub, here or in CI
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh WORKBENCH_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture
def tiny_config():
    """A run that takes seconds: a few steps on short sequences of the bundled English sample."""
    from workbench.config import RunConfig

    def make(**overrides):
        base = {"train.max_steps": 3, "train.batch_size": 2, "train.max_seq_len": 128, "train.eval_every": 2,
                "train.learning_rate": 0.002, "train.warmup_ratio": 0.0, "data.val_size": 8, "data.test_size": 8,
                # The forgetting probe and test-split scoring have their own tests; off here to keep runs short.
                "train.general_every": 0, "train.eval_test": False}
        return RunConfig().with_overrides({**base, **overrides})

    return make
