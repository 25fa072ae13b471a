"""The `lanewatch tune` sub-command: its arguments and its body (registered by cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lanewatch.stream.config.arguments import positive, whole_number


def add_tune_parser(sub) -> None:
    """Register `tune` on the CLI's sub-parsers."""
    t = sub.add_parser("tune", help="search the settings that match a manual count on a clip "
                       "and write the best config (docs/validation.md, Tuning)")
    t.add_argument("video", type=Path, help="the clip that was counted by hand")
    t.add_argument("manual", type=Path, help="its manual count: time_s,frame,lane,direction,"
                   "class (as for validate)")
    t.add_argument("-c", "--config", type=Path, required=True, help="YAML config to start from")
    t.add_argument("-o", "--output", type=Path, required=True,
                   help="output folder: the tuned config, tune.json, tune.md, the check review")
    t.add_argument("--stream", help="which configured stream's lanes to use (if several)")
    t.add_argument("--tolerance-s", type=positive, default=1.0,
                   help="how far apart a manual and an automatic count may be and still match "
                   "(default 1, as validate)")
    t.add_argument("--interval-s", type=positive, default=900.0,
                   help="interval of the per-interval errors in the check (default 900)")
    t.add_argument("--budget", type=whole_number(2), default=150, metavar="N",
                   help="evaluate at most N candidate configs (default 150)")
    t.add_argument("--quick", action="store_true",
                   help="fewer values and no setting that needs another detector pass "
                   "(input size, region): about a minute on a short clip")
    t.add_argument("--no-cache", action="store_true",
                   help="do not keep the detections in OUTDIR/detections-*.npz (a second run "
                   "on the same clip then detects again)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    t.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """The body of `lanewatch tune`."""
    from lanewatch.stream.tune.config_file import yaml_value
    from lanewatch.stream.tune.report import format_text, write_reports  # heavy imports
    from lanewatch.stream.tune.tuner import TuneRequest, raise_on_mismatch, run_tune

    def notify(message: str) -> None:
        if not args.quiet:
            print(f"lanewatch: {message}", file=sys.stderr, flush=True)

    def on_trial(trial, evaluation) -> None:
        if args.quiet:
            return
        changes = ", ".join(f"{n}={yaml_value(v)}" for n, v in trial.changes) or "your config"
        figure = "not a valid config" if trial.score is None else trial.score.text()
        print(f"  [{trial.dimension or 'start'}] {changes}: {figure}", file=sys.stderr,
              flush=True)

    request = TuneRequest(args.video, args.manual, args.config, args.output, args.stream,
                          args.tolerance_s, args.interval_s, args.budget, args.quick,
                          cache=not args.no_cache, progress=not args.quiet)
    outcome = run_tune(request, notify, on_trial)
    json_path, md_path = write_reports(outcome)
    print(format_text(outcome))
    print(f"written: {outcome.written}, {json_path}, {md_path}")
    raise_on_mismatch(outcome)
    return 0
