"""Training: what a run reports (`events`), a method set up on a model (`attach`), the check before launch
(`preflight`), the SFT loop (`loop`), DPO (`dpo`), resumable checkpoints (`checkpoints`), rank sweeps (`sweeps`)
and the background queue that runs them (`jobs`). The top stage: may import every stage below it (`evaluate`,
`generate`, `data`, `models`, `runs`), `config`, `methods` and the leaves.
"""
