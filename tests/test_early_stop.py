"""Early stopping: the run ends when its validation loss stops improving and keeps its best evaluation's weights
(real model, real PEFT); the rule itself on plain numbers."""

from __future__ import annotations

import pytest
import torch

from workbench.evaluate.loss import evaluate_loss
from workbench.models.adapters import load_trained
from workbench.models.loading import load_model
from workbench.train.early_stop import EarlyStop, copies_weights
from workbench.train.loop import prepare_data, run_training


def test_the_rule_counts_evaluations_without_an_improvement_of_at_least_the_minimum_change():
    weights = [torch.zeros(2)]
    watch = EarlyStop(patience=2, min_delta=0.1)
    assert not watch.observe(10, 2.0, weights, copy_weights=True) and watch.best_step == 10
    weights[0] += 1
    assert not watch.observe(20, 1.95, weights, copy_weights=True)  # lower, but by less than 0.1: not better
    assert not watch.observe(30, 1.5, weights, copy_weights=True) and (watch.best_step, watch.waited) == (30, 0)
    weights[0] += 1
    assert not watch.observe(40, 1.6, weights, copy_weights=True)
    assert watch.observe(50, 1.45, weights, copy_weights=True) and watch.stopped_at == 50
    assert watch.restore_best(weights) and weights[0].tolist() == [1.0, 1.0]  # as they were at step 30
    assert watch.report(True) == {"step": 50, "best_step": 30, "best_val_loss": 1.5, "patience": 2,
                                  "min_delta": 0.1, "restored_best": True}
    resumed = EarlyStop(patience=2, min_delta=0.1)
    resumed.load_state(watch.state())
    assert (resumed.best_loss, resumed.best_step, resumed.waited) == (1.5, 30, 2)
    assert not resumed.restore_best(weights)  # the copy is not in a checkpoint
    assert copies_weights(1_000, 100_000) and not copies_weights(100_000, 100_000)


@pytest.mark.slow
def test_a_run_ends_when_val_loss_stops_improving_and_saves_the_best_evaluations_adapter(tmp_path, tiny_config):
    # Every step is evaluated and nothing counts as better unless it is 10 lower: the first evaluation (step 1) is
    # the best, step 2 uses up the patience of 1, and the run ends there with step 1's weights.
    config = tiny_config(**{"train.max_steps": 6, "train.eval_every": 1, "train.early_stop_patience": 1,
                            "train.early_stop_min_delta": 10.0})
    evals = []
    result = run_training(config, tmp_path / "run",
                          on_event=lambda e: evals.append((e.step, e.values)) if e.kind == "eval" else None)
    assert result.status == "completed" and (result.steps, result.total_steps) == (2, 6)
    assert result.early_stop == {"step": 2, "best_step": 1, "best_val_loss": pytest.approx(evals[1][1]["val_loss"]),
                                 "patience": 1, "min_delta": 10.0, "restored_best": True}
    assert [step for step, values in evals if "val_loss" in values] == [0, 1, 2]  # no val measured again at the end
    assert result.val_loss == pytest.approx(evals[1][1]["val_loss"])
    # The saved adapter is step 1's: its val loss, measured afresh, is step 1's and not step 2's.
    loaded = load_model(config.model)
    val = prepare_data(config, loaded.tokenizer).val
    model = load_trained(loaded.model, result.adapter_path)
    again = evaluate_loss(model, val, 2, loaded.tokenizer.pad_token_id, loaded.device)
    assert again == pytest.approx(evals[1][1]["val_loss"], rel=1e-4)
    assert again != pytest.approx(evals[2][1]["val_loss"], rel=1e-4)


def test_without_a_validation_split_early_stopping_is_off_and_the_run_trains_every_step(tmp_path, tiny_config):
    config = tiny_config(**{"train.max_steps": 2, "data.val_size": 0, "train.eval_every": 1,
                            "train.early_stop_patience": 1, "train.early_stop_min_delta": 10.0})
    result = run_training(config, tmp_path / "run")
    assert (result.steps, result.early_stop) == (2, None)
