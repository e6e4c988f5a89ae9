"""Models: loading a base model (the embedded one, a Hub id, a local folder; device, dtype, 4/8-bit) and its
tokenizer (`loading`), saving and loading a run's trained weights (`adapters`), and the exits: zip, merge into the
base, push to the Hub (`export`). May import: `runs` (export reads a run's folder), `config` and the leaves.
"""
