"""Traffic analytics end to end: the example intersection config with synthetic vehicles
(movements, wrong-way, reports), speeds on highway.mp4 with the calibration derived from its
lane markings, and report.html opened in headless Chromium."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lanewatch.sinks.reports import ReportWriter, RunInfo
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.trackers.analytics.lane_analytics import LaneAnalytics
from lanewatch.trackers.analytics.lanes import resolve_lanes
from lanewatch.trackers.detections import Detections

from conftest import CONFIGS

SIZE = (1920, 1080)
FPS = 25.0


def intersection_analytics() -> LaneAnalytics:
    config = load_config(CONFIGS / "intersection.yaml")
    stream = config.streams[0]
    zones, speeds = StreamProcessor._scene(stream, SIZE)
    lanes = resolve_lanes(stream.lanes, stream.coordinates, *SIZE)
    return LaneAnalytics(stream.id, lanes, config.counting, SIZE, zones=zones,
                         turning=stream.turning, speeds=speeds)


def route(*waypoints, speed_px_s=300.0):
    """Positions (pixels) every frame along normalized waypoints at a steady pixel speed."""
    points = [np.asarray(w, float) * SIZE for w in waypoints]
    out = []
    for a, b in zip(points, points[1:]):
        steps = max(int(np.linalg.norm(b - a) / speed_px_s * FPS), 1)
        out += [a + (b - a) * s / steps for s in range(steps)]
    return out + [points[-1]]


VEHICLES = {  # track id: (class id, route)
    1: (2, route((0.45, 0.02), (0.45, 0.98))),  # southbound through
    2: (2, route((0.45, 0.02), (0.45, 0.55), (0.98, 0.55))),  # southbound left, exits east
    3: (7, route((0.02, 0.55), (0.98, 0.55))),  # eastbound through (a truck)
    4: (2, route((0.98, 0.45), (0.55, 0.45), (0.55, 0.02))),  # westbound right, exits north
    5: (2, route((0.45, 0.28), (0.45, 0.03), speed_px_s=100)),  # reversing up the sb approach
}
NAMES = {2: "car", 7: "truck"}


def drive(analytics: LaneAnalytics, writer: ReportWriter | None = None):
    length = max(len(r) for _, r in VEHICLES.values())
    updates = []
    for i in range(length + 10):
        rows = [(tid, cls, r[i]) for tid, (cls, r) in VEHICLES.items() if i < len(r)]
        xyxy = np.array([[x - 20, y - 40, x + 20, y] for _, _, (x, y) in rows],
                        np.float32).reshape(-1, 4)
        tracks = Detections(xyxy, np.full(len(rows), 0.9, np.float32),
                            np.array([c for _, c, _ in rows], np.int32), NAMES,
                            tracker_id=np.array([t for t, _, _ in rows], np.int64))
        update = analytics.update(tracks, i / FPS, i)
        if writer is not None:
            writer.add(update)
        updates.append(update)
    return updates


def test_intersection_movements_wrong_way_and_counts():
    analytics = intersection_analytics()
    updates = drive(analytics)
    movements = sorted((m.track_id, m.movement, m.class_name)
                       for u in updates for m in u.movements)
    assert movements == [(1, "sb-through", "car"), (2, "sb-left", "car"),
                         (3, "eb-through", "truck"), (4, "wb-right", "car")]
    wrong = [w for u in updates for w in u.wrong_way]
    assert [(w.track_id, w.lane, w.unit) for w in wrong] == [(5, "sb_approach", "m")]
    crossings = sorted((c.track_id, c.lane, c.direction) for u in updates for c in u.crossings)
    assert crossings == [(1, "sb_approach", "entering"), (2, "sb_approach", "entering"),
                         (3, "eb_approach", "entering"), (4, "wb_approach", "entering")]
    # every vehicle drove 300 px/s; the calibration makes that 300 / 432 * 20 m/s vertically
    speeds = {c.track_id: c.speed_kmh for u in updates for c in u.crossings}
    assert speeds[1] == pytest.approx(300 / 432 * 20 * 3.6, rel=0.03)
    for tid in (3, 4):  # horizontally: 300 / 384 * 20 m/s
        assert speeds[tid] == pytest.approx(300 / 384 * 20 * 3.6, rel=0.03)
    analytics.close()
    assert dict(analytics.unfinished) == {"north": 1}  # the reversing vehicle never left


@pytest.fixture(scope="module")
def intersection_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("intersection")
    analytics = intersection_analytics()
    writer = ReportWriter(out, analytics, ["car", "truck"])
    drive(analytics, writer)
    summary = writer.finish(RunInfo(video="synthetic", stream="junction", model="m",
                                    status="complete", frames=200, video_fps=FPS,
                                    video_duration_s=8.0, elapsed_s=1.0))
    return out, summary


def test_intersection_reports(intersection_report):
    out, summary = intersection_report
    assert summary["movements"]["sb-left"] == {"total": 1, "by_class": {"car": 1}}
    assert summary["unfinished_by_origin"] == {"north": 1}
    assert summary["wrong_way_events"] == 1
    with open(out / "movements.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 * 2  # every named movement x class, zeros included
    counted = {(r["movement"], r["class"]): int(r["count"]) for r in rows if int(r["count"])}
    assert counted == {("sb-through", "car"): 1, ("sb-left", "car"): 1,
                       ("eb-through", "truck"): 1, ("wb-right", "car"): 1}
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {e["type"] for e in events} == {"crossing", "movement", "wrong_way"}
    assert all("speed_kmh" in e for e in events if e["type"] == "crossing")
    for name in ("counts.csv", "speeds.csv", "lane_speeds.csv", "dwell.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    # every alert listed with its time, in alerts.csv and the report
    with open(out / "alerts.csv") as f:
        alerts = list(csv.DictReader(f))
    (wrong_way,) = [e for e in events if e["type"] == "wrong_way"]
    assert [(a["alert"], a["where"], a["track_id"], a["class"]) for a in alerts] == [
        ("wrong_way", wrong_way["lane"], str(wrong_way["track_id"]), wrong_way["class"])]
    assert float(alerts[0]["time_s"]) == pytest.approx(wrong_way["time_s"], abs=1e-3)
    assert "against the lane's direction" in alerts[0]["detail"]
    page = (out / "report.html").read_text()
    assert "<h2>Alerts (1)</h2>" in page and "wrong way" in page
    # the turning-movement count sheet: every named movement, by approach, with totals
    with open(out / "turning_movements.csv") as f:
        sheet = list(csv.reader(f))
    header, total = sheet[0], next(r for r in sheet if r[0] == "total")
    assert "north/sb-left/car" in header and "west/eb-through/truck" in header
    assert int(total[-1]) == 4  # the four movements completed
    assert int(total[header.index("north/total")]) == 2
    assert "Turning-movement count sheet" in page


def open_report(browser, path: Path, screenshot: Path):
    """The report in Chromium with the network cut: (page, plot kinds drawn, requests made)."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    plots = page.evaluate("""() => [...document.querySelectorAll('figure.plot')].map(f => {
        const svg = f.querySelector('svg'); const box = svg && svg.getBoundingClientRect();
        return {kind: f.dataset.plot, width: box ? box.width : 0, height: box ? box.height : 0,
                shapes: svg ? svg.querySelectorAll('path, rect, line, use').length : 0};
    })""")
    page.screenshot(path=str(screenshot), full_page=True)
    context.close()
    return plots, requests


@pytest.mark.timeout(120)
def test_intersection_report_opens_offline_with_its_plots(intersection_report, browser,
                                                          tmp_path):
    out, _ = intersection_report
    plots, requests = open_report(browser, out / "report.html", tmp_path / "report.png")
    assert [p["kind"] for p in plots] == ["flow", "movements", "speeds"]
    for p in plots:
        assert p["width"] > 300 and p["height"] > 150 and p["shapes"] > 10, p
    assert requests == [(out / "report.html").as_uri()]  # self-contained: nothing else loaded


@pytest.mark.integration
def test_highway_speeds_are_plausible_for_a_motorway(highway_run):
    """configs/highway.yaml is calibrated from the lane markings (3 m dashes, 9 m gaps, 3.5 m
    lanes); every counted car gets a spot speed, all in a motorway's range."""
    out, _ = highway_run
    with open(out / "speeds.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11 and not any(int(r["rejected"]) for r in rows)
    speeds = [float(r["speed_kmh"]) for r in rows]
    print(f"\nhighway spot speeds (km/h): {sorted(speeds)}")
    assert all(70 <= v <= 150 for v in speeds)  # Dutch motorway: 100 by day, 130 at night
    summary = json.loads((out / "summary.json").read_text())
    assert 85 <= summary["speeds"]["mean_kmh"] <= 125
    assert summary["speeds"]["p85_kmh"] >= summary["speeds"]["mean_kmh"]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_highway_report_opens_offline_with_its_plots(highway_run, browser, tmp_path):
    out, _ = highway_run
    plots, requests = open_report(browser, out / "report.html", tmp_path / "highway.png")
    assert [p["kind"] for p in plots] == ["flow", "speeds"]  # no turning zones on a motorway
    assert all(p["width"] > 300 and p["shapes"] > 10 for p in plots), plots
    assert len(requests) == 1


def test_a_failing_report_page_loses_nothing_else(tmp_path, monkeypatch, caplog):
    """report.html is drawn last; if drawing fails, the CSVs and summary.json still stand."""
    import lanewatch.sinks.report_html as report_html

    def broken(path, data):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report_html, "write_report", broken)
    analytics = intersection_analytics()
    writer = ReportWriter(tmp_path, analytics, ["car", "truck"])
    drive(analytics, writer)
    summary = writer.finish(RunInfo(video="synthetic", stream="junction", model="m",
                                    status="complete", frames=200, video_fps=FPS,
                                    video_duration_s=8.0, elapsed_s=1.0))
    assert summary["total_crossings"] == 4
    assert json.loads((tmp_path / "summary.json").read_text())["total_crossings"] == 4
    for name in ("counts.csv", "movements.csv", "speeds.csv", "dwell.csv", "events.jsonl"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "report.html").exists()
    assert "cannot write" in caplog.text and "no fonts" in caplog.text
