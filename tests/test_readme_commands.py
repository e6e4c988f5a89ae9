"""Every command line of the README's Headless block runs, as written, with tiny settings added: a documented command
can never crash unnoticed. The lines are read from README.md itself, so a new line is tested the day it is added."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.runs.store import RunStore
from workbench.train.jobs import execute_run

ROOT = Path(__file__).resolve().parents[1]
# Added to every command of its kind so that it takes seconds; placed last, so they win over the line's own --set.
TINY = {
    "train": ["--max-steps", "1", "--quiet", "--set", "train.batch_size=1", "--set", "train.max_seq_len=192",
              "--set", "train.eval_every=0", "--set", "train.general_every=0", "--set", "train.eval_test=false",
              "--set", "data.val_size=0", "--set", "data.test_size=0"],
    "eval": ["--limit", "2", "--max-new-tokens", "4", "--no-similarity"],
    "chat": ["--max-new-tokens", "4"],
}


def headless_lines() -> list[str]:
    """The `python -m workbench …` lines of the README's Headless block, comments and optional parts removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Headless", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        if line.startswith("python -m workbench"):
            line = re.sub(r"\[[^\]]*\]", "", line)  # [--max-steps N]: optional, and --push needs the Hub
            lines.append(line)
    return lines


def argv_of(line: str, values: dict[str, str]) -> list[str]:
    words = [values.get(word, word) for word in shlex.split(line, comments=True)[3:]]
    words = [word.replace("RUN_DIR", values["RUN_DIR"]) for word in words]
    return words + (TINY.get(words[0], []) if "--resume" not in words else [])


@pytest.fixture
def stopped_run(home, tiny_config):
    """A run stopped after one of its two steps, with a checkpoint: what `train --resume` and the others act on."""
    store = RunStore(home / "runs")
    config = tiny_config(**{"train.max_steps": 2, "train.batch_size": 1, "train.max_seq_len": 64,
                            "train.eval_every": 0, "data.val_size": 0, "data.test_size": 0})
    record = store.create_run(config, name="readme")
    steps = {"n": 0}
    execute_run(store, record.run_id, config, should_stop=lambda: steps["n"] >= 1,
                on_event=lambda e: e.kind == "step" and steps.__setitem__("n", e.step))
    return store, record.run_id


def test_the_headless_block_is_found():
    lines = headless_lines()
    assert len(lines) >= 15 and all(line.startswith("python -m workbench ") for line in lines)


def test_every_headless_command_of_the_readme_runs(stopped_run, tmp_path, capsys):
    store, run_id = stopped_run
    data = tmp_path / "my_data.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say {i}", "output": f"{i}"}) + "\n" for i in range(6)),
                    encoding="utf-8")
    values = {"my_data.jsonl": str(data), "RUN_ID": run_id, "RUN_DIR": str(store.run_dir(run_id)), "...": "Hi",
              "DIR": str(tmp_path / "other-store")}
    resumed = False
    for line in headless_lines():
        argv = argv_of(line, values)
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"{line}\n  ran as {argv}\n  exit {code}\n{out.err[-2000:]}"
        resumed |= "--resume" in argv
    assert resumed and store.get_run(run_id).status == "completed"  # the resume line finished the stopped run
    assert store.get_run(run_id).name == "new name"
