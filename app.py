"""PEFT Workbench: `python app.py` serves the app on http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from workbench.models import workbench_home


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the PEFT Workbench app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--home", default=None, help="where runs and uploads are kept (default: $WORKBENCH_HOME)")
    parser.add_argument("--auth", default=None, help="require a login: USER:PASSWORD")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from workbench.context import Workbench, cached_tokenizer
    from workbench.ui.app import build_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this address can train and chat",
              file=sys.stderr)
    auth = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        if not user or not password:
            sys.exit("error: --auth must look like USER:PASSWORD")
        auth = (user, password)
    workbench = Workbench(args.home or workbench_home())
    demo = build_app(workbench)  # first: it loads transformers' modules in this thread (see build_app)
    # Warm the default tokenizer (and the one-time model conversion) while the first page loads.
    threading.Thread(target=cached_tokenizer, args=("embedded",), daemon=True).start()
    demo.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port, share=False,
                                                   auth=auth, max_file_size="200mb", show_error=True,
                                                   footer_links=["api", "settings"])


if __name__ == "__main__":
    main()
