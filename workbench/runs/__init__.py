"""Runs: where runs live — the SQLite index and one folder per run, atomic writes, rename, trash and restore
(`store`), and the lock that lets one process at a time train a run (`lock`). May import: `config` and the leaves.
"""
