"""A class at work: N students train, poll, list and chat at once on one classroom-mode app.

    python bench/classroom.py [--students 30] [--steps 2] [--home DIR] [--torch-threads 1]
                              [--client-processes 6 | --in-process]

The real app is launched in this process in classroom mode (as `app.py --classroom` does: a `Workbench` with the
accounts and a queue limit of 2 per student, `build_app`, `queue(default_concurrency_limit=8)`, the login) over a
fresh temporary home (or --home), with one teacher and N students; torch keeps to --torch-threads threads (1), so
that training leaves the server a core. Each student is a thread with a gradio_client `Client` logged in as its own
account; the students' threads run in --client-processes processes of their own (with --in-process: in the app's),
as a class's browsers run on other machines: 30 gradio_clients cost more than a core of their own (each waiting call
polls every 50 ms, in two threads) and, in the app's process, would compete with the server for the GIL. Each
student does what a student does in a lesson:

1. uploads a small JSONL file of its own on the Data tab (`/check_data`, upload=...), whose answers carry a marker
   string of its own;
2. queues two tiny LoRA runs on that file (`/start_run`: --steps max steps, batch 1, max length 64, no evaluation,
   no probe, no test scoring, validation and test share 0, data path = the path `/check_data` returned);
3. about once a second polls its unfinished runs (`/poll_run`) and lists its runs (`/list_runs`) until both are
   finished, and chats (`/compare`: base beside its own finished run, a short prompt, a few tokens) once after its
   first run finished, while the class's other runs train, and once more after its second.

The wall latency of every `/poll_run` and `/list_runs` call is measured (as the student's client sees it). Checked
afterwards, from the store and from everything the server sent each student:

- every one of the 2N runs completed, and its owner in the store is the student who queued it;
- the round-robin order: for every student A and every other student B, B's first run did not start after A's
  second run started if B's first run was already queued then (queued before A's second run started);
- isolation: no answer to a student (any endpoint) held another student's run id, marker string or upload folder,
  while each student's own listing did hold its own runs and the teacher's listing held all 2N.

The goal is p95 ≤ 300 ms for polling and listing. Also printed: the CPU seconds of the app's and the students'
processes and the load average at the start and the end (other work on the machine slows every number down). The
last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TERMINAL = ("completed", "failed", "stopped", "cancelled", "interrupted")
RUN_ID = re.compile(r"\b[0-9]{8}-[0-9]{6}-[a-z0-9_-]{1,40}-[0-9a-f]{6}\b")  # the store's RUN_ID_RE, unanchored
MARKER = re.compile(r"MARK[0-9a-f]{12}KRAM")
UPLOAD_DIR = re.compile(r"uploads[/\\]+([A-Za-z0-9._-]+)[/\\]")
DATA_FILE = re.compile(r"notes-([0-9]{2,})")  # a student's file name, as uploaded and as the app keeps it
CALL_TIMEOUT_S = 600
PROMPT = "Where is my order?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def stats(values: list[float]) -> dict:
    return {"calls": len(values), **{f"p{q}_ms": round(percentile(values, q), 1) for q in (50, 95, 99)},
            "max_ms": round(max(values), 1) if values else float("nan")}


@dataclass
class Student:
    user: str
    password: str
    marker: str
    data_file: Path
    upload_path: str = ""  # the path /check_data returned: where the app keeps the upload
    run_ids: list[str] = field(default_factory=list)
    finished: dict[str, str] = field(default_factory=dict)  # run id -> status /poll_run last said
    poll_ms: list[float] = field(default_factory=list)
    list_ms: list[float] = field(default_factory=list)
    compare_s: list[float] = field(default_factory=list)
    chats: list[str] = field(default_factory=list)  # the run ids chatted with
    seen_run_ids: set[str] = field(default_factory=set)  # every run id in any answer to this student
    listed_run_ids: set[str] = field(default_factory=set)  # ... in its /list_runs answers
    seen_markers: set[str] = field(default_factory=set)
    seen_upload_dirs: set[str] = field(default_factory=set)
    seen_files: set[str] = field(default_factory=set)  # the numbers of the data files named in its answers
    error: str = ""  # what ended this student's lesson early
    call_errors: list[str] = field(default_factory=list)  # error answers to polls, listings and chats
    done_at: float = 0.0  # when both its runs were seen finished (monotonic)

    @property
    def number(self) -> str:
        return self.user.removeprefix("student")


def write_data(student: Student, rows: int = 8) -> None:
    lines = [json.dumps({"prompt": f"Question {n} from {student.user}: where is order #{100 + n}?",
                         "completion": f"Order #{100 + n} ships tomorrow. {student.marker}"}) for n in range(rows)]
    student.data_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def accounts_csv(students: list[Student], teacher_password: str) -> str:
    rows = ["user,password,role", f"teacher,{teacher_password},teacher"]
    rows += [f"{s.user},{s.password},student" for s in students]
    return "\n".join(rows) + "\n"


def scan(student: Student, answer, listing: bool = False) -> None:
    """Note every run id, marker and upload folder in an answer (all of it, as JSON)."""
    blob = json.dumps(answer, default=str, ensure_ascii=False)
    ids = set(RUN_ID.findall(blob))
    student.seen_run_ids |= ids
    if listing:
        student.listed_run_ids |= ids
    student.seen_markers |= set(MARKER.findall(blob))
    student.seen_upload_dirs |= set(UPLOAD_DIR.findall(blob))
    student.seen_files |= set(DATA_FILE.findall(blob))


def value_of(update):
    return update["value"] if isinstance(update, dict) and "value" in update else update


def status_of(html: str) -> str:
    found = re.search(r"<b>(\w+)</b>", html or "")
    return found.group(1) if found else "?"


def call(client, api_name: str, **kwargs):
    return client.submit(api_name=api_name, **kwargs).result(timeout=CALL_TIMEOUT_S)


def student_life(student: Student, url: str, args: argparse.Namespace, start: threading.Barrier,
                 deadline: float) -> None:
    from gradio_client import Client, handle_file

    client = None
    try:
        client = Client(url, auth=(student.user, student.password), verbose=False, download_files=False)
    except Exception as exc:  # noqa: BLE001 - reported per student
        student.error = f"login: {type(exc).__name__}: {exc}"[:500]
    start.wait()
    if client is None:
        return
    try:
        checked = call(client, "/check_data", upload=handle_file(str(student.data_file)), val_size=0, test_size=0)
        scan(student, checked)
        student.upload_path = value_of(checked[0])
        if not student.upload_path:
            raise RuntimeError(f"/check_data kept no file: {str(checked[1])[:300]}")
        form = {"model": "embedded", "method": "lora", "rank": 4, "max_steps": args.steps, "batch_size": 1,
                "max_seq_len": 64, "eval_every": 0, "general_every": 0, "checkpoint_every": 0, "eval_test": False,
                "val_size": 0, "test_size": 0, "data_path": student.upload_path}
        for n in (1, 2):
            started = call(client, "/start_run", **form, run_name=f"{student.user}-run{n}")
            scan(student, started)
            student.run_ids.append(value_of(started))
        while len(student.finished) < len(student.run_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished in time: {student.finished}")
            cycle = time.monotonic()
            for run_id in [r for r in student.run_ids if r not in student.finished]:
                answer = light_call(client, student, "/poll_run", student.poll_ms, run_id=run_id)
                if answer is not None and status_of(answer[0]) in TERMINAL:
                    student.finished[run_id] = status_of(answer[0])
            light_call(client, student, "/list_runs", student.list_ms)
            completed = [r for r in student.run_ids if student.finished.get(r) == "completed"]
            if completed and not student.chats and len(completed) < len(student.run_ids):
                chat(client, student, completed[0])  # the first run is done; the class's others train
            time.sleep(max(0.0, args.pause - (time.monotonic() - cycle)))
        student.done_at = time.monotonic()
        last = [r for r in student.run_ids if student.finished.get(r) == "completed" and r not in student.chats]
        if last:
            chat(client, student, last[-1])
    except Exception as exc:  # noqa: BLE001 - reported per student
        student.error = f"{type(exc).__name__}: {exc}"[:500]
        traceback.print_exc()
    finally:
        if client is not None:
            client.close()


def light_call(client, student: Student, api_name: str, times: list[float], **kwargs):
    """A poll or a listing, timed (ms, into `times`) and scanned; None when the app answered with an error, which is
    noted (the student goes on polling, as a browser's timer does)."""
    from gradio_client.exceptions import AppError

    began = time.perf_counter()
    try:
        answer = call(client, api_name, **kwargs)
    except AppError as exc:
        student.call_errors.append(f"{api_name}: {exc}"[:300])
        scan(student, str(exc))
        return None
    times.append((time.perf_counter() - began) * 1000)
    scan(student, answer, listing=api_name == "/list_runs")
    return answer


def chat(client, student: Student, run_id: str) -> None:
    from gradio_client.exceptions import AppError

    began = time.perf_counter()
    student.chats.append(run_id)  # asked once, answered or not
    try:
        answer = call(client, "/compare", prompt=PROMPT, side_2=run_id, max_new_tokens=8)
    except AppError as exc:
        student.call_errors.append(f"/compare: {exc}"[:300])
        scan(student, str(exc))
        return
    student.compare_s.append(time.perf_counter() - began)
    scan(student, answer)


def round_robin(records: dict[str, object], students: list[Student]) -> tuple[bool, list[str]]:
    """Whether no student's second run started while another student's first run, already queued, still waited."""
    problems = []
    for a in students:
        if len(a.run_ids) < 2 or records[a.run_ids[1]].started_at is None:
            continue
        second_start = records[a.run_ids[1]].started_at
        for b in students:
            if b is a or not b.run_ids:
                continue
            first = records[b.run_ids[0]]
            if first.created_at < second_start and (first.started_at is None or first.started_at > second_start):
                problems.append(f"{a.user}'s second run started at +{second_start - first.created_at:.1f} s after "
                                f"{b.user}'s first run was queued, before it started")
    return not problems, problems


def run_class(url: str, students: list[Student], args: argparse.Namespace) -> tuple[list[Student], float, float]:
    """Every student's thread, from login to its last chat; the students (with what they measured and saw), the
    seconds from the start of the lesson (all logged in) to the last run seen finished, and the CPU seconds this
    process used meanwhile (the students' side)."""
    began = time.monotonic()
    start = threading.Barrier(len(students) + 1)
    threads = [threading.Thread(target=student_life, args=(s, url, args, start, began + args.timeout),
                                name=s.user, daemon=True) for s in students]
    for thread in threads:
        thread.start()
    start.wait(timeout=CALL_TIMEOUT_S)  # every student logged in: the lesson starts now
    began, cpu = time.monotonic(), cpu_seconds()
    for thread in threads:
        thread.join(timeout=max(1.0, began + args.timeout + CALL_TIMEOUT_S - time.monotonic()))
    return students, max((s.done_at for s in students if s.done_at), default=time.monotonic()) - began, \
        cpu_seconds() - cpu


def cpu_seconds() -> float:
    """CPU seconds this process has used (user + system)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--steps", type=int, default=2, help="max steps of every run")
    parser.add_argument("--home", help="the app's home (default: a fresh temporary folder)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds per poll-and-list cycle of a student")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch's threads in this process (training and chat); 1 keeps the server responsive "
                             "on a small CPU")
    parser.add_argument("--timeout", type=float, default=7200, help="give up after this many seconds")
    parser.add_argument("--in-process", action="store_true",
                        help="run the students' clients in the app's process (default: processes of their own; "
                             "in the app's process their threads compete with the server for the GIL)")
    parser.add_argument("--client-processes", type=int, default=6, metavar="K",
                        help="spread the students' threads over K processes (fewer threads per GIL: 30 students "
                             "in one process spend ~15%% more CPU and see ~25%% slower answers)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.torch_threads)
    from workbench.app import Workbench
    from workbench.classroom.accounts import parse_accounts
    from workbench.ui.app import build_app, server_options

    with tempfile.TemporaryDirectory() as folder:
        home = Path(args.home).expanduser() if args.home else Path(folder) / "home"
        files = Path(folder) / "files"
        files.mkdir()
        students = [Student(user=f"student{n:02d}", password=secrets.token_hex(6),
                            marker=f"MARK{secrets.token_hex(6)}KRAM", data_file=files / f"notes-{n:02d}.jsonl")
                    for n in range(1, args.students + 1)]
        for student in students:
            write_data(student)
        teacher_password = secrets.token_hex(6)
        workbench = Workbench(home, accounts=parse_accounts(accounts_csv(students, teacher_password)), max_waiting=2)
        demo = build_app(workbench)
        port = free_port()
        demo.queue(default_concurrency_limit=8).launch(prevent_thread_lock=True, server_name="127.0.0.1",
                                                       server_port=port, quiet=True, show_error=True,
                                                       auth=workbench.login, **server_options())
        url = f"http://127.0.0.1:{port}/"
        try:
            from gradio_client import Client

            load, cpu = os.getloadavg()[0], cpu_seconds()
            if args.in_process:
                students, seconds, students_cpu = run_class(url, students, args)
            else:  # the students' clients in a process of their own: the app's process holds only the app
                import multiprocessing

                k = args.client_processes = max(1, min(args.client_processes, len(students)))
                with multiprocessing.get_context("spawn").Pool(k) as pool:
                    parts = pool.starmap(run_class, [(url, students[i::k], args) for i in range(k)])
                order = {s.user: n for n, s in enumerate(students)}
                students = sorted((s for part in parts for s in part[0]), key=lambda s: order[s.user])
                seconds, students_cpu = max(part[1] for part in parts), sum(part[2] for part in parts)
            # In one process the students' CPU cannot be told from the app's: app_cpu_s is then both.
            cpu = {"app_cpu_s": round(cpu_seconds() - cpu, 1),
                   "students_cpu_s": None if args.in_process else round(students_cpu, 1),
                   "loadavg_start": round(load, 2), "loadavg_end": round(os.getloadavg()[0], 2)}
            teacher = Client(url, auth=("teacher", teacher_password), verbose=False, download_files=False)
            teacher_listed = set(RUN_ID.findall(json.dumps(call(teacher, "/list_runs"), default=str)))
            teacher.close()
            records = {}
            for student in students:
                for run_id in student.run_ids:
                    records[run_id] = workbench.store.get_run(run_id)
        finally:
            demo.close()
            workbench.close()

    result = report(students, records, teacher_listed, seconds, args, cpu)
    print(json.dumps(result))


def report(students: list[Student], records: dict, teacher_listed: set[str], seconds: float,
           args: argparse.Namespace, cpu: dict) -> dict:
    all_ids = [r for s in students for r in s.run_ids]
    completed = [r for r in all_ids if records[r].status == "completed"]
    owners_ok = all(records[r].owner == s.user for s in students for r in s.run_ids) and \
        len(all_ids) == 2 * len(students)
    rr_ok, rr_problems = round_robin(records, students)
    leaks = []
    for s in students:
        others = [o for o in students if o is not s]
        other_ids = {r for o in others for r in o.run_ids}
        if s.seen_run_ids & other_ids:
            leaks.append(f"{s.user} got run ids of others: {sorted(s.seen_run_ids & other_ids)[:3]}")
        for what, seen, theirs in (("markers", s.seen_markers, {o.marker for o in others}),
                                   ("upload folders", s.seen_upload_dirs, {o.user for o in others}),
                                   ("data file names", s.seen_files, {o.number for o in others})):
            if seen & theirs:
                leaks.append(f"{s.user} got {what} of others: {sorted(seen & theirs)[:3]}")
    own_listed = all(set(s.run_ids) <= s.listed_run_ids for s in students if s.run_ids)
    own_marker = all(s.marker in s.seen_markers for s in students)  # the scan does find a marker when one is sent
    teacher_sees_all = set(all_ids) <= teacher_listed
    polls = [t for s in students for t in s.poll_ms]
    lists = [t for s in students for t in s.list_ms]
    compares = [t for s in students for t in s.compare_s]
    errors = {s.user: s.error for s in students if s.error}
    call_errors = [f"{s.user} {e}" for s in students for e in s.call_errors]
    starts = sorted((records[r].started_at, s.user) for s in students for r in s.run_ids
                    if records[r].started_at is not None)
    first = starts[:len(students)]
    first_round = len({user for _, user in first})
    train_seconds = [records[r].seconds for r in completed]
    poll, listing = stats(polls), stats(lists)

    n = len(students)
    print(f"classroom: 1 teacher + {n} students, {len(all_ids)} runs of {args.steps} step(s), torch on "
          f"{args.torch_threads} thread(s), {seconds:.0f} s from the first upload to the last run finished")
    others = sorted({records[r].status for r in all_ids} - {"completed"})
    print(f"  runs completed: {len(completed)} / {2 * n}" + (f" (also: {others})" if others else ""))
    print(f"  owners in the store right: {owners_ok}")
    print(f"  round robin: {rr_ok} — no student's second run started while another student's first run, queued "
          f"before it, still waited; the first {len(first)} starts were {first_round} different students")
    for problem in rr_problems[:5]:
        print(f"    ✗ {problem}")
    print(f"  isolation: {not leaks} — no answer to a student held another's run id, marker or upload folder "
          f"(own runs listed: {own_listed}; own marker seen: {own_marker}; teacher lists all {len(all_ids)}: "
          f"{teacher_sees_all})")
    for leak in leaks[:5]:
        print(f"    ✗ {leak}")
    for name, numbers in (("/poll_run", poll), ("/list_runs", listing)):
        print(f"  {name:<10} {numbers['calls']:5d} calls · p50 {numbers['p50_ms']:6.0f} ms · p95 "
              f"{numbers['p95_ms']:6.0f} ms · p99 {numbers['p99_ms']:6.0f} ms · max {numbers['max_ms']:6.0f} ms "
              f"(goal p95 ≤ 300 ms)")
    if compares:
        print(f"  /compare   {len(compares):5d} chats · p50 {percentile(compares, 50):.1f} s · max "
              f"{max(compares):.1f} s")
    if train_seconds:
        print(f"  training: {sum(train_seconds):.0f} s in all, {percentile(train_seconds, 50):.1f} s per run (median)")
    students_cpu = "in the same process" if args.in_process else \
        f"{cpu['students_cpu_s']:.0f} s in {args.client_processes} process(es) of their own"
    print(f"  CPU: the app's process {cpu['app_cpu_s']:.0f} s, the students' clients {students_cpu}, over "
          f"{seconds:.0f} s on {os.cpu_count()} cores; load average {cpu['loadavg_start']:.1f} at the start, "
          f"{cpu['loadavg_end']:.1f} at the end (other processes on the machine slow everything down)")
    for user, error in list(errors.items())[:5]:
        print(f"  ✗ {user} stopped: {error}")
    if call_errors:
        print(f"  ✗ {len(call_errors)} call(s) answered with an error, e.g.:")
        for error in list(dict.fromkeys(e.split(" ", 1)[1] for e in call_errors))[:5]:
            print(f"    {error}")
    return {
        "students": n, "steps": args.steps, "torch_threads": args.torch_threads, "runs": len(all_ids),
        "finished": len(completed), "owners_ok": owners_ok, "round_robin_ok": rr_ok,
        "first_round_students": first_round, "isolation_ok": not leaks, "own_runs_listed": own_listed,
        "own_marker_seen": own_marker, "teacher_sees_all": teacher_sees_all, "poll_p50_ms": poll["p50_ms"],
        "poll_p95_ms": poll["p95_ms"], "poll_p99_ms": poll["p99_ms"], "poll_max_ms": poll["max_ms"],
        "poll_calls": poll["calls"],
        "list_p50_ms": listing["p50_ms"], "list_p95_ms": listing["p95_ms"], "list_p99_ms": listing["p99_ms"],
        "list_max_ms": listing["max_ms"], "list_calls": listing["calls"], "compare_calls": len(compares),
        "compare_p50_s": round(percentile(compares, 50), 2) if compares else None,
        "compare_max_s": round(max(compares), 2) if compares else None,
        "train_seconds_total": round(sum(train_seconds), 1), "seconds": round(seconds, 1),
        "in_process": args.in_process,
        "client_processes": None if args.in_process else args.client_processes, **cpu, "errors": errors,
        "call_errors": len(call_errors), "call_error_examples": call_errors[:10],
        "round_robin_problems": rr_problems[:10], "leaks": leaks[:10],
    }


if __name__ == "__main__":
    main()
