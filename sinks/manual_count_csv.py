"""Writing a manual-count CSV: the file `lanewatch count` saves and `lanewatch validate` reads
(sinks/validation_input.py reads it; docs/validation.md describes it).

The counting page builds the same text in the browser for its download (count_csv.js
`csvText`); both write the times exactly as the server formatted them (`format_time`), so the
download and the file saved on the server are identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ManualEntry:
    """One vehicle counted by hand: the frame it crossed on, its time, lane, direction, class."""

    frame: int
    time_s: str  # as written: format_time of the frame's presentation time
    lane: str
    direction: str
    class_name: str


def format_time(seconds: float) -> str:
    """A frame's time as the CSV writes it (milliseconds, as events.jsonl rounds them)."""
    return f"{seconds:.3f}"


def _cell(text: str) -> str:
    # Lane and class names come from the config: quote the rare one a CSV reader would split.
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def manual_count_csv(entries: Iterable[ManualEntry], comments: Iterable[str] = ()) -> str:
    """The CSV text: `# ` comment lines, the header, then the entries in frame order (the
    order they were counted in within a frame)."""
    # The loader's header (imported here: it brings the matching code, which `lanewatch count`
    # does not otherwise need at start-up).
    from lanewatch.sinks.validation_input import COLUMNS

    lines = [f"# {' '.join(c.splitlines())}" for c in comments]
    lines.append(",".join(COLUMNS))
    for e in sorted(entries, key=lambda e: e.frame):
        lines.append(",".join((e.time_s, str(e.frame), _cell(e.lane), _cell(e.direction),
                               _cell(e.class_name))))
    return "\n".join(lines) + "\n"
