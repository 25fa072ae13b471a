"""Count reports of a recorded-video review: events.jsonl, counts.csv and summary.json.

Events are appended and flushed as they happen, so an interrupted or failed run keeps every
crossing found so far; counts.csv and summary.json are (re)written by `finish`, which the
review calls on success, on error and on interrupt alike.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanewatch.trackers.analytics import CongestionEvent, CrossingEvent, LaneAnalytics

EVENTS_FILE = "events.jsonl"
COUNTS_FILE = "counts.csv"
SUMMARY_FILE = "summary.json"


def crossing_record(e: CrossingEvent) -> dict[str, Any]:
    """JSON form of a crossing event."""
    return {"type": "crossing", "stream": e.stream, "time_s": round(e.time_s, 3),
            "frame": e.frame_index, "track_id": e.track_id, "class": e.class_name,
            "lane": e.lane, "direction": e.direction}


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
    elapsed_s: float
    message: str | None = None


class ReportWriter:
    """Writes the three report files of one stream into `outdir`."""

    def __init__(self, outdir: Path, analytics: LaneAnalytics, class_names: list[str] | None):
        self.outdir = outdir
        self.analytics = analytics
        self._class_names = class_names
        self._events = open(outdir / EVENTS_FILE, "w", encoding="utf-8")
        self.crossings = 0
        self.congestion_events = 0

    def add(self, crossings: tuple[CrossingEvent, ...],
            congestion: tuple[CongestionEvent, ...]) -> None:
        """Append one frame's events (flushed at once)."""
        for e in crossings:
            self._events.write(json.dumps(crossing_record(e)) + "\n")
        for e in congestion:
            self._events.write(json.dumps(congestion_record(e)) + "\n")
        if crossings or congestion:
            self._events.flush()
        self.crossings += len(crossings)
        self.congestion_events += len(congestion)

    def finish(self, run: RunInfo) -> dict[str, Any]:
        """Close events.jsonl and write counts.csv and summary.json; returns the summary."""
        self._events.close()
        book = self.analytics.counts
        observed = sorted({k.class_name for k in book.cumulative})
        classes = self._class_names or observed
        rows = book.interval_table(self.analytics.count_keys(classes))
        with open(self.outdir / COUNTS_FILE, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["interval_start_s", "interval_end_s", "lane", "class", "direction",
                        "count"])
            for r in rows:
                w.writerow([f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.lane,
                            r.class_name, r.direction, r.count])
        summary = self._summary(run)
        (self.outdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n",
                                                encoding="utf-8")
        return summary

    def _summary(self, run: RunInfo) -> dict[str, Any]:
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
            "fps_achieved": round(run.frames / run.elapsed_s, 2) if run.elapsed_s > 0 else None,
            "interval_s": book.interval_s,
            "total_crossings": book.total(),
            "lanes": lanes,
            "classes": {c: book.total(class_name=c) for c in classes},
            "directions": {d: book.total(direction=d) for d in directions},
            "congestion_events": self.congestion_events,
        }
