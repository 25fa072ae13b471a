"""The `lanewatch validate` sub-command: its arguments and its body (registered by cli.py).

The work is in the layers below: sinks/validation_input.py reads the run and the manual
count, trackers/evaluation/count_matching.py and count_metrics.py match and score them,
sinks/validation_report.py and validation_html.py write the results (docs/validation.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lanewatch.sinks.errors import LanewatchError
from lanewatch.stream.config.arguments import fraction, non_negative


def add_validate(sub) -> None:
    """Register `validate` on the CLI's sub-parsers."""
    a = sub.add_parser("validate", help="compare a review's counts with a manual count "
                       "(docs/validation.md); exit code 4 below a threshold you set")
    a.add_argument("run_dir", type=Path, help="output folder of `lanewatch process`")
    a.add_argument("manual", type=Path, help="manual-count CSV: time_s,frame,lane,direction,"
                   "class")
    a.add_argument("--tolerance-s", type=non_negative, default=1.0,
                   help="how far apart in time a manual and an automatic count may be and "
                   "still match, inclusive (default 1)")
    a.add_argument("--interval-s", type=non_negative, default=900.0,
                   help="interval of the per-interval errors (default 900: 15 minutes)")
    for name in ("precision", "recall", "f1"):
        a.add_argument(f"--min-{name}", type=fraction, metavar="R",
                       help=f"fail (exit code 4) when the overall {name} is below R (0..1)")
    a.add_argument("--max-interval-error-pct", type=non_negative, metavar="P",
                   help="fail (exit code 4) when a lane, direction and class is off by more "
                   "than P%% of the manual count in any interval")
    a.add_argument("--json", type=Path, help="where to write the JSON (default "
                   "RUN_DIR/validation.json)")
    a.add_argument("--html", type=Path, help="where to write the HTML (default "
                   "RUN_DIR/validation.html)")
    a.add_argument("--thumbnails", type=int, default=50, metavar="N",
                   help="at most N thumbnails of unmatched events, from the run's video "
                   "(default 50; 0: none)")
    a.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from lanewatch.sinks.errors import ValidationFailed
    from lanewatch.sinks.reports import REPORT_FILE
    from lanewatch.sinks.validation_html import add_to_report, write_validation_html
    from lanewatch.sinks.validation_input import load_manual_counts, load_run
    from lanewatch.sinks.validation_report import (
        VALIDATION_JSON,
        Thresholds,
        format_text,
        validation_dict,
    )
    from lanewatch.trackers.evaluation.count_matching import match_counts
    from lanewatch.trackers.evaluation.count_metrics import validate_counts

    if args.interval_s <= 0:
        raise LanewatchError(f"--interval-s must be more than 0, got {args.interval_s:g}")
    run = load_run(args.run_dir)
    manual = load_manual_counts(args.manual, run)
    for warning in manual.warnings:
        print(f"lanewatch: warning: {warning}", file=sys.stderr)
    validation = validate_counts(match_counts(manual.events, run.events, args.tolerance_s),
                                 run.duration_s, args.interval_s)
    thresholds = Thresholds(args.min_precision, args.min_recall, args.min_f1,
                            args.max_interval_error_pct)
    html_path = args.html or args.run_dir / "validation.html"
    section, notes = write_validation_html(html_path, validation, run, args.manual,
                                           max_thumbnails=args.thumbnails)
    in_report = add_to_report(args.run_dir / REPORT_FILE, section)
    json_path = args.json or args.run_dir / VALIDATION_JSON
    json_path.write_text(json.dumps(validation_dict(
        validation, run_dir=str(args.run_dir), manual_csv=str(args.manual),
        warnings=manual.warnings, thresholds=thresholds, notes=notes), indent=2) + "\n",
        encoding="utf-8")
    print(format_text(validation, f"{args.run_dir} against {args.manual}"))
    print(f"\nwritten: {json_path}, {html_path}" + (", the report's validation section"
          if in_report else "") + "".join(f"\nnote: {n}" for n in notes))
    failures = thresholds.failures(validation)
    if failures:
        raise ValidationFailed("below the acceptance threshold: " + "; ".join(failures))
    return 0
