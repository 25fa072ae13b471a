"""The traffic engineer's tables of a review: flow.csv, headways.csv and summary.json's
`traffic` section (figures from trackers/analytics/traffic_stats.py).

- flow.csv: 15-minute interval x lane x direction x report class (the config's
  `reports.class_scheme`, and `all`): vehicles, passenger-car units, hourly rates, and whether
  the video covers the whole interval (`partial`);
- headways.csv: lane x direction: vehicles, headways, mean, median, 15th and 85th
  percentile, shortest (blank under the small-sample size, `small_sample` 1);
- gaps.csv: per lane, the vacant time of the counting line between objects (as loop
  detectors report gaps), with the same statistics and small-sample rule;
- occupancy.csv: counting interval x lane: the time share of the counting line with an object
  over it, as a loop detector reports it (trackers/analytics/time_occupancy.py).

The same figures go into summary.json (`traffic`) and report.html, so a report and the files
never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lanewatch.trackers.analytics.events import CrossingEvent
from lanewatch.trackers.analytics.time_occupancy import OccupancyRow
from lanewatch.trackers.analytics.traffic_stats import (
    ALL_CLASSES,
    MIN_SAMPLE,
    QUARTER_S,
    FlowBin,
    GapStats,
    HeadwayStats,
    PeakHour,
    ReportSettings,
    flow_bins,
    gap_stats,
    headway_stats,
    peak_hours,
)

FLOW_FILE = "flow.csv"
HEADWAYS_FILE = "headways.csv"
GAPS_FILE = "gaps.csv"
GAPS_HEADER = ["lane", "gaps", "mean_s", "median_s", "p15_s", "p85_s", "min_s", "small_sample"]
OCCUPANCY_FILE = "occupancy.csv"
FLOW_HEADER = ["interval_start_s", "interval_end_s", "lane", "direction", "class", "vehicles",
               "pcu", "vehicles_per_hour", "pcu_per_hour", "partial", "interval_start_time"]
OCCUPANCY_HEADER = ["interval_start_s", "interval_end_s", "lane", "occupied_s", "observed_s",
                    "occupancy_pct"]
HEADWAY_HEADER = ["lane", "direction", "vehicles", "headways", "mean_s", "median_s", "p15_s",
                  "p85_s", "min_s", "small_sample"]


@dataclass(frozen=True)
class TrafficTables:
    """A review's flow, peak hours and headways (see the module docstring)."""

    flow: list[FlowBin]
    peaks: list[PeakHour]
    headways: list[HeadwayStats]
    duration_s: float
    occupancy: list[OccupancyRow]
    start_time: datetime | None = None  # the clock time of video second 0
    gaps: list[GapStats] = field(default_factory=list)

    def clock(self, seconds: float) -> datetime | None:
        """The clock time of a video second (None without a start time)."""
        return None if self.start_time is None else self.start_time + timedelta(
            seconds=seconds)

    @classmethod
    def of(cls, crossings: Iterable[CrossingEvent], duration_s: float,
           lanes: Iterable[tuple[str, str]], settings: ReportSettings | None = None,
           origin_s: float = 0.0, occupancy: Iterable[OccupancyRow] = (),
           start_time: datetime | None = None,
           gaps: Mapping[str, list[float]] | None = None) -> TrafficTables:
        """The tables of these crossings over `duration_s` of video; `lanes` lists every
        (lane, direction) so a lane without traffic shows zeros; `occupancy` is the counting
        lines' time occupancy (LineOccupancy.table)."""
        crossings = list(crossings)
        return cls(flow_bins(crossings, duration_s, QUARTER_S, origin_s, lanes, settings),
                   peak_hours(crossings, duration_s, origin_s), headway_stats(crossings),
                   duration_s, list(occupancy), start_time, gap_stats(gaps or {}))

    def totals(self) -> list[FlowBin]:
        """The flow rows of every class together."""
        return [b for b in self.flow if b.class_name == ALL_CLASSES]

    def flow_rows(self) -> list[list[Any]]:
        """flow.csv's rows (FLOW_HEADER)."""
        rows = []
        for b in self.flow:
            start = self.clock(b.start_s)
            rows.append([_seconds(b.start_s), _seconds(b.end_s), b.lane, b.direction,
                         b.class_name, b.vehicles, b.pcu, _rate(b.per_hour),
                         _rate(_per_hour(b.pcu, b.end_s - b.start_s)), int(b.partial),
                         "" if start is None else start.isoformat()])
        return rows

    def headway_rows(self) -> list[list[Any]]:
        """headways.csv's rows (HEADWAY_HEADER)."""
        return [[h.lane, h.direction, h.vehicles, h.headways, *(_blank(v) for v in (
            h.mean_s, h.median_s, h.p15_s, h.p85_s, h.min_s)), int(h.small_sample)]
                for h in self.headways]

    def gap_rows(self) -> list[list[Any]]:
        """gaps.csv's rows (GAPS_HEADER)."""
        return [[g.lane, g.gaps, *(_blank(v) for v in (g.mean_s, g.median_s, g.p15_s, g.p85_s,
                                                       g.min_s)), int(g.small_sample)]
                for g in self.gaps]

    def occupancy_rows(self) -> list[list[Any]]:
        """occupancy.csv's rows (OCCUPANCY_HEADER)."""
        return [[_seconds(r.interval_start_s), _seconds(r.interval_end_s), r.lane, r.occupied_s,
                 r.observed_s, _blank(r.occupancy_pct)] for r in self.occupancy]

    def summary(self) -> dict[str, Any]:
        """summary.json's `traffic` section."""
        overall = next((p for p in self.peaks if p.lane is None), None)
        flow: dict[str, list[dict[str, Any]]] = {}
        by_class: dict[tuple[str, str, float], dict[str, int]] = {}
        for b in self.flow:
            if b.class_name != ALL_CLASSES:
                by_class.setdefault((b.lane, b.direction, b.start_s), {})[b.class_name] = \
                    b.vehicles
        for b in self.totals():
            flow.setdefault(f"{b.lane}/{b.direction}", []).append({
                "start_s": b.start_s, "end_s": b.end_s, "vehicles": b.vehicles, "pcu": b.pcu,
                "vehicles_per_hour": _rate(b.per_hour), "partial": b.partial,
                "by_class": by_class.get((b.lane, b.direction, b.start_s), {})})
        return {
            "interval_s": QUARTER_S,
            "start_time": None if self.start_time is None else self.start_time.isoformat(),
            "flow": flow,
            "peak_hour": None if overall is None else _peak(overall),
            "peak_hour_by_lane": {f"{p.lane}/{p.direction}": _peak(p)
                                  for p in self.peaks if p.lane is not None},
            "peak_hour_note": None if self.peaks else
            f"no peak hour: {self.duration_s / 60:.1f} minutes of video, a peak hour needs 60",
            "headways": {f"{h.lane}/{h.direction}": {
                "vehicles": h.vehicles, "mean_s": h.mean_s, "median_s": h.median_s,
                "p85_s": h.p85_s, "small_sample": h.small_sample} for h in self.headways},
            "small_sample_size": MIN_SAMPLE,
            "line_occupancy_pct": _overall_occupancy(self.occupancy),
            "gaps": {g.lane: {"gaps": g.gaps, "mean_s": g.mean_s, "median_s": g.median_s,
                              "p85_s": g.p85_s, "small_sample": g.small_sample}
                     for g in self.gaps},
        }


def _overall_occupancy(rows: list[OccupancyRow]) -> dict[str, float | None]:
    """Each counting line's occupancy over the whole video, in %."""
    occupied: dict[str, float] = {}
    observed: dict[str, float] = {}
    for r in rows:
        occupied[r.lane] = occupied.get(r.lane, 0.0) + r.occupied_s
        observed[r.lane] = observed.get(r.lane, 0.0) + r.observed_s
    return {lane: round(100 * occupied[lane] / observed[lane], 1) if observed[lane] else None
            for lane in occupied}


def _peak(p: PeakHour) -> dict[str, Any]:
    return {"start_s": p.start_s, "end_s": p.end_s, "vehicles": p.vehicles,
            "busiest_15_min": p.busiest_quarter, "phf": p.phf}


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"


def _per_hour(amount: float, span_s: float) -> float | None:
    return amount * 3600 / span_s if span_s > 0 else None


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _blank(value: float | None) -> Any:
    return "" if value is None else value
