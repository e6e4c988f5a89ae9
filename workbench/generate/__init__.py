"""Generation: the chat engine that streams several sides on one base model (`engine`), LoRA sides batched in one
forward pass (`batching`), cached prompt contexts (`prompt_cache`), sampling (`sampling`), and the Compare tab's
line-ups: few-shot sides, answer costs, the prompt sheet (`lineups`). May import: `data`, `models`, `config`,
`methods` and the leaves.
"""
