"""The benchmarks' own logic, on a tiny random model (the measurements themselves are in bench/, never timed here).

bench/train.py is also what a lent GPU machine runs (bench/gpu.sh); this keeps its model building, synthetic data,
MFU arithmetic and both recipes working where there is no GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_train_bench_runs_both_recipes_on_a_random_model_and_their_losses_agree(tmp_path):
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "bench/train.py", "--model", "random:tiny", "--data", "long", "--seq",
                           "96", "--batch", "2", "--steps", "2", "--peak-tflops", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"ratio", "ours_tokens_per_s", "plain_tokens_per_s", "ours_peak_mb", "plain_peak_mb"} <= set(result)
    assert result["ratio"] > 0 and len(result["ours_losses"]) == len(result["plain_losses"]) == 2
    assert result["max_loss_difference"] < 0.01  # same examples, same steps: the same curve
    assert 0 < result["ours_mfu"] < 1 and 0 < result["plain_mfu"] < 1


def test_flops_per_token_counts_frozen_and_trained_weights_and_attention():
    sys.path.insert(0, str(ROOT))
    from bench.train import flops_per_token

    # 100 frozen + 10 trained weights, 2 layers of width 4 at length 8: 4·100 + 6·10 + 12·2·4·8
    assert flops_per_token(10, 110, 2, 4, 8.0) == 400 + 60 + 768
