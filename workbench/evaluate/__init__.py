"""Evaluation: scoring models on examples — generation, metrics, perplexity, a run's test split, the forgetting probe
(`scoring`), the metrics themselves (`metrics`) and the answer-token loss shared with training (`loss`). May import:
`generate`, `data`, `models`, `runs`, `config` and the leaves.
"""
