"""Dwell and queue length (tables): visits and their statistics per interval, long-stay
alerts, stopped vehicles with and without a ground plane, congestion by queue."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.trackers.analytics.dwell import Area, DwellTracker
from lanewatch.trackers.analytics.ground import CalibrationSpec, GroundPlane, SpeedEstimator
from lanewatch.trackers.analytics.lane_analytics import LaneAnalytics
from lanewatch.trackers.analytics.lanes import CountingSettings, LaneSpec, resolve_lanes
from lanewatch.trackers.detections import Detections

SQUARE = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], float)


@pytest.mark.parametrize("inside_frames, fps", [(30, 30), (11, 10), (1, 30)])
def test_a_visit_lasts_until_the_track_is_seen_outside(inside_frames, fps):
    dwell = DwellTracker([Area("a", SQUARE)], interval_s=60)
    for i in range(inside_frames):
        dwell.update("a", np.array([1]), np.array([True]), i / fps)
    dwell.update("a", np.array([1]), np.array([False]), inside_frames / fps)
    (row,) = dwell.table()
    assert row.vehicles == 1 and row.max_s == pytest.approx(inside_frames / fps)


def test_visits_are_binned_by_the_interval_they_end_in():
    dwell = DwellTracker([Area("a", SQUARE)], interval_s=10)
    for tid, (start, end) in enumerate([(0, 2), (1, 5), (8, 12), (20, 29)]):
        dwell.update("a", np.array([tid]), np.array([True]), start)
        dwell.update("a", np.array([tid]), np.array([False]), end)
    rows = [(r.interval_start_s, r.vehicles, round(r.mean_s, 2), r.max_s) for r in dwell.table()]
    assert rows == [(0, 2, 3.0, 4.0), (10, 1, 4.0, 4.0), (20, 1, 9.0, 9.0)]


def test_forgotten_track_ends_its_visit_at_its_last_sighting():
    dwell = DwellTracker([Area("a", SQUARE)], interval_s=60)
    dwell.update("a", np.array([1]), np.array([True]), 0.0)
    dwell.update("a", np.array([1]), np.array([True]), 3.0)
    dwell.forget(1, 3.0)
    assert [(r.vehicles, r.max_s) for r in dwell.table()] == [(1, 3.0)]


@pytest.mark.parametrize("limit, stay, alerts", [(5, 4.9, 0), (5, 5.1, 1), (None, 100, 0)])
def test_long_stay_alert_once_per_visit(limit, stay, alerts):
    dwell = DwellTracker([Area("a", SQUARE, max_dwell_s=limit)], interval_s=60)
    raised = []
    for t in np.arange(0, stay + 1e-9, 0.1):
        raised += dwell.update("a", np.array([1]), np.array([True]), float(t))[1]
    assert len(raised) == alerts


# -- queue length through the analytics ----------------------------------------------------------
LANE = [LaneSpec(name="lane", polygon=[(0, 0), (400, 0), (400, 400), (0, 400)],
                 line=[(0, 300), (400, 300)], direction="in",
                 congestion={"min_queue": 2, "min_duration_s": 1})]
PLANE = GroundPlane([(0, 0), (400, 0), (400, 400), (0, 400)], [(0, 40), (40, 40), (40, 0), (0, 0)])


def frame(rows):
    """rows: (track id, x, bottom y, box height)."""
    xyxy = np.array([[x - 10, y - h, x + 10, y] for _, x, y, h in rows], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(rows), 0.9, np.float32), np.zeros(len(rows), np.int32),
                      {0: "car"}, tracker_id=np.array([r[0] for r in rows], np.int64))


def queue_run(calibrated: bool, speeds_px_s: list[float], seconds: float = 3.0, fps: float = 10):
    lanes = resolve_lanes(LANE, "pixels", 400, 400)
    speeds = SpeedEstimator(PLANE, CalibrationSpec(
        image_points=[(0, 0), (400, 0), (400, 400), (0, 400)],
        world_points=[(0, 40), (40, 40), (40, 0), (0, 0)])) if calibrated else None
    analytics = LaneAnalytics("s", lanes, CountingSettings(), (400, 400), speeds=speeds)
    update = None
    congestion = []
    for i in range(int(seconds * fps)):
        t = i / fps
        rows = [(k + 1, 50 + 80 * k, 50 + v * t, 40) for k, v in enumerate(speeds_px_s)]
        update = analytics.update(frame(rows), t, i)
        congestion += update.congestion
    return update.lanes[0], congestion


@pytest.mark.parametrize("calibrated", [False, True])
@pytest.mark.parametrize("speeds_px_s, queue", [
    ([0, 0, 0], 3),  # three vehicles standing
    ([0, 0.5, 80], 2),  # creeping at 0.05 m/s (or 1/80 box heights/s) is stopped; 80 px/s is not
    ([60, 70, 80], 0),  # moving traffic: 6-8 m/s, 1.5-2 box heights/s
])
def test_queue_counts_stopped_vehicles(calibrated, speeds_px_s, queue):
    lane, congestion = queue_run(calibrated, speeds_px_s)
    assert lane.queue == queue and lane.occupancy == 3
    assert lane.congested is (queue >= 2)
    assert [c.congested for c in congestion] == ([True] if queue >= 2 else [])


def test_dwell_statistics_in_memory_are_bounded_when_asked():
    dwell = DwellTracker([Area("a", SQUARE)], interval_s=10, retain_intervals=1)
    for tid in range(50):
        dwell.update("a", np.array([tid]), np.array([True]), tid * 10.0)
        dwell.update("a", np.array([tid]), np.array([False]), tid * 10.0 + 5)
    assert [r.interval_start_s for r in dwell.table()] == [480, 490]
