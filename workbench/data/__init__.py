"""Data: from a file to training examples.

Reading JSONL / JSON / CSV / TSV / Parquet into rows (`files`), validating rows into examples with named problems
(`examples`), chat templates, answer-only loss masks and padding (`formatting`), the bundled sample sets
(`samples`, with the files in `samples/`), the general reference set of the forgetting probe (`general`) and what
the Data tab shows about a file (`view`). May import: `models` (a tokenizer for `view`), `config` and the leaves.
"""
