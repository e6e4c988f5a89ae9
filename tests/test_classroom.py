"""Classroom mode's rules: accounts from a CSV (plain or hashed passwords, errors that name the line), and the fair
order of the shared queue (round-robin across students, the teacher's pins first, the same after a restart)."""

from __future__ import annotations

import pytest

from workbench.classroom.accounts import (
    AccountsError,
    check_login,
    hash_password,
    parse_accounts,
    read_accounts,
    verify_password,
)
from workbench.classroom.fairness import Waiting, expected_starts, fair_order, queue_refusal
from workbench.i18n import say

CSV = "user,password,role\nkim,{hash},teacher\n이서연,pass-1,student\npark,pass-2,Student\n\n"


def test_accounts_read_plain_and_hashed_passwords_and_check_them():
    hashed = hash_password("t3acher", iterations=1_000)
    accounts = parse_accounts("\ufeff" + CSV.format(hash=hashed))
    assert sorted(accounts) == ["kim", "park", "이서연"] and accounts["kim"].is_teacher
    assert accounts["park"].role == "student" and hashed.startswith("pbkdf2_sha256$1000$")
    assert check_login(accounts, "kim", "t3acher") and not check_login(accounts, "kim", "pass-1")
    assert check_login(accounts, "이서연", "pass-1") and not check_login(accounts, "이서연", "pass-2")
    assert not check_login(accounts, "nobody", "pass-1")
    assert hash_password("x", 1_000) != hash_password("x", 1_000)  # a fresh salt each time
    assert not verify_password("x", "pbkdf2_sha256$broken")


@pytest.mark.parametrize(("text", "english", "korean"), [
    ("name,pw\nkim,1\n", "the first line must name the columns user,password,role (found: name, pw)", "열 이름"),
    ("user,password,role\nkim,,teacher\n", "line 2: a user name and a password are both needed", "2번째 줄"),
    ("user,password,role\nkim,1,teacher\nlee,2,pupil\n", "line 3: role 'pupil' is unknown", "'pupil'"),
    ("user,password,role\nkim,1,teacher\nkim,2,student\n", "line 3: user 'kim' is listed twice", "두 번"),
    ("user,password,role\nlee,2,student\n", "no account has the role teacher", "teacher인 계정이 없습니다"),
])
def test_a_bad_accounts_file_is_refused_naming_the_line_in_either_language(text, english, korean):
    with pytest.raises(AccountsError) as info:
        parse_accounts(text, "class.csv")
    assert english in say(info.value, "en") and say(info.value, "en").startswith("class.csv")
    assert korean in say(info.value, "ko")


def test_an_accounts_file_that_is_missing_or_not_utf8_says_how_to_fix_it(tmp_path):
    with pytest.raises(AccountsError, match="No accounts file at"):
        read_accounts(tmp_path / "none.csv")
    path = tmp_path / "excel.csv"
    path.write_bytes("user,password,role\n김선생,1,teacher\n".encode("cp949"))
    with pytest.raises(AccountsError, match="CSV UTF-8"):
        read_accounts(path)
    path.write_text(CSV.format(hash="t"), encoding="utf-8")
    assert read_accounts(path)["kim"].secret == "t"


def ids(order):
    return [run.run_id for run in order]


def test_runs_start_round_robin_across_students_and_in_order_within_one():
    # a queues three runs first, then b and c one each: everyone's first run goes before a's second
    waiting = [Waiting("a1", "a", 1), Waiting("a2", "a", 2), Waiting("a3", "a", 3), Waiting("b1", "b", 4),
               Waiting("c1", "c", 5), Waiting("b2", "b", 6)]
    assert ids(fair_order(waiting, {})) == ["a1", "b1", "c1", "a2", "b2", "a3"]
    # a's run started a moment ago, b's long ago, c never: c goes first, then b, then a
    assert ids(fair_order(waiting, {"a": 100.0, "b": 50.0})) == ["c1", "b1", "a1", "b2", "a2", "a3"]
    # outside classroom mode every run has the same owner: first come, first served
    single = [Waiting(f"r{i}", "", i) for i in (3, 1, 2)]
    assert ids(fair_order(single, {"": 9.0})) == ["r1", "r2", "r3"]


def test_the_teachers_pins_go_first_in_the_order_they_were_made_and_count_as_a_turn():
    waiting = [Waiting("a1", "a", 1), Waiting("b1", "b", 2), Waiting("b2", "b", 3, pinned_at=20.0),
               Waiting("c1", "c", 4, pinned_at=10.0)]
    assert ids(fair_order(waiting, {})) == ["c1", "b2", "a1", "b1"]


def test_the_order_is_the_same_from_what_a_restarted_app_reads_back():
    waiting = [Waiting("a2", "a", 2), Waiting("b1", "b", 4), Waiting("a3", "a", 3)]
    before = fair_order(waiting, {"a": 10.0})
    assert ids(before) == ["b1", "a2", "a3"] and fair_order(list(reversed(waiting)), {"a": 10.0}) == before


def test_a_student_may_keep_only_so_many_runs_waiting():
    waiting = [Waiting("a1", "a", 1), Waiting("a2", "a", 2), Waiting("b1", "b", 3)]
    refusal = queue_refusal("a", waiting, limit=2)
    assert refusal is not None and "2 run(s) waiting" in say(refusal, "en") and "2개" in say(refusal, "ko")
    assert queue_refusal("b", waiting, limit=2) is None and queue_refusal("a", waiting, limit=0) is None


def test_each_waiting_run_knows_when_it_should_start():
    order = [Waiting("x", "a", 1), Waiting("y", "b", 2), Waiting("z", "c", 3)]
    starts = expected_starts(order, now=1000.0, busy_for=30.0, durations={"x": 100.0, "y": 60.0})
    assert starts == {"x": 1030.0, "y": 1130.0, "z": 1190.0}  # z: after x and y (its own length is unknown)


def test_the_workbench_gives_each_student_their_own_runs_uploads_and_data(tmp_path, make_adapter):
    from workbench.app import Workbench
    from workbench.config import RunConfig

    accounts = parse_accounts(CSV.format(hash=hash_password("t", iterations=1_000)))
    bench = Workbench(tmp_path / "home", accounts=accounts)
    try:
        teacher, lee, park = bench.viewer("kim"), bench.viewer("이서연"), bench.viewer("park")
        assert teacher.teacher and not lee.teacher and bench.viewer("stranger").user == "stranger"
        assert bench.login("kim", "t") and not bench.login("kim", "x") and not bench.login("nobody", "t")
        mine = bench.store.create_run(RunConfig(), name="서연's", owner="이서연")
        theirs = bench.store.create_run(RunConfig(), name="park's", owner="park")
        for record in (mine, theirs):
            make_adapter(bench.store.run_dir(record.run_id))
        assert [label for label, _ in bench.run_choices(True, lee)] == ["서연's · lora · 0 steps"]
        assert len(bench.run_choices(True, teacher)) == 2
        assert bench.run_choices(True) == []  # a call that names no viewer gets nobody's rights in classroom mode
        assert bench.trained_runs([(mine.run_id, "Side 2")], lee)[0][0].name == "서연's"
        with pytest.raises(ValueError, match="Side 2: There is no run of yours"):
            bench.trained_runs([(theirs.run_id, "Side 2")], lee)
        upload = tmp_path / "rows.jsonl"
        upload.write_text('{"instruction": "a", "output": "b"}\n', encoding="utf-8")
        kept = bench.save_upload(upload, park)
        assert kept.parent == bench.uploads / "park" and bench.check_data_path(str(kept), park) == str(kept)
        assert bench.check_data_path(str(kept), teacher) == str(kept)  # the teacher reads every upload
        with pytest.raises(ValueError, match="is refused"):
            bench.check_data_path(str(kept), lee)
        assert bench.check_data_path("sample:ko_chat_polite", lee) == "sample:ko_chat_polite"
    finally:
        bench.close()
    single = Workbench(tmp_path / "solo")
    try:
        assert not single.viewer(None).in_class and not single.login("kim", "t")
    finally:
        single.close()


TINY_RUN = {"train.max_steps": 1, "train.batch_size": 1, "train.max_seq_len": 64, "train.eval_every": 0,
            "data.val_size": 0, "data.test_size": 0}


@pytest.mark.slow
def test_runs_left_waiting_when_the_app_stopped_start_again_round_robin_across_students(home, tiny_config):
    from workbench.runs.store import RunStore
    from workbench.train.jobs import JobRunner

    store = RunStore(home / "runs")
    names = ["a1", "a2", "a3", "b1", "c1"]  # a queued three before b and c queued one each
    for name in names:  # as an app that stopped mid-lesson leaves them: queued, nobody holding them
        store.create_run(tiny_config(**TINY_RUN, name=name), owner=name[0])
    runner = JobRunner(store)
    try:
        ids = {r.name: r.run_id for r in store.list_runs()}
        for run_id in ids.values():
            assert runner.wait(run_id, timeout=600).status == "completed"
    finally:
        runner.shutdown(timeout=60)
    started = sorted(store.list_runs(), key=lambda r: r.started_at)
    assert [r.name for r in started] == ["a1", "b1", "c1", "a2", "a3"]
    assert store.last_started()["a"] == started[-1].started_at


@pytest.mark.slow
def test_the_next_run_trains_while_the_last_ones_test_split_is_scored(home, tiny_config):
    from workbench.runs.store import RunStore
    from workbench.train.jobs import JobRunner

    store = RunStore(home / "runs")
    runner = JobRunner(store)
    try:
        scored = runner.submit(tiny_config(**{**TINY_RUN, "data.test_size": 4, "train.eval_test": True,
                                              "train.eval_max_new_tokens": 8}), name="scored")
        second = runner.submit(tiny_config(**TINY_RUN), name="next")
        assert runner.wait(scored.run_id, timeout=600).status == "completed"  # wait covers the scoring too
        assert runner.wait(second.run_id, timeout=600).status == "completed"
    finally:
        runner.shutdown(timeout=60)
    eval_written = (store.run_dir(scored.run_id) / "eval.json").stat().st_mtime
    assert store.get_run(second.run_id).started_at < eval_written  # it did not wait for the scoring
    assert store.read_json(scored.run_id, "scores.json")["adapter"]


def test_a_student_may_not_queue_more_than_the_limit(home, tiny_config):
    from workbench.runs.store import RunStore
    from workbench.train.jobs import JobRunner

    store = RunStore(home / "runs")
    runner = JobRunner(store, max_waiting=1)
    runner.shutdown()  # no worker: every submitted run stays waiting
    runner.submit(tiny_config(**TINY_RUN), owner="lee")
    with pytest.raises(ValueError) as info:
        runner.submit(tiny_config(**TINY_RUN), owner="lee")
    assert "1 run(s) waiting" in say(info.value, "en")
    runner.submit(tiny_config(**TINY_RUN), owner="park")
    assert len(runner.waiting_order()) == 2


def test_the_hash_password_command_prints_a_hash_the_accounts_file_accepts(monkeypatch, capsys):
    import io

    from workbench.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("교실-비밀\n"))
    assert main(["hash-password"]) == 0
    hashed = capsys.readouterr().out.strip()
    accounts = parse_accounts(f"user,password,role\nkim,{hashed},teacher\n")
    assert check_login(accounts, "kim", "교실-비밀") and not check_login(accounts, "kim", "교실")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-password"]) == 2 and "empty" in capsys.readouterr().err


def _class_workbench(home):
    from workbench.app import Workbench

    accounts = parse_accounts("user,password,role\nteach,t,teacher\nkim,k,student\nlee,l,student\n")
    return Workbench(home, accounts=accounts, max_waiting=2)


def test_the_teachers_step_budget_caps_student_runs_and_is_kept_across_a_restart(tmp_path, tiny_config):
    from workbench.classroom.access import Viewer
    from workbench.teacher import NotTeacher, set_step_budget

    workbench = _class_workbench(tmp_path / "home")
    teach, kim = workbench.viewer("teach"), workbench.viewer("kim")
    with pytest.raises(NotTeacher):
        set_step_budget(workbench, kim, 5)
    assert set_step_budget(workbench, teach, 5) == 5
    long, short = tiny_config(**{"train.max_steps": 80}), tiny_config(**{"train.max_steps": 3})
    assert workbench.class_budget(long, kim).train.max_steps == 5  # capped
    assert workbench.class_budget(short, kim).train.max_steps == 3  # already within
    assert workbench.class_budget(tiny_config(**{"train.max_steps": 0}), kim).train.max_steps == 5  # epochs: capped
    assert workbench.class_budget(long, teach).train.max_steps == 80  # the teacher's own runs are not
    workbench.close()
    again = _class_workbench(tmp_path / "home")
    assert again.step_budget == 5 and again.class_budget(long, Viewer("lee")).train.max_steps == 5
    again.close()


def test_a_student_continues_only_from_a_run_they_may_see_never_from_a_folder(tmp_path, tiny_config):
    from workbench.config import ConfigError
    from workbench.runs.store import StoreError

    workbench = _class_workbench(tmp_path / "home")
    kim, lee = workbench.viewer("kim"), workbench.viewer("lee")
    kims = workbench.store.create_run(tiny_config(), owner="kim").run_id
    assert workbench.check_start_adapter(tiny_config(**{"train.init_adapter": kims}), kim)
    with pytest.raises(StoreError, match="no run of yours"):
        workbench.check_start_adapter(tiny_config(**{"train.init_adapter": kims}), lee)
    with pytest.raises(ConfigError, match="no run of yours"):
        workbench.check_start_adapter(tiny_config(**{"train.init_adapter": str(workbench.store.run_dir(kims))}),
                                      lee)
    workbench.close()


def test_saved_presets_are_each_students_own_and_the_teacher_shares_one_with_the_class(tmp_path, tiny_config):
    from workbench.config import ConfigError
    from workbench.presets import list_presets, read_preset, save_user_preset
    from workbench.teacher import share_teacher_preset, teacher_presets

    workbench = _class_workbench(tmp_path / "home")
    teach, kim, lee = (workbench.viewer(user) for user in ("teach", "kim", "lee"))

    def saved(viewer) -> set[str]:
        return {p.key for p in list_presets(workbench.preset_home(viewer), shared_home=workbench.class_home)
                if p.saved}

    save_user_preset(tiny_config(**{"train.max_steps": 7}), "kims", workbench.preset_home(kim))
    save_user_preset(tiny_config(**{"train.max_steps": 9}), "lesson-1", workbench.preset_home(teach))
    assert saved(kim) == {"saved:kims"} and saved(lee) == set()
    with pytest.raises(ConfigError):
        read_preset("saved:kims", workbench.preset_home(lee), allow_paths=False, shared_home=workbench.class_home)
    assert teacher_presets(workbench, teach) == ["lesson-1"]
    shared = share_teacher_preset(workbench, teach, "lesson-1")
    assert shared.key == "class:lesson-1" and "class:lesson-1" in saved(lee)
    loaded = read_preset("class:lesson-1", workbench.preset_home(lee), allow_paths=False,
                         shared_home=workbench.class_home)
    assert loaded.train.max_steps == 9
    workbench.close()


@pytest.mark.slow
def test_the_teacher_sees_every_run_stops_and_reorders_the_queue_and_exports_the_class(tmp_path, tiny_config):
    import time

    from workbench.i18n import say
    from workbench.teacher import NotTeacher, class_rows, export_class_csv, pin_run, queue_rows, stop_run

    workbench = _class_workbench(tmp_path / "home")
    teach, kim = workbench.viewer("teach"), workbench.viewer("kim")
    training = workbench.jobs.submit(tiny_config(**{"train.max_steps": 500, "train.eval_every": 0}), owner="kim")
    waiting = [workbench.jobs.submit(tiny_config(name=f"{owner}-{n}"), owner=owner).run_id
               for n, owner in enumerate(("kim", "lee", "lee"))]
    deadline = time.monotonic() + 120
    while workbench.store.get_run(training.run_id).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    rows = queue_rows(workbench, teach)
    # Kim's run trains, so lee's turn comes first: lee, kim, lee (round robin, not first come).
    assert [row["run_id"] for row in rows] == [training.run_id, waiting[1], waiting[0], waiting[2]]
    assert rows[0]["place"] == 0 and rows[1]["starts"]  # training now; the next one's expected start
    assert pin_run(workbench, teach, waiting[2])  # lee's second run to the front: it counts as lee's turn
    rows = queue_rows(workbench, teach)
    assert [row["run_id"] for row in rows[1:]] == [waiting[2], waiting[0], waiting[1]] and rows[1]["pinned"]
    assert stop_run(workbench, teach, waiting[0])  # a waiting run leaves the queue
    assert waiting[0] not in [row["run_id"] for row in queue_rows(workbench, teach)]
    with pytest.raises(NotTeacher) as refused:
        stop_run(workbench, kim, training.run_id)
    assert say(refused.value, "ko") == "교사만 할 수 있습니다."
    assert stop_run(workbench, teach, training.run_id)  # the training run stops at its next step
    table = {row["run_id"]: row for row in class_rows(workbench, teach)}
    assert set(table) == {training.run_id, *waiting} and table[waiting[1]]["owner"] == "lee"
    text = export_class_csv(workbench, teach).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("owner,name,status") and "lee-2" in text
    for run_id in waiting[1:]:
        workbench.jobs.stop(run_id)
    assert workbench.close(timeout=120)
    assert workbench.store.get_run(training.run_id).status == "stopped"
