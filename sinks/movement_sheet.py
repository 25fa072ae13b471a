"""The turning-movement count sheet: 15-minute rows, columns grouped by approach (the origin
zone) then movement then class, with approach totals, the intersection's total, a totals row
and the peak hour with its peak-hour factor per approach. The layout of a manual TMC board's
sheet (FHWA Traffic Monitoring Guide; ITE Manual of Transportation Engineering Studies), so
it can be handed in or compared with one as it is.

Written as turning_movements.csv (one header row naming approach/movement/class per column)
and as a table of report.html.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from lanewatch.trackers.analytics.events import MovementEvent
from lanewatch.trackers.analytics.traffic_stats import QUARTER_S, ReportSettings

MOVEMENT_SHEET_FILE = "turning_movements.csv"


@dataclass(frozen=True)
class SheetColumn:
    """One count column: a movement's class, from one approach."""

    approach: str
    movement: str
    class_name: str


@dataclass(frozen=True)
class MovementSheet:
    """The sheet's figures (see the module docstring).

    Attributes:
        columns: the count columns, grouped by approach then movement.
        approaches: the approaches, in column order.
        starts_s: each row's interval start (video seconds); `partial` marks rows the video
            covers only in part (the last, usually).
        counts: (rows, columns) movements per interval.
        peak_start_s: the peak hour's first interval (every movement together), None under an
            hour of video.
    """

    columns: list[SheetColumn]
    approaches: list[str]
    starts_s: list[float]
    ends_s: list[float]
    partial: list[bool]
    counts: np.ndarray
    peak_start_s: float | None
    start_time: datetime | None = None

    def approach_totals(self) -> np.ndarray:
        """(rows, approaches) every movement of each approach."""
        return np.stack([self.counts[:, [c.approach == a for c in self.columns]].sum(axis=1)
                         for a in self.approaches], axis=1) if self.approaches else \
            np.zeros((len(self.starts_s), 0), int)

    def peak_rows(self) -> slice | None:
        """The peak hour's four rows."""
        if self.peak_start_s is None:
            return None
        first = self.starts_s.index(self.peak_start_s)
        return slice(first, first + 4)

    def phf(self) -> list[float | None]:
        """The peak-hour factor of each approach, then of the intersection."""
        rows = self.peak_rows()
        if rows is None:
            return [None] * (len(self.approaches) + 1)
        per_approach = self.approach_totals()[rows]
        out = []
        for quarter in [*per_approach.T, per_approach.sum(axis=1)]:
            busiest = int(quarter.max())
            out.append(round(int(quarter.sum()) / (4 * busiest), 3) if busiest else None)
        return out

    def label(self, row: int) -> str:
        """A row's interval, as clock times when the recording's start is known."""
        start, end = self.starts_s[row], self.ends_s[row]
        if self.start_time is None:
            return f"{start / 60:g}-{end / 60:g} min"
        a, b = (self.start_time + timedelta(seconds=t) for t in (start, end))
        return f"{a:%H:%M}-{b:%H:%M}"

    def csv_rows(self) -> list[list]:
        """turning_movements.csv: a header, the 15-minute rows, totals, the peak hour."""
        header = ["interval", "interval_start_s", "partial",
                  *(f"{c.approach}/{c.movement}/{c.class_name}" for c in self.columns),
                  *(f"{a}/total" for a in self.approaches), "total"]
        totals = self.approach_totals()
        rows = [header]
        for i in range(len(self.starts_s)):
            rows.append([self.label(i), f"{self.starts_s[i]:g}", int(self.partial[i]),
                         *self.counts[i].tolist(), *totals[i].tolist(), int(totals[i].sum())])
        rows.append(["total", "", "", *self.counts.sum(axis=0).tolist(),
                     *totals.sum(axis=0).tolist(), int(totals.sum())])
        peak = self.peak_rows()
        if peak is not None:
            begins = (f"{self.peak_start_s / 60:g} min" if self.start_time is None else
                      f"{self.start_time + timedelta(seconds=self.peak_start_s):%H:%M}")
            rows.append([f"peak hour from {begins}", f"{self.peak_start_s:g}",
                         "", *self.counts[peak].sum(axis=0).tolist(),
                         *totals[peak].sum(axis=0).tolist(), int(totals[peak].sum())])
            rows.append(["PHF", "", "", *[""] * len(self.columns),
                         *("" if f is None else f for f in self.phf())])
        return rows


def movement_sheet(events: Iterable[MovementEvent], movements: list[tuple[str, str, str]],
                   classes: list[str], duration_s: float, origin_s: float = 0.0,
                   settings: ReportSettings | None = None,
                   start_time: datetime | None = None) -> MovementSheet:
    """The sheet of these movement events over `duration_s` of video. `movements`: (name,
    origin, destination) of every movement to show (named ones, and any others counted);
    `classes`: the model classes counted (grouped by the settings' class scheme)."""
    settings = settings or ReportSettings()
    events = list(events)
    report_classes = list(dict.fromkeys(settings.report_class(c) for c in classes))
    known = {name for name, _, _ in movements}
    movements = movements + sorted({(e.movement, e.origin, e.destination) for e in events
                                    if e.movement not in known})
    for e in events:  # a class outside the configured list (an alias target, say)
        if settings.report_class(e.class_name) not in report_classes:
            report_classes.append(settings.report_class(e.class_name))
    approaches = list(dict.fromkeys(origin for _, origin, _ in movements))
    columns = [SheetColumn(a, name, cls) for a in approaches
               for name, origin, _ in movements if origin == a for cls in report_classes]
    index = {(c.movement, c.class_name): i for i, c in enumerate(columns)}
    n_rows = max(1, int(np.ceil(duration_s / QUARTER_S - 1e-9)))
    counts = np.zeros((n_rows, len(columns)), int)
    for e in events:
        row = min(n_rows - 1, max(0, int((e.time_s - origin_s) // QUARTER_S)))
        counts[row, index[(e.movement, settings.report_class(e.class_name))]] += 1
    starts = [origin_s + i * QUARTER_S for i in range(n_rows)]
    ends = [min(s + QUARTER_S, origin_s + duration_s) for s in starts]
    partial = [e - s < QUARTER_S - 1e-6 for s, e in zip(starts, ends)]
    full = [i for i in range(n_rows) if not partial[i]]
    peak = None
    if len(full) >= 4:
        hourly = np.convolve(counts.sum(axis=1)[: len(full)], np.ones(4, int), mode="valid")
        peak = starts[int(np.argmax(hourly))]
    return MovementSheet(columns, approaches, starts, ends, partial, counts, peak, start_time)
