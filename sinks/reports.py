"""Reports of a recorded-video review: events.jsonl, the CSV tables, summary.json and
report.html.

Events are appended and flushed as they happen, so an interrupted or failed run keeps every
event found so far; the tables, summary.json and report.html are (re)written by `finish`, which
the review calls on success, on error and on interrupt alike.

| file | rows |
|---|---|
| counts.csv | interval x lane x class x direction: crossings (a full grid), PCU, rate per hour |
| movements.csv | interval x movement x class: turning movements (streams with `turning:`) |
| turning_movements.csv | the turning-movement count sheet (movement_sheet.py) |
| speeds.csv | one row per crossing with a spot speed (calibrated streams) |
| lane_speeds.csv | interval x lane: vehicles, mean and 85th-percentile speed, rejected |
| dwell.csv | interval x lane/zone: finished visits, mean and longest stay |
| flow.csv, headways.csv, occupancy.csv | flow rates, headways, line occupancy (traffic_tables.py) |
| alerts.csv | every alert: congestion, wrong-way, dwell (alert_list.py) |
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from lanewatch.sinks.alert_list import ALERTS_FILE, ALERTS_HEADER, Alert, alerts_of
from lanewatch.sinks.movement_sheet import MOVEMENT_SHEET_FILE, movement_sheet
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.traffic_tables import (
    FLOW_FILE,
    FLOW_HEADER,
    GAPS_FILE,
    GAPS_HEADER,
    HEADWAY_HEADER,
    HEADWAYS_FILE,
    OCCUPANCY_FILE,
    OCCUPANCY_HEADER,
    TrafficTables,
)
from lanewatch.trackers.analytics.counts import IntervalCount
from lanewatch.trackers.analytics.lane_analytics import (
    AnalyticsUpdate,
    CongestionEvent,
    CrossingEvent,
    DwellEvent,
    LaneAnalytics,
    MovementEvent,
    WrongWayEvent,
)
from lanewatch.trackers.analytics.traffic_stats import MIN_SAMPLE, ReportSettings, pcu_of

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
COUNTS_FILE = "counts.csv"
MOVEMENTS_FILE = "movements.csv"
SPEEDS_FILE = "speeds.csv"
LANE_SPEEDS_FILE = "lane_speeds.csv"
DWELL_FILE = "dwell.csv"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
COUNTS_HEADER = ["interval_start_s", "interval_end_s", "lane", "class", "direction", "count",
                 "pcu", "per_hour", "partial"]


def crossing_record(e: CrossingEvent) -> dict[str, Any]:
    """JSON form of a crossing event (`speed_kmh` on calibrated streams)."""
    record = {"type": "crossing", "stream": e.stream, "time_s": round(e.time_s, 3),
              "frame": e.frame_index, "track_id": e.track_id, "class": e.class_name,
              "lane": e.lane, "direction": e.direction}
    if e.speed_kmh is not None or e.speed_rejected:
        record["speed_kmh"] = e.speed_kmh
    if e.speed_rejected:
        record["speed_rejected"] = True
    return record


def movement_record(e: MovementEvent) -> dict[str, Any]:
    """JSON form of a turning movement."""
    return {"type": "movement", "stream": e.stream, "time_s": round(e.time_s, 3),
            "frame": e.frame_index, "track_id": e.track_id, "class": e.class_name,
            "movement": e.movement, "from": e.origin, "to": e.destination}


def wrong_way_record(e: WrongWayEvent) -> dict[str, Any]:
    """JSON form of a wrong-way alert."""
    return {"type": "wrong_way", "stream": e.stream, "time_s": round(e.time_s, 3),
            "frame": e.frame_index, "track_id": e.track_id, "class": e.class_name,
            "lane": e.lane, "distance": e.distance, "unit": e.unit}


def dwell_record(e: DwellEvent) -> dict[str, Any]:
    """JSON form of a long-stay alert."""
    return {"type": "dwell", "stream": e.stream, "time_s": round(e.time_s, 3),
            "frame": e.frame_index, "track_id": e.track_id, "class": e.class_name,
            "area": e.area, "dwell_s": e.dwell_s}


def congestion_record(e: CongestionEvent) -> dict[str, Any]:
    """JSON form of a congestion start/end event."""
    return {"type": "congestion", "stream": e.stream, "time_s": round(e.time_s, 3),
            "frame": e.frame_index, "lane": e.lane, "congested": e.congested,
            "occupancy": e.occupancy}


@dataclass(frozen=True)
class RunInfo:
    """Facts about the run that go into summary.json."""

    video: str
    stream: str
    model: str
    status: str  # complete | truncated | interrupted | failed
    frames: int
    video_fps: float
    video_duration_s: float
    elapsed_s: float  # processing the frames
    startup_s: float | None = None  # loading the model and compiling before the first frame
    message: str | None = None
    start_time: datetime | None = None  # when the video's first frame was recorded
    start_time_source: str | None = None  # where start_time came from, said in the reports
    cpu_ms_per_frame: dict[str, float] | None = None  # by thread (sinks/cpu_use.py)


class ReportWriter:
    """Writes the report files of one stream into `outdir`; a sink (sinks/sink.py) of the
    review's results, and `finish` writes the tables and the summary at the end."""

    name = "reports"

    def __init__(self, outdir: Path, analytics: LaneAnalytics, class_names: list[str] | None,
                 settings: ReportSettings | None = None):
        """`settings`: the report classes and PCU weights (the config's `reports:`)."""
        self.outdir = outdir
        self.analytics = analytics
        self._class_names = class_names
        self._settings = settings
        self._events = open(outdir / EVENTS_FILE, "w", encoding="utf-8")
        self.crossings: list[CrossingEvent] = []
        self.movements = 0
        self.congestion_events = 0
        self.wrong_way: list[WrongWayEvent] = []
        self.dwell_alerts = 0
        self.alerts: list[Alert] = []
        self.movement_events: list[MovementEvent] = []

    def on_result(self, result: FrameResult) -> None:
        """Append the frame's events to events.jsonl."""
        self.add(result.analytics)

    def close(self) -> None:
        """Close events.jsonl (every event is in it); `finish` writes the rest."""
        self._events.close()

    def add(self, update: AnalyticsUpdate) -> None:
        """Append one frame's events (flushed at once)."""
        records = ([crossing_record(e) for e in update.crossings]
                   + [congestion_record(e) for e in update.congestion]
                   + [movement_record(e) for e in update.movements]
                   + [wrong_way_record(e) for e in update.wrong_way]
                   + [dwell_record(e) for e in update.dwell])
        if not records:
            return
        self._events.writelines(json.dumps(r) + "\n" for r in records)
        self._events.flush()
        self.crossings += update.crossings
        self.congestion_events += len(update.congestion)
        self.movements += len(update.movements)
        self.movement_events += update.movements
        self.wrong_way += update.wrong_way
        self.dwell_alerts += len(update.dwell)
        self.alerts += alerts_of(update)

    def finish(self, run: RunInfo) -> dict[str, Any]:
        """Close events.jsonl and write the tables, summary.json and report.html; returns the
        summary."""
        self.close()
        self.analytics.close()
        book = self.analytics.counts
        observed = sorted({k.class_name for k in book.cumulative})
        classes = self._class_names or observed
        counts = book.interval_table(self.analytics.count_keys(classes))
        video_end = book.origin_s + run.video_duration_s
        self._write(COUNTS_FILE, COUNTS_HEADER,
                    [[f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.lane, r.class_name,
                      r.direction, r.count, *self._rates(r, video_end)] for r in counts])
        movements, sheet = [], None
        if self.analytics.turning is not None:
            movements = self.analytics.movement_counts.interval_table(
                self.analytics.movement_keys(classes))
            self._write(MOVEMENTS_FILE, ["interval_start_s", "interval_end_s", "movement",
                                         "class", "count"],
                        [[f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.lane,
                          r.class_name, r.count] for r in movements])
            sheet = movement_sheet(
                self.movement_events, [(m.name, m.from_zone, m.to_zone)
                                       for m in self.analytics.turning.movements],
                classes, run.video_duration_s, book.origin_s, self._settings, run.start_time)
            self._write(MOVEMENT_SHEET_FILE, sheet.csv_rows()[0], sheet.csv_rows()[1:])
        speeds = [e for e in self.crossings if e.speed_kmh is not None or e.speed_rejected]
        lane_speeds = lane_speed_table(speeds, book.interval_s, book.origin_s)
        if self.analytics.has_speeds:
            self._write(SPEEDS_FILE, ["time_s", "lane", "track_id", "class", "direction",
                                      "speed_kmh", "rejected"],
                        [[f"{e.time_s:.3f}", e.lane, e.track_id, e.class_name, e.direction,
                          "" if e.speed_kmh is None else e.speed_kmh, int(e.speed_rejected)]
                         for e in speeds])
            self._write(LANE_SPEEDS_FILE, list(LaneSpeedRow.__dataclass_fields__),
                        [list(r.__dict__.values()) for r in lane_speeds])
        dwell = self.analytics.dwell.table()
        self._write(DWELL_FILE, ["interval_start_s", "interval_end_s", "area", "vehicles",
                                 "mean_s", "max_s"],
                    [[f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.area, r.vehicles,
                      round(r.mean_s, 2), round(r.max_s, 2)] for r in dwell])
        traffic = TrafficTables.of(self.crossings, run.video_duration_s, [
            (lane.name, label) for lane in self.analytics.lanes for label in lane.labels()],
            self._settings, origin_s=book.origin_s, start_time=run.start_time,
            occupancy=self.analytics.line_occupancy.table(book.origin_s + run.video_duration_s),
            gaps=self.analytics.line_occupancy.gaps)
        self._write(FLOW_FILE, FLOW_HEADER, traffic.flow_rows())
        self._write(HEADWAYS_FILE, HEADWAY_HEADER, traffic.headway_rows())
        self._write(GAPS_FILE, GAPS_HEADER, traffic.gap_rows())
        self._write(OCCUPANCY_FILE, OCCUPANCY_HEADER, traffic.occupancy_rows())
        self._write(ALERTS_FILE, ALERTS_HEADER, [a.row() for a in self.alerts])
        summary = self._summary(run, lane_speeds)
        summary["traffic"] = traffic.summary()
        (self.outdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n",
                                                encoding="utf-8")
        from lanewatch.sinks.report_html import ReportData, write_report  # matplotlib: lazily

        a = self.analytics
        pairs = [(name, *a.movement_pairs[name], n)
                 for name, n in sorted(_totals(a.movement_counts.cumulative).items())]
        zones = [z.name for z in a.turning.zones] if a.turning else []
        try:
            write_report(self.outdir / REPORT_FILE, ReportData(
                summary, self.crossings, counts, movements, pairs, zones, lane_speeds, dwell,
                self.wrong_way, traffic, self.alerts, sheet))
        except Exception as err:  # noqa: BLE001 - the page fails alone; the tables are written
            log.error("cannot write %s: %s; the CSV files and summary.json are complete",
                      self.outdir / REPORT_FILE, err)
        return summary

    def _rates(self, row: IntervalCount, video_end_s: float) -> list:
        """counts.csv's traffic-engineering columns of a row: passenger-car units, the hourly
        rate over the part of the interval the video covers, and whether that is partial."""
        span = min(row.interval_end_s, video_end_s) - row.interval_start_s
        pcu = round(row.count * pcu_of(row.class_name, self._settings and self._settings.pcu),
                    3)
        per_hour = "" if span <= 0 else round(row.count * 3600 / span, 1)
        return [pcu, per_hour, int(span < row.interval_end_s - row.interval_start_s - 1e-6)]

    def _write(self, name: str, header: list[str], rows: list[list]) -> None:
        with open(self.outdir / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    def _summary(self, run: RunInfo, lane_speeds: list[LaneSpeedRow]) -> dict[str, Any]:
        book = self.analytics.counts
        lanes: dict[str, Any] = {}
        for lane in self.analytics.lanes:
            by_class: dict[str, dict[str, int]] = {}
            for key, n in sorted(book.cumulative.items()):
                if key.lane == lane.name:
                    by_class.setdefault(key.class_name, {})[key.direction] = n
            lanes[lane.name] = {
                "total": book.total(lane=lane.name),
                "by_direction": {d: book.total(lane=lane.name, direction=d)
                                 for d in lane.labels()},
                "by_class": by_class,
            }
        classes = sorted({k.class_name for k in book.cumulative})
        directions = sorted({k.direction for k in book.cumulative})
        return {
            "status": run.status,
            "message": run.message,
            "video": run.video,
            "stream": run.stream,
            "model": run.model,
            "frames": run.frames,
            "video_fps": round(run.video_fps, 3),
            "video_duration_s": round(run.video_duration_s, 3),
            "elapsed_s": round(run.elapsed_s, 3),
            "startup_s": None if run.startup_s is None else round(run.startup_s, 3),
            "start_time": None if run.start_time is None else run.start_time.isoformat(),
            "start_time_source": run.start_time_source,
            "fps_achieved": round(run.frames / run.elapsed_s, 2) if run.elapsed_s > 0 else None,
            "cpu_ms_per_frame": run.cpu_ms_per_frame,
            "interval_s": book.interval_s,
            "total_crossings": book.total(),
            "lanes": lanes,
            "classes": {c: book.total(class_name=c) for c in classes},
            "directions": {d: book.total(direction=d) for d in directions},
            "congestion_events": self.congestion_events,
            **self._traffic_summary(lane_speeds),
        }

    def _traffic_summary(self, lane_speeds: list[LaneSpeedRow]) -> dict[str, Any]:
        """Movements, speeds, wrong-way and dwell alerts, where the stream has them."""
        a = self.analytics
        out: dict[str, Any] = {"wrong_way_events": len(self.wrong_way),
                               "dwell_alerts": self.dwell_alerts}
        if a.turning is not None:
            movements: dict[str, Any] = {}
            for key, n in sorted(a.movement_counts.cumulative.items()):
                m = movements.setdefault(key.lane, {"total": 0, "by_class": {}})
                m["total"] += n
                m["by_class"][key.class_name] = n
            out["movements"] = movements
            out["unfinished_by_origin"] = dict(sorted(a.unfinished.items()))
        if a.has_speeds:
            speeds = [e.speed_kmh for e in self.crossings if e.speed_kmh is not None]
            overall = lane_speed_table([e for e in self.crossings if e.speed_kmh is not None],
                                       float("inf"), 0.0)
            out["speeds"] = {
                "vehicles": len(speeds),
                "rejected": a.speeds_rejected,
                "mean_kmh": round(float(np.mean(speeds)), 1) if speeds else None,
                "p85_kmh": _p85(speeds),
                "by_lane": {r.lane: {"vehicles": r.vehicles, "mean_kmh": r.mean_kmh,
                                     "p85_kmh": r.p85_kmh} for r in overall},
            }
        return out


def _totals(cumulative) -> dict[str, int]:
    """Movement totals over classes."""
    totals: Counter[str] = Counter()
    for key, n in cumulative.items():
        totals[key.lane] += n
    return dict(totals)


@dataclass(frozen=True)
class LaneSpeedRow:
    """Spot speeds of one lane in one interval."""

    interval_start_s: float
    interval_end_s: float
    lane: str
    vehicles: int  # crossings with a plausible speed
    mean_kmh: float | None
    p85_kmh: float | None  # the 85th percentile (the design speed); None under MIN_SAMPLE
    rejected: int  # crossings whose speed was implausible


def lane_speed_table(crossings: list[CrossingEvent], interval_s: float,
                     origin_s: float) -> list[LaneSpeedRow]:
    """Mean and 85th-percentile spot speed per lane and interval (intervals with crossings)."""
    groups: dict[tuple[float, str], list[CrossingEvent]] = {}
    for e in crossings:
        k = 0 if math.isinf(interval_s) else math.floor((e.time_s - origin_s) / interval_s)
        groups.setdefault((k, e.lane), []).append(e)
    rows = []
    for (k, lane), events in sorted(groups.items()):
        kmh = [e.speed_kmh for e in events if e.speed_kmh is not None]
        start = origin_s + k * interval_s if not math.isinf(interval_s) else origin_s
        rows.append(LaneSpeedRow(
            start, start + interval_s, lane, len(kmh),
            round(float(np.mean(kmh)), 1) if kmh else None,
            _p85(kmh), sum(e.speed_rejected for e in events)))
    return rows


def _p85(values: list[float]) -> float | None:
    """The 85th percentile, or None for a sample too small to have one (MIN_SAMPLE)."""
    return round(float(np.percentile(values, 85)), 1) if len(values) >= MIN_SAMPLE else None
