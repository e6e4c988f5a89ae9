"""Tests for workbench.runs.store on real SQLite and real files: the run index, run folders, metrics, ids, atomic
writes, orphaned runs and concurrent access."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from workbench.classroom.access import Viewer
from workbench.config import RunConfig
from workbench.fsio import slugify, write_atomic
from workbench.i18n import say
from workbench.runs.store import COLUMNS, RUN_ID_RE, RunRecord, RunStore, StoreError, default_store


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def config():
    return RunConfig().with_overrides({"name": "store test", "train.max_steps": 3, "method.rank": 4,
                                       "data.path": "sample:ko_faq"})


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- runs


def test_create_run_writes_folder_and_config(store, config):
    record = store.create_run(config)
    folder = store.run_dir(record.run_id)
    assert folder.is_dir() and folder.parent == store.root
    assert (folder / "config.yaml").is_file()
    assert store.load_config(record.run_id) == config
    assert RUN_ID_RE.match(record.run_id) and "-lora-" in record.run_id
    assert (store.root / "index.sqlite").is_file()


def test_get_run_fields(store, config):
    before = time.time()
    record = store.create_run(config)
    got = store.get_run(record.run_id)
    assert got == record and isinstance(got, RunRecord)
    assert got.status == "queued"
    assert got.name == "store test"  # the config's name when none is given
    assert (got.method, got.model, got.data_path) == ("lora", "embedded", "sample:ko_faq")
    assert got.owner_pid == os.getpid()
    assert before <= got.created_at == got.updated_at <= time.time()
    assert (got.steps, got.total_steps, got.tokens, got.seconds, got.error) == (0, 0, 0, 0.0, "")
    assert got.train_loss is None and got.val_loss is None and got.trainable_params is None
    assert set(got.to_dict()) == set(COLUMNS)


def test_run_name_precedence(store):
    named = store.create_run(RunConfig(name="from config"), name="given")
    assert store.get_run(named.run_id).name == "given"
    unnamed = store.create_run(RunConfig())
    assert store.get_run(unnamed.run_id).name == unnamed.run_id
    long = store.create_run(RunConfig(), name="x" * 500)
    assert store.get_run(long.run_id).name == "x" * 120


def test_get_run_unknown_raises(store):
    with pytest.raises(StoreError, match="no run"):
        store.get_run("20260101-120000-lora-abcdef")


def test_list_runs_newest_first(store, config):
    assert store.list_runs() == []
    ids = []
    for _ in range(4):
        ids.append(store.create_run(config).run_id)
        time.sleep(0.01)
    assert len(set(ids)) == 4
    assert [r.run_id for r in store.list_runs()] == ids[::-1]
    # ordering is by creation, not by the last update
    store.update_run(ids[0], steps=1)
    assert [r.run_id for r in store.list_runs()] == ids[::-1]


def test_update_run_persists(store, config):
    record = store.create_run(config)
    time.sleep(0.01)
    store.update_run(record.run_id, status="running", steps=2, total_steps=3, train_loss=1.25, val_loss=1.5,
                     tokens=1000, seconds=4.5, trainable_params=1234, total_params=135_000_000,
                     error="warning: note")
    got = RunStore(store.root).get_run(record.run_id)  # a fresh store: it really is on disk
    assert got.status == "running" and got.steps == 2 and got.total_steps == 3
    assert got.train_loss == 1.25 and got.val_loss == 1.5
    assert (got.tokens, got.seconds, got.trainable_params, got.total_params) == (1000, 4.5, 1234, 135_000_000)
    assert got.error == "warning: note"
    assert got.updated_at > record.updated_at and got.created_at == record.created_at
    store.update_run(record.run_id, train_loss=None)
    assert store.get_run(record.run_id).train_loss is None


def test_update_run_unknown_field_raises(store, config):
    record = store.create_run(config)
    with pytest.raises(StoreError, match="bogus"):
        store.update_run(record.run_id, steps=5, bogus=1)
    with pytest.raises(StoreError):
        store.update_run(record.run_id, **{"status = 'x'; --": 1})
    assert store.get_run(record.run_id).steps == 0  # nothing was written


def test_update_run_unknown_run_raises(store):
    with pytest.raises(StoreError):
        store.update_run("20260101-120000-lora-abcdef", steps=1)


def test_write_and_read_json(store, config):
    record = store.create_run(config)
    assert store.read_json(record.run_id, "result.json") is None
    payload = {"loss": 0.5, "text": "한국어", "steps": [1, 2]}
    path = store.write_json(record.run_id, "result.json", payload)
    assert path == store.run_dir(record.run_id) / "result.json"
    assert store.read_json(record.run_id, "result.json") == payload
    assert "한국어" in path.read_text(encoding="utf-8")
    assert store.adapter_dir(record.run_id) == store.run_dir(record.run_id) / "adapter"


def test_default_store_lives_under_workbench_home(home):
    store = default_store()
    assert store.root == home / "runs" and store.root.is_dir()


# ---------------------------------------------------------------- metrics


def test_metrics_append_and_read_in_order(store, config):
    run_id = store.create_run(config).run_id
    assert store.read_metrics(run_id) == []
    first = [{"step": 1, "train_loss": 2.5}, {"step": 2, "train_loss": 2.25, "note": "문장"}]
    second = [{"step": 3, "train_loss": 2.0, "val_loss": 2.1}]
    store.append_metrics(run_id, first)
    store.append_metrics(run_id, [])  # a no-op, not an empty line
    store.append_metrics(run_id, second)
    assert store.read_metrics(run_id) == first + second
    lines = (store.run_dir(run_id) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_torn_last_line_is_skipped(store, config):
    run_id = store.create_run(config).run_id
    rows = [{"step": i, "train_loss": 3.0 - i / 10} for i in range(1, 6)]
    store.append_metrics(run_id, rows)
    with open(store.run_dir(run_id) / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"step": 6, "train_lo')  # power cut mid-append: no newline
    assert store.read_metrics(run_id) == rows


def test_append_after_torn_line_keeps_new_rows(store, config):
    run_id = store.create_run(config).run_id
    store.append_metrics(run_id, [{"step": 1}])
    with open(store.run_dir(run_id) / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"step": 2, "lo')
    store.append_metrics(run_id, [{"step": 3}, {"step": 4}])
    assert store.read_metrics(run_id) == [{"step": 1}, {"step": 3}, {"step": 4}]


def test_blank_and_garbage_lines_are_skipped(store, config):
    run_id = store.create_run(config).run_id
    path = store.run_dir(run_id) / "metrics.jsonl"
    path.write_text('{"step": 1}\n\nnot json\n{"step": 2}\n', encoding="utf-8")
    assert store.read_metrics(run_id) == [{"step": 1}, {"step": 2}]


# ---------------------------------------------------------------- run ids


BAD_IDS = ["../x", "/etc/passwd", "..", ".", "a/b", "", None, 42, "20260101-120000-lora-1a2b3c/../../x",
           "20260101-120000-lora-1a2b3c/", "../20260101-120000-lora-1a2b3c", "20260101-120000-LORA-1a2b3c",
           "20260101-120000-lora-1a2b3g", "2026-01-01-lora-1a2b3c", "20260101-120000-lo ra-1a2b3c",
           "20260101-120000-lora-1a2b3c\x00", "20260101-120000--1a2b3c", "20260101-120000-" + "a" * 41 + "-1a2b3c"]


@pytest.mark.parametrize("run_id", BAD_IDS, ids=[repr(x) for x in BAD_IDS])
def test_run_dir_refuses_unsafe_ids(store, run_id):
    with pytest.raises(StoreError, match="invalid run id"):
        store.run_dir(run_id)
    with pytest.raises(StoreError):
        store.get_run(run_id)
    with pytest.raises(StoreError):
        store.read_metrics(run_id)
    with pytest.raises(StoreError):
        store.append_metrics(run_id, [{"step": 1}])
    with pytest.raises(StoreError):
        store.load_config(run_id)


def test_run_dir_refuses_trailing_newline(store):
    with pytest.raises(StoreError):
        store.run_dir("20260101-120000-lora-1a2b3c\n")


def test_run_dir_accepts_well_formed_ids(store):
    for run_id in ("20260101-120000-lora-1a2b3c", "20991231-235959-my_method-2-000000"):
        assert store.run_dir(run_id) == store.root / run_id


@pytest.mark.parametrize("text", ["../../etc", "..", "/etc/passwd", "a/b\\c", "a\x00b", "~root", "C:\\Windows",
                                  "x" * 200, "-.-_-", "   "])
def test_slugify_is_folder_safe(text):
    slug = slugify(text)
    assert slug and len(slug) <= 40
    assert "/" not in slug and "\\" not in slug and "." not in slug and "\x00" not in slug
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def test_slugify_examples():
    assert slugify("../../etc") == "etc"
    assert slugify("My LoRA Run!") == "my-lora-run"
    assert slugify("한국어") == "run"
    assert slugify("🚀🔥") == "run"
    assert slugify("한국어 run 2") == "run-2"
    assert slugify("x" * 100, limit=10) == "x" * 10


# ---------------------------------------------------------------- atomic writes


def test_write_atomic_writes_and_replaces(tmp_path):
    path = tmp_path / "deep" / "er" / "file.txt"
    assert write_atomic(path, "first 한국어") == path
    assert path.read_text(encoding="utf-8") == "first 한국어"
    write_atomic(path, "second")
    assert path.read_text(encoding="utf-8") == "second"
    write_atomic(path, b"\x00\x01bytes")
    assert path.read_bytes() == b"\x00\x01bytes"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]  # no temp files left


def test_write_atomic_concurrent_writers_leave_one_whole_file(tmp_path):
    path = tmp_path / "shared.txt"
    payloads = [str(i) * 10_000 for i in range(8)]
    threads = [threading.Thread(target=write_atomic, args=(path, payload)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert path.read_text() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


# ---------------------------------------------------------------- orphans


def test_orphaned_running_run_becomes_interrupted(store, config):
    pid = dead_pid()
    orphan = store.create_run(config).run_id
    store.update_run(orphan, status="running", owner_pid=pid)
    queued_orphan = store.create_run(config).run_id
    store.update_run(queued_orphan, owner_pid=pid)
    finished = store.create_run(config).run_id
    store.update_run(finished, status="completed", owner_pid=pid)
    mine = store.create_run(config).run_id
    store.update_run(mine, status="running")

    assert sorted(store.mark_orphans_interrupted()) == sorted([orphan, queued_orphan])
    for run_id in (orphan, queued_orphan):
        record = store.get_run(run_id)
        assert record.status == "interrupted" and "stopped" in record.error
    assert store.get_run(finished).status == "completed" and store.get_run(finished).error == ""
    assert store.get_run(mine).status == "running" and store.get_run(mine).owner_pid == os.getpid()
    assert store.mark_orphans_interrupted() == []  # idempotent


def test_run_without_owner_is_orphaned(store, config):
    run_id = store.create_run(config).run_id
    store.update_run(run_id, status="running", owner_pid=0)
    assert store.mark_orphans_interrupted() == [run_id]


def test_run_owned_by_a_live_child_stays_running(store, config):
    child = subprocess.Popen(["sleep", "30"])
    try:
        run_id = store.create_run(config).run_id
        store.update_run(run_id, status="running", owner_pid=child.pid)
        assert store.mark_orphans_interrupted() == []
        assert store.get_run(run_id).status == "running"
    finally:
        child.kill()
        child.wait()
    assert store.mark_orphans_interrupted() == [run_id]


# ---------------------------------------------------------------- integrity and sharing


def test_integrity_and_wal(store, config):
    store.create_run(config)
    assert store.integrity_ok() is True
    with sqlite3.connect(store.root / "index.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_stores_share_the_index(tmp_path, config):
    a, b = RunStore(tmp_path / "runs"), RunStore(tmp_path / "runs")
    first = a.create_run(config).run_id
    second = b.create_run(config).run_id
    assert {r.run_id for r in a.list_runs()} == {r.run_id for r in b.list_runs()} == {first, second}
    b.update_run(first, status="running", steps=7)
    assert a.get_run(first).steps == 7 and a.get_run(first).status == "running"
    assert a.load_config(second) == config
    # reopening keeps existing runs (the schema is created only if missing)
    assert {r.run_id for r in RunStore(tmp_path / "runs").list_runs()} == {first, second}


def test_concurrent_updates_from_threads(tmp_path, config):
    stores = [RunStore(tmp_path / "runs"), RunStore(tmp_path / "runs")]  # threads share one lock per store
    shared = stores[0].create_run(config).run_id
    own = [stores[0].create_run(config).run_id for _ in range(8)]
    errors: list[Exception] = []

    def worker(index: int) -> None:
        store = stores[index % 2]
        try:
            for step in range(50):
                store.update_run(shared, steps=index * 1000 + step, status="running")
                store.update_run(own[index], steps=step, train_loss=float(step))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert all(stores[1].get_run(run_id).steps == 49 for run_id in own)
    assert stores[0].get_run(shared).steps % 1000 == 49  # the last write of some thread wins, whole
    assert stores[0].integrity_ok() and stores[1].integrity_ok()
    assert len(stores[0].list_runs()) == 9


def _finished(store: RunStore, config: RunConfig, name: str = "") -> RunRecord:
    record = store.create_run(config, name=name)
    store.update_run(record.run_id, status="completed", steps=3, total_steps=3, train_loss=1.25)
    store.append_metrics(record.run_id, [{"step": 1, "train_loss": 2.0}, {"step": 3, "train_loss": 1.25}])
    (store.adapter_dir(record.run_id)).mkdir()
    (store.adapter_dir(record.run_id) / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    return store.get_run(record.run_id)


def test_a_deleted_run_goes_to_the_trash_whole_and_comes_back_as_it_was(store, config):
    keep, record = _finished(store, config, "keep"), _finished(store, config, "실험 B")
    folder = store.run_dir(record.run_id)
    where = store.delete_run(record.run_id)
    assert where == store.root / ".trash" / record.run_id and not folder.exists()
    assert [r.run_id for r in store.list_runs()] == [keep.run_id]
    with pytest.raises(StoreError, match="no run"):
        store.get_run(record.run_id)
    (trashed, _when, size), = store.trash()
    assert trashed == record and size > 4096
    assert store.integrity_ok()

    assert store.restore_run(record.run_id) == record
    assert store.get_run(record.run_id) == record  # every column, as before
    assert store.read_metrics(record.run_id) == [{"step": 1, "train_loss": 2.0}, {"step": 3, "train_loss": 1.25}]
    assert (store.adapter_dir(record.run_id) / "adapter_model.safetensors").stat().st_size == 4096
    assert not (folder / "record.json").exists() and store.trash() == []
    with pytest.raises(StoreError, match="no run .* in the trash"):
        store.restore_run(record.run_id)


def test_a_queued_run_is_not_deleted_nor_the_run_it_continues_from(store, config):
    source = _finished(store, config, "source")
    queued = store.create_run(config.with_overrides({"train.init_adapter": source.run_id}), name="continues")
    with pytest.raises(StoreError, match="'continues' is queued; stop it first"):
        store.delete_run(queued.run_id)
    with pytest.raises(StoreError, match="starting adapter of 'continues'"):
        store.delete_run(source.run_id)
    assert len(store.list_runs()) == 2 and store.trash() == []
    store.update_run(queued.run_id, status="stopped")
    store.delete_run(source.run_id)
    store.delete_run(queued.run_id)
    assert store.list_runs() == []
    orphan = store.create_run(config, name="orphan")  # left queued by a process that is gone
    store.update_run(orphan.run_id, owner_pid=dead_pid())
    store.delete_run(orphan.run_id)
    assert store.restore_run(orphan.run_id).status == "interrupted"


def test_emptying_the_trash_frees_the_space_and_renaming_checks_the_name(store, config):
    gone = [_finished(store, config, f"gone {i}") for i in range(2)]
    kept = _finished(store, config, "kept")
    for record in gone:
        store.delete_run(record.run_id)
    count, freed = store.empty_trash()
    assert count == 2 and freed > 2 * 4096
    assert store.trash() == [] and not any((store.root / ".trash").iterdir())
    assert [r.run_id for r in store.list_runs()] == [kept.run_id]
    assert store.empty_trash() == (0, 0)
    assert store.rename_run(kept.run_id, "  lora   r16 best ").name == "lora r16 best"
    with pytest.raises(StoreError, match="New name: empty"):
        store.rename_run(kept.run_id, "   ")
    with pytest.raises(StoreError, match="at most 120"):
        store.rename_run(kept.run_id, "x" * 121)
    assert store.get_run(kept.run_id).name == "lora r16 best"


def test_the_runs_command_renames_deletes_restores_and_empties_the_trash(home, config, capsys):
    from workbench.cli import main

    store = default_store()
    record = _finished(store, config, "cli run")
    assert main(["runs", "--rename", record.run_id, "새 이름"]) == 0
    assert "'cli run' -> '새 이름'" in capsys.readouterr().out
    assert main(["runs"]) == 0
    assert "'새 이름'" in capsys.readouterr().out
    assert main(["runs", "--delete", record.run_id]) == 0
    assert f"runs --restore {record.run_id}" in capsys.readouterr().out
    assert main(["runs", "--trash"]) == 0
    assert record.run_id in capsys.readouterr().out
    assert main(["runs", "--restore", record.run_id]) == 0 and store.get_run(record.run_id).name == "새 이름"
    capsys.readouterr()
    store.delete_run(record.run_id)
    assert main(["runs", "--empty-trash"]) == 0
    assert "deleted 1 run(s) from the trash for good" in capsys.readouterr().out
    assert main(["runs", "--restore", record.run_id]) == 2
    assert "no run" in capsys.readouterr().err


def test_the_trash_ignores_what_it_did_not_put_there(store, config, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    odd = store.root / ".trash" / "20260101-120000-lora-aaaaaa"
    odd.mkdir(parents=True)
    (odd / "record.json").write_text(json.dumps({**_finished(store, config).to_dict(), "run_id": "../../outside"}))
    (store.root / ".trash" / "notes").mkdir()
    (store.root / ".trash" / "notes" / "record.json").write_text("not json")
    assert store.trash() == [] and store.empty_trash() == (0, 0)
    assert (outside / "keep.txt").read_text() == "mine" and odd.is_dir()


# ---------------------------------------------------------------- classroom mode: owners, sharing, turns


def test_an_index_from_before_classroom_mode_gains_its_columns_and_its_runs_are_the_teachers(tmp_path, config):
    root = tmp_path / "old"
    root.mkdir()
    with sqlite3.connect(root / "index.sqlite") as db:  # the schema as first released
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, "
                   "created_at REAL NOT NULL, updated_at REAL NOT NULL, method TEXT NOT NULL, model TEXT NOT NULL, "
                   "data_path TEXT NOT NULL, steps INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT "
                   "0, train_loss REAL, val_loss REAL, seconds REAL NOT NULL DEFAULT 0, tokens INTEGER NOT NULL "
                   "DEFAULT 0, trainable_params INTEGER, total_params INTEGER, error TEXT NOT NULL DEFAULT '', "
                   "owner_pid INTEGER NOT NULL DEFAULT 0)")
        db.execute("INSERT INTO runs (run_id, name, status, created_at, updated_at, method, model, data_path) VALUES "
                   "('20260101-120000-lora-abcdef', 'old run', 'completed', 1, 1, 'lora', 'embedded', 'x')")
    (root / "20260101-120000-lora-abcdef").mkdir()
    store = RunStore(root)
    old = store.get_run("20260101-120000-lora-abcdef")
    assert (old.owner, old.shared, old.started_at, old.pinned_at) == ("", 0, None, None)
    teacher, student = Viewer("kim", teacher=True), Viewer("lee")
    assert [r.name for r in store.list_runs(teacher)] == ["old run"] and store.list_runs(student) == []
    new = store.create_run(config, owner="lee")
    assert store.get_run(new.run_id).owner == "lee"


def test_a_student_sees_their_own_and_shared_runs_and_changes_only_their_own(store, config):
    teacher, lee, park = Viewer("kim", teacher=True), Viewer("lee"), Viewer("park")
    mine = store.create_run(config, name="lee's", owner="lee")
    theirs = store.create_run(config, name="park's", owner="park")
    shown = store.create_run(config, name="teacher's shared", owner="kim")
    store.update_run(shown.run_id, shared=1)
    assert {r.name for r in store.list_runs(lee)} == {"lee's", "teacher's shared"}
    assert len(store.list_runs(teacher)) == 3 and len(store.list_runs()) == 3  # the single user sees everything
    assert store.run_for(lee, mine.run_id, change=True).name == "lee's"
    assert store.run_for(lee, shown.run_id).name == "teacher's shared"
    refusals = []
    for run_id, change in ((theirs.run_id, False), (shown.run_id, True), ("20990101-000000-lora-000000", False)):
        with pytest.raises(StoreError) as info:
            store.run_for(lee, run_id, change=change)
        refusals.append(say(info.value, "en"))
    assert len(set(refusals)) == 1 and "no run of yours" in refusals[0]  # a guessed id learns nothing
    assert store.run_for(teacher, theirs.run_id, change=True).name == "park's"
    assert store.run_for(park, theirs.run_id, change=True).name == "park's"


def test_when_each_owner_last_started_a_run(store, config):
    for owner, started in (("a", 10.0), ("a", 30.0), ("b", 20.0), ("c", None)):
        record = store.create_run(config, owner=owner)
        store.update_run(record.run_id, started_at=started)
    assert store.last_started() == {"a": 30.0, "b": 20.0}
