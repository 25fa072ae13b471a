"""The `lanewatch` command line.

    lanewatch process VIDEO -c CONFIG -o OUTDIR   review a recorded video
    lanewatch check-config CONFIG                 validate a config (and the model and video
                                                  files it names) and print a summary
    lanewatch validate RUN_DIR MANUAL.csv         compare a review's counts with a manual count
    lanewatch count VIDEO -c CONFIG               count by hand in the browser (a CSV for validate)
    lanewatch tune VIDEO MANUAL.csv -c CONFIG -o OUTDIR   settings that match a manual count

Errors the user can fix are printed as `lanewatch: error: ...` without a traceback; the exit
code is 2 for bad input or config, 3 for a truncated video (reports still written), 4 when
`validate` finds the counts below a threshold the user set, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from lanewatch.sinks.database import is_postgres_url
from lanewatch.sinks.errors import ConfigError, LanewatchError
from lanewatch.sinks.redaction import redact
from lanewatch.stream import __version__
from lanewatch.stream.config.arguments import clock_time, positive_int
from lanewatch.stream.config.checks import preflight
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import Config
from lanewatch.stream.serve.count_command import add_count
from lanewatch.stream.tune.command import add_tune_parser
from lanewatch.stream.validation.command import add_validate

# Names of lanewatch.trackers.evaluation.benchmark.TRACKERS, listed here so `--help` needs no
# heavy import.
_BENCH_TRACKERS = ("lanewatch", "roboflow-bytetrack", "roboflow-sort", "roboflow-ocsort",
                   "ultralytics-bytetrack")


def _describe(config: Config) -> str:
    """Readable multi-line summary of a valid config."""
    m = config.model
    classes = ", ".join(m.classes) if m.classes else "all"
    lines = [
        f"model:    {redact(m.path)}",
        f"          task={m.task} imgsz={m.imgsz} conf={m.confidence} iou={m.iou} "
        f"device={m.device} classes={classes}",
        f"tracker:  ByteTrack (lost buffer {config.tracker.lost_track_buffer_s:g} s, "
        f"thresholds {config.tracker.low_threshold:g}/{config.tracker.high_threshold:g})",
        f"counting: anchor={config.counting.anchor.value} "
        f"hysteresis={config.counting.hysteresis:g}xheight "
        f"confirm={config.counting.confirm_frames} "
        f"frames interval={config.counting.interval_s:g} s",
        f"streams:  {len(config.streams)}",
    ]
    for s in config.streams:
        lines.append(f"  - {s.id}: {redact(s.source)} ({s.coordinates}, "
                     f"{len(s.lanes)} lane(s))")
        for lane in s.lanes:
            parts = []
            if lane.line is not None:
                (x1, y1), (x2, y2) = lane.line
                parts.append(f"line ({x1:g},{y1:g})->({x2:g},{y2:g}) counts {lane.direction.value}"
                             f" [in={lane.in_label}, out={lane.out_label}]")
            if lane.polygon is not None:
                parts.append(f"polygon of {len(lane.polygon)} points")
            if lane.congestion is not None:
                c = lane.congestion
                cond = " or ".join(x for x in (
                    f"occupancy>={c.min_occupancy}" if c.min_occupancy else "",
                    f"dwell>={c.min_dwell_s:g}s" if c.min_dwell_s else "",
                    f"queue>={c.min_queue}" if c.min_queue else "") if x)
                parts.append(f"congested when {cond} for {c.min_duration_s:g}s")
            if lane.max_dwell_s is not None:
                parts.append(f"alert after {lane.max_dwell_s:g}s in the lane")
            lines.append(f"      {lane.name}: " + "; ".join(parts))
        if s.turning is not None:
            t = s.turning
            lines.append(f"      turning: zones {', '.join(z.name for z in t.zones)}; "
                         f"{len(t.movements)} named movement(s)")
        if s.calibration is not None:
            lines.append(f"      calibration: {len(s.calibration.image_points)} ground points "
                         f"(speeds up to {s.calibration.max_speed_kmh:g} km/h)")
    return "\n".join(lines)


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from lanewatch.stream.detect.policy_config import model_class_problems  # class names

    problems = preflight(config) + model_class_problems(config.model)  # fail only later
    if problems:
        raise ConfigError("\n".join(
            [f"{args.config}: invalid configuration ({len(problems)} problem(s)):"]
            + [f"  - {p}" for p in problems]))
    print(f"{args.config}: OK")
    print(_describe(config))
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    wall = time.perf_counter()
    from lanewatch.stream.pipeline.review import review_video  # heavy imports only when needed

    config = load_config(args.config)
    if args.no_video:
        config = config.model_copy(
            update={"output": config.output.model_copy(update={"video": False})})
    result = review_video(args.video, config, args.output, args.stream,
                          progress=not args.quiet, max_frames=args.max_frames,
                          start_time=args.start_time)
    s = result.summary
    if not args.quiet:
        print(f"processed {s['frames']} frames in {s['elapsed_s']:.1f} s "
              f"({s['fps_achieved']} frames/s) after {s['startup_s']:.1f} s of start-up; "
              f"{s['total_crossings']} crossings")
        for name, lane in s["lanes"].items():
            by_dir = ", ".join(f"{d} {n}" for d, n in lane["by_direction"].items())
            print(f"  {name}: {lane['total']} ({by_dir})")
        print(f"outputs in {result.outdir}/ (wall time {time.perf_counter() - wall:.1f} s)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from lanewatch.stream.bench import end_to_end as bench  # heavy imports only when needed

    config = load_config(args.config)
    video = args.video or Path(config.streams[0].source)
    if not video.is_file():
        raise LanewatchError(f"bench needs a video file: {video} is not one (give VIDEO)")
    figures = bench.run(config, video, args.models, args.live_seconds,
                        ultralytics=not args.no_ultralytics, streams=args.streams,
                        streams_seconds=args.streams_seconds, rounds=args.rounds,
                        streams_only=args.streams_only)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from lanewatch.stream.serve.service import serve  # heavy imports only when needed

    config = load_config(args.config)
    updates: dict = {}
    if args.store is not None:  # a PostgreSQL URL or a SQLite file
        key = "url" if is_postgres_url(args.store) else "path"
        updates["store"] = config.store.model_copy(update={key: args.store})
    if args.cluster is not None:
        updates["cluster"] = config.cluster.model_copy(update={
            "enabled": True, "address": None if args.cluster == "local" else args.cluster})
    if updates:  # validated again: cluster mode needs a PostgreSQL store
        try:
            config = Config.model_validate(
                config.model_copy(update=updates).model_dump(by_alias=True))
        except ValidationError as err:
            message = err.errors()[0]["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{args.config} with --store/--cluster: {message}") from None
    _load_tracker_kernels()  # said on stderr if they must compile, before the service starts
    serve(config, args.host, args.port, config_path=Path(args.config).resolve())
    return 0


def _load_tracker_kernels() -> None:
    """Load the tracker's compiled kernels (each stream's start would do it silently); when they
    are not in Numba's cache (install.sh compiles them), say so before the compile's wait."""
    from lanewatch.trackers.bytetrack.kernels import COMPILING_MESSAGE
    from lanewatch.trackers.bytetrack.warm_up import warm_up

    warm_up(on_compile=lambda: print(f"lanewatch: {COMPILING_MESSAGE}", file=sys.stderr,
                                     flush=True))


def _cmd_bench_tracker(args: argparse.Namespace) -> int:
    from lanewatch.trackers.evaluation.benchmark import TRACKERS, compare, format_table
    from lanewatch.trackers.evaluation.mot import load_benchmark

    if not args.data.is_dir():
        raise LanewatchError(f"benchmark data not found: {args.data} (a folder of "
                             "MOTChallenge sequences; set LANEWATCH_ASSETS or pass --data)")
    sequences = load_benchmark(args.data)
    if args.sequences:
        unknown = set(args.sequences) - {s.name for s in sequences}
        if unknown:
            raise LanewatchError(f"unknown sequence(s): {', '.join(sorted(unknown))}")
        sequences = [s for s in sequences if s.name in args.sequences]
    frames = sum(s.length for s in sequences)
    print(f"{len(sequences)} sequences, {frames} frames: {', '.join(s.name for s in sequences)}")
    print(f"timing {len(args.trackers)} trackers, {args.repeats} interleaved rounds ...",
          flush=True)
    rows = compare({name: TRACKERS[name] for name in args.trackers}, sequences, args.repeats)
    print()
    print(format_table(rows))
    return 0


def _default_mot15() -> Path:
    import os

    return Path(os.environ.get("LANEWATCH_ASSETS", "../shared")) / "bench-data" / "mot15"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="lanewatch", description="Real-time video analytics for traffic.")
    parser.add_argument("--version", action="version", version=f"lanewatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="review a recorded video: counts, reports, annotated video")
    p.add_argument("video", type=Path, help="video file to process")
    p.add_argument("-c", "--config", type=Path, required=True, help="YAML config file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--stream", help="which configured stream's lanes to use (if several)")
    p.add_argument("--no-video", action="store_true", help="skip annotated.mp4 (faster)")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--start-time", type=clock_time, metavar="ISO",
                   help="when the recording started, for clock times in the reports, e.g. "
                   "2026-03-02T07:30:00 (default: the video's creation_time, if it has one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_process)

    v = sub.add_parser(
        "serve", help="run every configured stream live: WebSocket, API, metrics",
        description="Run every stream of the config live until Ctrl-C or SIGTERM: count "
        "crossings, keep them in the store, and serve the dashboard (/), the JSON API (/api), "
        "WebSocket pushes (/ws) and Prometheus metrics (/metrics) on server.host:server.port. "
        "Logs go to stderr (INFO; -v for DEBUG).")
    v.add_argument("-c", "--config", type=Path, required=True, help="YAML config file")
    v.add_argument("--host", help="listen address (default: server.host)")
    v.add_argument("--port", type=int, help="listen port (default: server.port)")
    v.add_argument("--store", help="count store: a SQLite file or a postgresql:// URL "
                   "(default: store.url or store.path)")
    v.add_argument("--cluster", metavar="ADDRESS",
                   help="run the streams as Ray actors: auto (the Ray cluster this machine "
                   "belongs to), ray://head:10001, or local (default: the cluster: section)")
    v.set_defaults(func=_cmd_serve)

    b = sub.add_parser("bench-tracker",
                       help="compare trackers on MOTChallenge data (MOTA, IDF1, speed)")
    b.add_argument("--data", type=Path, default=_default_mot15(),
                   help="folder of MOTChallenge sequences (default: $LANEWATCH_ASSETS/"
                   "bench-data/mot15, LANEWATCH_ASSETS defaulting to ../shared)")
    b.add_argument("--trackers", nargs="+", default=list(_BENCH_TRACKERS),
                   choices=_BENCH_TRACKERS, help="which trackers to run")
    b.add_argument("--sequences", nargs="+", help="only these sequences")
    b.add_argument("--repeats", type=positive_int, default=3,
                   help="interleaved timed rounds; each tracker's best is reported (default 3)")
    b.set_defaults(func=_cmd_bench_tracker)

    e = sub.add_parser("bench", help="end-to-end speed against the model alone and "
                       "Ultralytics, live latency, model comparison (docs/performance.md)")
    e.add_argument("video", type=Path, nargs="?",
                   help="clip to measure on (default: the config's first stream, a file)")
    e.add_argument("-c", "--config", type=Path, required=True, help="YAML config file")
    e.add_argument("--models", nargs="*", default=[], metavar="PATH",
                   help="models for the comparison table (exported OpenVINO/ONNX)")
    e.add_argument("--live-seconds", type=float, default=20.0,
                   help="how long to measure live latency (0: skip)")
    e.add_argument("--streams", type=int, default=4, metavar="N",
                   help="how many cameras the box counts exactly: 1 to N paced copies of the "
                   "clip, played once, counted live against the review (0: skip)")
    e.add_argument("--streams-seconds", type=float, default=None,
                   help="the cameras play only the clip's first S seconds (a short run; "
                   "default: the whole clip)")
    e.add_argument("--streams-only", action="store_true",
                   help="measure only the many-cameras part (--streams N)")
    e.add_argument("--rounds", type=positive_int, default=3,
                   help="interleaved rounds of the model alone, counting and annotated: the "
                   "target ratios are their medians (default 3)")
    e.add_argument("--no-ultralytics", action="store_true",
                   help="skip Ultralytics' model.track and ObjectCounter")
    e.add_argument("--json", type=Path, help="also write the figures to this file")
    e.set_defaults(func=_cmd_bench)

    c = sub.add_parser("check-config", help="validate a config file and print a summary")
    c.add_argument("config", type=Path)
    c.set_defaults(func=_cmd_check_config)
    add_validate(sub)  # stream/validation/command.py
    add_count(sub)  # stream/serve/count_command.py
    add_tune_parser(sub)  # stream/tune/command.py
    _describe_and_verbose(sub)  # last: every sub-command above
    return parser


def _describe_and_verbose(sub) -> None:
    """Every sub-command takes -v too (`lanewatch process ... -v`, as error messages say
    "rerun with -v"), and its --help opens with its one-line help when it has no longer
    description. SUPPRESS: a sub-command without -v leaves the top-level flag as it is."""
    helps = {a.dest: a.help for a in sub._choices_actions}  # argparse keeps help only here
    for name, parser in sub.choices.items():
        parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="debug logging and tracebacks")
        if parser.description is None and helps.get(name):
            parser.description = helps[name][0].upper() + helps[name][1:] + "."


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lanewatch` console script."""
    args = build_parser().parse_args(argv)
    # A service logs what it does (streams connecting, capacity changes) at INFO; a command
    # that prints its own results keeps the log to warnings.
    quiet_level = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if args.verbose else quiet_level,
                        format="lanewatch: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except LanewatchError as err:
        print(f"lanewatch: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("lanewatch: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: say so briefly; -v shows the traceback
        if args.verbose:
            raise
        print(f"lanewatch: internal error: {type(err).__name__}: {err} "
              "(run with -v for the traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
