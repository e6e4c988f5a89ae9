"""PEFT Workbench: `python app.py` serves the app on http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from workbench.paths import workbench_home


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the PEFT Workbench app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--home", default=None, help="where runs and uploads are kept (default: $WORKBENCH_HOME)")
    parser.add_argument("--auth", default=None, help="require a login: USER:PASSWORD")
    parser.add_argument("--auth-file", default=None,
                        help="require a login: a file of accounts, one USER:PASSWORD per line (# starts a comment)")
    parser.add_argument("--classroom", default=None, metavar="ACCOUNTS.csv",
                        help="classroom mode: accounts with roles from a CSV file with the columns user,password,role "
                             "(role teacher or student; a password may be a hash from `python -m workbench "
                             "hash-password`). Each student gets a workspace of their own, runs wait in a fair queue, "
                             "and the teacher gets the Class tab")
    parser.add_argument("--class-queue-limit", type=int, default=2, metavar="N",
                        help="classroom mode: how many runs one student may have waiting at once (default 2)")
    parser.add_argument("--class-step-budget", type=int, default=0, metavar="STEPS",
                        help="classroom mode: the most optimizer steps a student's run may take (default 0: as the "
                             "run's settings say); the teacher can change it in the Class tab")
    parser.add_argument("--max-upload-mb", type=float, default=200,
                        help="largest file a browser may upload, in MB (default 200); larger ones are refused")
    parser.add_argument("--data-dir", action="append", default=[], metavar="FOLDER",
                        help="a folder whose files users may name as data (repeatable); besides it the app reads only "
                             "bundled samples and uploaded files")
    args = parser.parse_args(argv)
    if args.classroom and (args.auth or args.auth_file):
        parser.error("--classroom has its own accounts; leave out --auth and --auth-file")
    if args.class_queue_limit < 1 or args.class_step_budget < 0:
        parser.error("--class-queue-limit must be 1 or more and --class-step-budget 0 or more")
    if not args.max_upload_mb > 0:
        parser.error(f"--max-upload-mb must be more than 0; got {args.max_upload_mb:g}")
    for folder in args.data_dir:
        if not Path(folder).expanduser().is_dir():
            parser.error(f"--data-dir {folder}: no such folder; give a folder that exists")
    return args


def launch_options(args: argparse.Namespace, auth: list[tuple[str, str]] | Callable[[str, str], bool] | None) -> dict:
    """What `launch` gets: the address, the login (and the wall that keeps every route but the login page behind
    it), the upload cap; never a public share link."""
    from workbench.ui.app import server_options

    return {"server_name": args.host, "server_port": args.port, "share": False, "auth": auth,
            "max_file_size": f"{args.max_upload_mb:g}mb", "show_error": True, "footer_links": ["api", "settings"],
            **server_options()}


def use_own_gradio_cache(home: Path) -> Path:
    """Give this app a Gradio cache of its own, under its home, and return it.

    Gradio keeps uploads and the files it serves in $GRADIO_TEMP_DIR, by default one folder in /tmp shared by every
    app on the machine, and serves any file in it to a logged-in user: two apps (two classes) would serve each
    other's files. Gradio reads the variable when it is imported (route_utils), when each component is made
    (Block.GRADIO_CACHE) and when the server starts (App.uploaded_file_dir), so set it before any of these.
    """
    cache = (home / "cache" / "gradio").resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(cache / "examples")  # also served; by default under the cwd
    return cache


def keep_gradio_analytics_light() -> None:
    """Stop Gradio from rebuilding its call statistics after every call.

    After each event Gradio builds a pandas table of up to its last 10,000 events to summarise call times for a
    monitoring page this app does not turn on. With a class polling a run every second that table grows to full
    size within minutes and costs tens of milliseconds of the server's one event loop per call. Keep 1,000 events
    and summarise every 1,000th call instead; an operator's own values of these variables are kept.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


def warm_up(cached_tokenizer) -> None:
    """While the first page loads: the default tokenizer (and the one-time model conversion), and plotly's figure
    classes and chart template, whose first use costs about two seconds (the first chart would wait for them)."""
    cached_tokenizer("embedded")
    from workbench.plots import warm

    warm()


def read_accounts(auth: str | None, auth_file: str | None) -> list[tuple[str, str]] | None:
    """The accounts that may log in (None: no login), from --auth and --auth-file; raises ValueError naming the
    bad entry."""
    entries = [("--auth", auth)] if auth else []
    if auth_file:
        try:
            lines = Path(auth_file).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ValueError(f"--auth-file {auth_file}: cannot read it ({err.strerror})") from None
        entries += [(f"{auth_file} line {n}", line.strip()) for n, line in enumerate(lines, 1)
                    if line.strip() and not line.lstrip().startswith("#")]
        if not any(where != "--auth" for where, _ in entries):
            raise ValueError(f"--auth-file {auth_file}: no accounts in it; write one USER:PASSWORD per line")
    accounts = []
    for where, entry in entries:
        user, _, password = entry.partition(":")
        if not user.strip() or not password:
            raise ValueError(f"{where}: {'an entry' if where != '--auth' else 'the value'} must look like "
                             "USER:PASSWORD")
        accounts.append((user.strip(), password))
    return accounts or None


_STOPPING = threading.Event()


def _stop_like_ctrl_c(_signum: int, _frame: object) -> None:
    """The first Ctrl+C or `kill` stops the app cleanly. A second one while it closes (`make run` under `timeout`
    forwards one signal twice; an impatient Ctrl+C) is let go: interrupting the closing would lose the run's save."""
    if _STOPPING.is_set():
        print("Already stopping: the training run saves its adapter and checkpoint first…", file=sys.stderr)
        return
    _STOPPING.set()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home = Path(args.home or workbench_home()).expanduser()
    use_own_gradio_cache(home)  # both before gradio is imported (below)
    keep_gradio_analytics_light()
    from workbench.app import Workbench
    from workbench.models.loading import cached_tokenizer
    from workbench.ui.app import build_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this address can train and chat",
              file=sys.stderr)
    from workbench.classroom.accounts import read_accounts as read_class_accounts

    try:
        auth = read_accounts(args.auth, args.auth_file)
        accounts = read_class_accounts(args.classroom) if args.classroom else None
    except ValueError as err:
        sys.exit(f"error: {err}")
    workbench = Workbench(home, data_dirs=args.data_dir, accounts=accounts, max_waiting=args.class_queue_limit,
                          step_budget=args.class_step_budget)
    if accounts is not None:
        auth = workbench.login  # every account of the file; each request knows who sent it
        teachers = sum(account.is_teacher for account in accounts.values())
        print(f"Classroom mode: {len(accounts)} accounts ({teachers} teacher(s)) from {args.classroom}",
              file=sys.stderr)
    demo = build_app(workbench)  # first: it loads transformers' modules in this thread (see build_app)
    threading.Thread(target=warm_up, args=(cached_tokenizer,), daemon=True).start()
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # `kill`, systemd or docker stop: the same clean stop
    # Ctrl+C too, even where the app was started in the background of a script: there SIGINT comes in ignored and
    # Python leaves it so, and `kill -INT` would do nothing.
    signal.signal(signal.SIGINT, _stop_like_ctrl_c)
    try:
        demo.queue(default_concurrency_limit=8).launch(**launch_options(args, auth))
    finally:  # Ctrl+C: a run in training stops at its next step and keeps its adapter and checkpoint (Resume)
        if workbench.jobs.current:
            print("Stopping the training run at its next step; its adapter and checkpoint are saved…",
                  file=sys.stderr)
        if not workbench.close(timeout=120):
            print("The run did not stop within 2 minutes; it will show as interrupted (Resume goes on from its "
                  "last checkpoint).", file=sys.stderr)


if __name__ == "__main__":
    main()
