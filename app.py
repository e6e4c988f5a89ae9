"""PEFT Workbench: `python app.py` serves the app on http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from workbench.models import workbench_home


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the PEFT Workbench app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--home", default=None, help="where runs and uploads are kept (default: $WORKBENCH_HOME)")
    parser.add_argument("--auth", default=None, help="require a login: USER:PASSWORD")
    parser.add_argument("--auth-file", default=None,
                        help="require a login: a file of accounts, one USER:PASSWORD per line (# starts a comment)")
    parser.add_argument("--max-upload-mb", type=float, default=200,
                        help="largest file a browser may upload, in MB (default 200); larger ones are refused")
    args = parser.parse_args(argv)
    if not args.max_upload_mb > 0:
        parser.error(f"--max-upload-mb must be more than 0; got {args.max_upload_mb:g}")
    return args


def launch_options(args: argparse.Namespace, auth: list[tuple[str, str]] | None) -> dict:
    """What `launch` gets: the address, the login, the upload cap; never a public share link."""
    return {"server_name": args.host, "server_port": args.port, "share": False, "auth": auth,
            "max_file_size": f"{args.max_upload_mb:g}mb", "show_error": True, "footer_links": ["api", "settings"]}


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


def _stop_like_ctrl_c(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from workbench.context import Workbench, cached_tokenizer
    from workbench.ui.app import build_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this address can train and chat",
              file=sys.stderr)
    try:
        auth = read_accounts(args.auth, args.auth_file)
    except ValueError as err:
        sys.exit(f"error: {err}")
    workbench = Workbench(args.home or workbench_home())
    demo = build_app(workbench)  # first: it loads transformers' modules in this thread (see build_app)
    # Warm the default tokenizer (and the one-time model conversion) while the first page loads.
    threading.Thread(target=cached_tokenizer, args=("embedded",), daemon=True).start()
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # `kill`, systemd or docker stop: the same clean stop
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
