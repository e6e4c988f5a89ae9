"""Evaluation: scoring models on examples — generation, metrics, perplexity, a run's test split, the forgetting probe
(`scoring`), the metrics themselves (`metrics`) and the answer-token loss shared with training (`loss`);
multiple-choice benchmarks through lm-evaluation-harness (`multiple_choice`), their sets and tasks (`mc_tasks`, the
bundled sets in `mc_sets/`), calibration (`calibration`) and the shared k-shot prefix run once (`prefix_cache`).
May import: `generate`, `data`, `models`, `runs`, `config` and the leaves.
"""
