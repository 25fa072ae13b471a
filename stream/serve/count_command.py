"""`lanewatch count VIDEO -c CONFIG`: count by hand in the browser (docs/validation.md).

Kept apart from cli.py, which registers it with `add_count(sub)`; the heavy imports wait
until the command runs, so `lanewatch --help` stays quick.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got '{text}'") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {value}")
    return value


def _cmd_count(args: argparse.Namespace) -> int:
    from lanewatch.stream.serve.count_app import run_count
    from lanewatch.stream.serve.manual_count import CountSession

    output = args.output.resolve() if args.output is not None else None
    session = CountSession(args.video, args.config, args.stream, output)
    return run_count(session, args.host, args.port)


def add_count(sub) -> None:
    """Register the `count` sub-command on the `lanewatch` parser's sub-parsers."""
    c = sub.add_parser("count", help="count vehicles by hand on a recorded video in the "
                       "browser (keys per lane and class); saves a CSV for `validate`")
    c.add_argument("video", type=Path, help="video file (any file `process` reads)")
    c.add_argument("-c", "--config", type=Path, required=True,
                   help="YAML config file: its stream's lanes are counted")
    c.add_argument("--stream", help="which configured stream's lanes to use (if several)")
    c.add_argument("-o", "--output", type=Path, metavar="CSV",
                   help="also save the count to this file when the page saves (it always "
                   "downloads it)")
    c.add_argument("--host", default="127.0.0.1",
                   help="listen address (default 127.0.0.1: this machine only)")
    c.add_argument("--port", type=_port, default=8765,
                   help="listen port (default 8765; 0: any free port, printed)")
    c.set_defaults(func=_cmd_count)
