"""The two inputs of `lanewatch validate`: a review's output folder and a manual-count CSV.

The manual-count CSV (docs/validation.md): a header line, then one vehicle a line,

    time_s,frame,lane,direction,class
    1.37,41,lane3,towards,car
    2.10,,lane4,towards,truck

time_s is seconds from the start of the video (>= 0), frame optional (blank allowed), lane
and direction as the run's summary.json names them, class as the model names it. For a
turning movement (streams with `turning:`) put the movement's name in `lane` and leave
`direction` blank. Blank lines and lines starting with `#` are skipped. Errors name the file,
the line and the fix; a class the run never counted or a time past the video's end is only a
warning (the vehicles can be real, and then they are misses).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from lanewatch.sinks.errors import LanewatchError
from lanewatch.sinks.reports import EVENTS_FILE, SUMMARY_FILE
from lanewatch.trackers.evaluation.count_matching import CountEvent

COLUMNS = ("time_s", "frame", "lane", "direction", "class")
REQUIRED = ("time_s", "lane", "direction", "class")
MAX_ERRORS = 20  # listed at once, so a user fixes a file in one pass, not one line a run


class ManualCountError(LanewatchError):
    """The manual-count CSV cannot be read or does not fit the run."""


@dataclass(frozen=True)
class ReviewRun:
    """What validation needs from a `lanewatch process` output folder."""

    run_dir: Path
    stream: str | None
    video: str | None  # the video the run read, as summary.json names it
    video_fps: float | None
    duration_s: float | None
    lanes: dict[str, tuple[str, ...]]  # lane -> its direction labels
    movements: tuple[str, ...] | None  # None: the stream has no `turning:`
    classes: tuple[str, ...]  # the classes the run counted
    events: tuple[CountEvent, ...]  # crossings and movements


@dataclass(frozen=True)
class ManualCount:
    """A loaded manual count and the warnings it raised."""

    path: Path
    events: tuple[CountEvent, ...]
    warnings: tuple[str, ...]


def _event(record: dict, line: int) -> CountEvent | None:
    if record.get("type") == "crossing":
        lane, direction = record["lane"], record["direction"]
    elif record.get("type") == "movement":
        lane, direction = record["movement"], ""
    else:
        return None  # congestion, wrong-way, dwell: not counts
    return CountEvent(float(record["time_s"]), lane, direction, record["class"],
                      record.get("frame"), line, record.get("track_id"))


def load_run(run_dir: Path) -> ReviewRun:
    """Read summary.json and the counted events of events.jsonl."""
    summary_path, events_path = run_dir / SUMMARY_FILE, run_dir / EVENTS_FILE
    for path in (summary_path, events_path):
        if not path.is_file():
            raise LanewatchError(f"{run_dir} is not a review's output folder: {path.name} is "
                                 "missing (make one with `lanewatch process VIDEO -c CONFIG "
                                 f"-o {run_dir}`)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LanewatchError(f"{summary_path}: cannot read it: {err}") from None
    events = []
    with open(events_path, encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                event = _event(json.loads(text), n)
            except (ValueError, KeyError, TypeError) as err:
                raise LanewatchError(f"{events_path}:{n}: not an event record ({err}); the "
                                     "file is damaged: run `lanewatch process` again") from None
            if event is not None:
                events.append(event)
    lanes = {name: tuple(lane.get("by_direction", {}))
             for name, lane in summary.get("lanes", {}).items()}
    movements = tuple(summary["movements"]) if "movements" in summary else None
    video = summary.get("video")
    return ReviewRun(run_dir, summary.get("stream"), None if video in (None, "None") else video,
                     summary.get("video_fps"), summary.get("video_duration_s"), lanes,
                     movements, tuple(summary.get("classes", {})), tuple(events))


def _number(text: str, what: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a number: write {example}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {text} is negative or not finite: write {example}")
    return value


def _row(row: dict[str, str], line: int, run: ReviewRun, warnings: list[str]) -> CountEvent:
    """One CSV row as an event; ValueError says what is wrong with it."""
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for k in REQUIRED:
        if not values[k]:
            if k == "direction" and run.movements is not None:
                continue  # a turning movement
            raise ValueError(f"{k} is empty: every row needs {', '.join(REQUIRED)}")
    time_s = _number(values["time_s"], "time_s", "seconds from the start of the video, e.g. 12.5")
    frame_text = values["frame"]
    frame = None
    if frame_text:
        f = _number(frame_text, "frame", "a whole frame number or leave it blank")
        if f != int(f):
            raise ValueError(f"frame {frame_text} is not a whole number: write one or leave it "
                             "blank")
        frame = int(f)
    lane, direction, cls = values["lane"], values["direction"], values["class"]
    if not direction:  # a movement (the check above allows it only when the run has turning)
        if lane not in (run.movements or ()):
            warnings.append(f"line {line}: movement '{lane}' was never counted automatically "
                            "in this run: check its name (its rows can only be missed)")
    elif lane not in run.lanes:
        raise ValueError(f"lane '{lane}' is not a lane of this run (lanes: "
                         f"{', '.join(run.lanes) or 'none'}): fix the name, or validate against "
                         "the run of the right config")
    elif run.lanes[lane] and direction not in run.lanes[lane]:
        raise ValueError(f"direction '{direction}' is not one of lane {lane}'s "
                         f"({', '.join(run.lanes[lane])}): use the lane's direction labels")
    if cls not in run.classes:
        warnings.append(f"line {line}: class '{cls}' was never counted automatically in this "
                        f"run (counted: {', '.join(run.classes) or 'none'}): check the spelling "
                        "(its rows can only be missed or confused)")
    if run.duration_s and time_s > run.duration_s + 1.0:
        warnings.append(f"line {line}: time {time_s:g} s is past the video's end "
                        f"({run.duration_s:g} s): is it in seconds from the start?")
    return CountEvent(time_s, lane, direction, cls, frame, line)


def load_manual_counts(path: Path, run: ReviewRun) -> ManualCount:
    """Read and check a manual-count CSV against the run it validates."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not a column name
    except (OSError, UnicodeDecodeError) as err:
        raise ManualCountError(f"{path}: cannot read it: {err}") from None
    lines = [(n, t) for n, t in enumerate(text.splitlines(), start=1)
             if t.strip() and not t.lstrip().startswith("#")]
    if not lines:
        raise ManualCountError(f"{path}: empty: the first line must be the header "
                               f"{','.join(COLUMNS)}")
    header_line, header = lines[0]
    columns = [c.strip() for c in next(csv.reader([header]))]
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        what = "; ".join(x for x in (
            f"unknown column(s) {', '.join(unknown)}" if unknown else "",
            f"missing column(s) {', '.join(missing)}" if missing else "",
            "a column twice" if len(set(columns)) != len(columns) else "") if x)
        raise ManualCountError(f"{path}:{header_line}: bad header ({what}): the header is "
                               f"{','.join(COLUMNS)} (frame may be left out)")
    events, errors, warnings = [], [], []
    for n, text_line in lines[1:]:
        cells = next(csv.reader([text_line]))
        if len(cells) > len(columns):
            errors.append(f"{path}:{n}: {len(cells)} values for {len(columns)} columns: "
                          "remove the extra commas")
            continue
        try:
            events.append(_row(dict(zip(columns, cells)), n, run, warnings))
        except ValueError as err:
            errors.append(f"{path}:{n}: {err}")
    if errors:
        more = len(errors) - MAX_ERRORS
        raise ManualCountError("\n".join(errors[:MAX_ERRORS]
                                         + ([f"... and {more} more"] if more > 0 else [])))
    return ManualCount(path, tuple(events), tuple(f"{path}: {w}" for w in warnings))
