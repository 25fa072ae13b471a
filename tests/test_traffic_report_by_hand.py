"""A review's traffic-engineering files (flow.csv, occupancy.csv, headways.csv, gaps.csv,
summary.json, the peak hour and PHF) from synthetic tracks whose every figure is worked out
by hand below: the lane analytics and the report writer end to end, no model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lanewatch.sinks.reports import ReportWriter, RunInfo
from lanewatch.trackers.analytics.lane_analytics import LaneAnalytics
from lanewatch.trackers.analytics.lanes import CountingSettings, LaneSpec, resolve_lanes
from lanewatch.trackers.detections import Detections

FPS = 25.0
SIZE = (1280, 720)
FRAMES = 750  # 30 s
ENTRIES = {1: 50, 2: 175, 3: 375}  # track id: the frame it appears (2 s, 7 s, 15 s)
LANE = LaneSpec(name="l1", polygon=[[100, 0], [300, 0], [300, 720], [100, 720]],
                line=[[100, 500], [300, 500]], direction="in", in_label="down",
                out_label="up")


def bottom(track: int, frame: int) -> int | None:
    """A 40x50 box moving down 10 px a frame (250 px/s) from bottom y = 300."""
    k = frame - ENTRIES[track]
    y = 300 + 10 * k
    return y if 0 <= k and y <= 720 else None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("by_hand")
    lanes = resolve_lanes([LANE], "pixels", *SIZE)
    analytics = LaneAnalytics("s", lanes, CountingSettings(), SIZE)
    summary = review(out, analytics, FRAMES, FPS, lambda frame: [
        (t, bottom(t, frame)) for t in ENTRIES if bottom(t, frame) is not None])
    return out, summary, analytics


def review(out, analytics, frames, fps, rows_of):
    """Feed `frames` frames of 40x50 cars at (track id, bottom y) = rows_of(frame) through
    the analytics into a report writer; the summary it writes."""
    writer = ReportWriter(out, analytics, ["car"])
    for frame in range(frames):
        rows = rows_of(frame)
        xyxy = np.array([[180, y - 50, 220, y] for _, y in rows], np.float32).reshape(-1, 4)
        tracks = Detections(xyxy, np.full(len(rows), 0.9, np.float32),
                            np.full(len(rows), 2, np.int32), {2: "car"},
                            tracker_id=np.array([t for t, _ in rows], np.int64))
        writer.add(analytics.update(tracks, frame / fps, frame))
    return writer.finish(RunInfo(video="synthetic", stream="s", model="m", status="complete",
                                 frames=frames, video_fps=fps, video_duration_s=frames / fps,
                                 elapsed_s=1.0))


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_crossings_and_flow(report):
    out, summary, analytics = report
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    # each bottom passes y = 500 after 20 frames, plus the hysteresis (10% of 50 px = 5 px:
    # one more frame): counted at entry + 21 frames, all three 'down'
    assert [(e["frame"], e["direction"]) for e in events] == [
        (71, "down"), (196, "down"), (396, "down")]
    (all_classes,) = [r for r in read(out / "flow.csv") if r["class"] == "all"]
    # 3 vehicles in the 30 s the video covers of the first 15-minute interval: 360 an hour
    assert (all_classes["vehicles"], all_classes["vehicles_per_hour"], all_classes["partial"],
            all_classes["interval_end_s"]) == ("3", "360.0", "1", "30")
    assert summary["traffic"]["peak_hour"] is None


def test_time_occupancy(report):
    out, summary, analytics = report
    (row,) = read(out / "occupancy.csv")
    # a box touches the line while its bottom is in 500..550: frames entry+20 .. entry+25,
    # 6 frames of 0.04 s each (every frame's state holds until the next): 0.24 s a vehicle
    assert (float(row["occupied_s"]), float(row["observed_s"])) == (0.72, 30.0)
    assert float(row["occupancy_pct"]) == 2.4
    assert summary["traffic"]["line_occupancy_pct"] == {"l1": 2.4}


def test_headways_and_gaps(report):
    out, summary, analytics = report
    (headway,) = read(out / "headways.csv")
    # the same offset for every vehicle: headways are the entries' differences, 5 s and 8 s;
    # two headways are too few for statistics
    assert (headway["vehicles"], headway["headways"], headway["small_sample"]) == ("3", "2", "1")
    assert headway["mean_s"] == ""
    (gap,) = read(out / "gaps.csv")
    # the line is vacant from the frame a box left it (entry+26) to the next one's arrival
    # (entry+20): (195 - 76) / 25 = 4.76 s and (395 - 201) / 25 = 7.76 s
    assert (gap["gaps"], gap["small_sample"]) == ("2", "1")
    assert analytics.line_occupancy.gaps == {"l1": [4.76, 7.76]}
    assert summary["traffic"]["gaps"]["l1"]["gaps"] == 2


def test_peak_hour_and_phf_from_an_hour_and_ten_minutes_of_tracks(tmp_path):
    """70 minutes sampled at 2 frames/s (the analytics only need the times): vehicles per
    15 minutes 4, 8, 2, 6 and 1 in the last 10 minutes. The only full hour is the first:
    4 + 8 + 2 + 6 = 20 vehicles, busiest quarter 8, PHF = 20 / (4 x 8) = 0.625."""
    fps, frames = 2.0, 70 * 60 * 2
    quarters = [4, 8, 2, 6, 1]
    entries = {}
    for q, n in enumerate(quarters):
        for i in range(n):  # spread over the quarter, each well inside it
            entries[len(entries) + 1] = int((q * 900 + 30 + i * 100) * fps)
    lanes = resolve_lanes([LANE], "pixels", *SIZE)
    analytics = LaneAnalytics("s", lanes, CountingSettings(), SIZE)
    summary = review(tmp_path, analytics, frames, fps, lambda frame: [
        (track, 100 * (frame - first)) for track, first in entries.items()
        if 0 <= frame - first <= 40])  # 100 px a frame from bottom y = 0: crosses 500 at 5
    assert summary["total_crossings"] == 21
    assert summary["traffic"]["peak_hour"] == {"start_s": 0.0, "end_s": 3600.0, "vehicles": 20,
                                               "busiest_15_min": 8, "phf": 0.625}
    flow = [r for r in read(tmp_path / "flow.csv") if r["class"] == "all"]
    assert [int(r["vehicles"]) for r in flow] == quarters
    assert [r["partial"] for r in flow] == ["0", "0", "0", "0", "1"]
    assert [float(r["vehicles_per_hour"]) for r in flow] == [16.0, 32.0, 8.0, 24.0, 6.0]
    page = (tmp_path / "report.html").read_text()
    assert "peak-hour factor 0.625" in page
