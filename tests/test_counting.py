"""Table-driven tests of line-crossing counts on synthetic trajectories.

Frame 100x100 px, 10 frames/s. Lane A's counting line runs left to right along y=50 from x=0
to x=50, lane B's continues from x=50 to x=100, so moving down the image is "in".
Boxes are 20 px tall: with hysteresis 0.1 the band around the line is +-2 px.
"""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.trackers.analytics.lane_analytics import LaneAnalytics
from lanewatch.trackers.analytics.lanes import CountingSettings, LaneSpec, resolve_lanes
from lanewatch.trackers.detections import Detections

NAMES = {0: "car", 1: "truck", 2: "bus"}
FPS = 10.0
SIZE = (100, 100)


def lanes_ab(**kw):
    return [
        LaneSpec(name="A", line=((0, 50), (50, 50)), **kw),
        LaneSpec(name="B", line=((50, 50), (100, 50)), **kw),
    ]


def detections(rows):
    """rows: (track_id, x, y_bottom, class_id, confidence, height)."""
    if not rows:
        return Detections.empty(NAMES).with_tracks(np.zeros(0, int), np.zeros(0, int))
    tid, x, y, cls, conf, h = (np.array(c) for c in zip(*rows))
    xyxy = np.stack([x - 5, y - h, x + 5, y], axis=1).astype(np.float32)
    d = Detections(xyxy, conf.astype(np.float32), cls.astype(np.int32), NAMES)
    return d.with_tracks(np.arange(len(rows)), tid)


def track(tid, ys, x=25, cls=0, conf=0.9, h=20):
    """A trajectory: one entry per frame; None where the track is not reported."""
    classes = cls if isinstance(cls, list) else [cls] * len(ys)
    confs = conf if isinstance(conf, list) else [conf] * len(ys)
    xs = x if isinstance(x, list) else [x] * len(ys)
    return [None if y is None else (tid, xs[i], y, classes[i], confs[i], h)
            for i, y in enumerate(ys)]


def run(trajectories, lanes=None, coordinates="pixels", size=SIZE, **settings):
    settings = CountingSettings(**{"confirm_frames": 3, "hysteresis": 0.1, **settings})
    resolved = resolve_lanes(lanes or lanes_ab(), coordinates, *size)
    analytics = LaneAnalytics("test", resolved, settings, size)
    n = max(len(t) for t in trajectories)
    events = []
    for i in range(n):
        rows = [t[i] for t in trajectories if i < len(t) and t[i] is not None]
        events += analytics.update(detections(rows), i / FPS, i).crossings
    return analytics, events


def summary(events):
    return sorted((e.lane, e.direction, e.class_name) for e in events)


DOWN = list(range(30, 72, 4))  # 30 .. 70, steady downward motion
UP = DOWN[::-1]

CASES = {
    "down crossing counts in": ([track(1, DOWN)], [("A", "in", "car")]),
    "up crossing counts out": ([track(1, UP)], [("A", "out", "car")]),
    "crossing in lane B": ([track(1, DOWN, x=75)], [("B", "in", "car")]),
    "both ways, two tracks": (
        [track(1, DOWN), track(2, UP, x=70)], [("A", "in", "car"), ("B", "out", "car")]),
    "jitter inside the band never counts": (
        [track(1, [49, 51, 50, 48.5, 51.5, 49, 51, 50, 49, 51])], []),
    "jitter on the line then leaving counts once": (
        [track(1, [40, 45, 49, 51, 49, 51, 53, 47, 53, 47, 53, 60, 70])], [("A", "in", "car")]),
    "stop-and-go on the line counts once": (
        [track(1, [30, 40, 49, 50, 50, 50, 51, 50, 49, 50, 51, 50, 60, 70])], [("A", "in", "car")]),
    "stopped across the line, then reversing, counts once": (
        [track(1, [40, 45, 55, 56, 56, 56, 55, 45, 40, 45, 55, 60])], [("A", "in", "car")]),
    "lost before the line, found after it: counted": (
        [track(1, [30, 35, 40, None, None, None, 60, 65, 70])], [("A", "in", "car")]),
    "lost on the line, found after it: counted once": (
        [track(1, [30, 40, 50, None, None, 60, 70, 60, 50, 40])], [("A", "in", "car")]),
    "new id after being lost on the far side: not counted": (
        [track(1, [30, 35, 40]) + [None] * 3, [None] * 6 + track(2, [60, 65, 70])], []),
    "unconfirmed: two frames only": ([track(1, [40, 60])], []),
    "unconfirmed at the crossing, confirmed later: counted": (
        [track(1, [45, 55, 60, 65])], [("A", "in", "car")]),
    "class flicker: majority class wins": (
        [track(1, DOWN, cls=[1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])], [("A", "in", "car")]),
    "majority weighted by confidence": (
        [track(1, DOWN, cls=[2] * 4 + [0] * 7, conf=[0.9] * 4 + [0.45] * 7)], [("A", "in", "bus")]),
    "crossing beyond the segment's end is not this lane's": (
        [track(1, DOWN, x=75)], [], [LaneSpec(name="A", line=((0, 50), (50, 50)))]),
    "exactly on the shared end point: lane B only": ([track(1, DOWN, x=50)], [("B", "in", "car")]),
    "low-confidence boxes never settle a side": (
        [track(1, DOWN, conf=[0.2] * 5 + [0.9] * 6)], []),
    "direction in: an out crossing is ignored": (
        [track(1, UP), track(2, DOWN, x=30)], [("A", "in", "car")], lanes_ab(direction="in")),
    "direction out: an in crossing is ignored": (
        [track(1, UP), track(2, DOWN, x=30)], [("A", "out", "car")], lanes_ab(direction="out")),
    "custom direction labels": (
        [track(1, DOWN)], [("A", "southbound", "car")],
        lanes_ab(in_label="southbound", out_label="northbound")),
    "diagonal path crossing into lane B": (
        [track(1, DOWN, x=[30 + 4 * i for i in range(11)])], [("B", "in", "car")]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crossing_scenarios(name):
    trajectories, expected, *lanes = CASES[name]
    _, events = run(trajectories, lanes=lanes[0] if lanes else None)
    assert summary(events) == sorted(expected)


def test_each_track_counted_at_most_once_per_line():
    ys = [40, 60] * 10  # crosses back and forth well beyond the band
    _, events = run([track(1, ys)])
    assert len(events) == 1


def test_pending_crossing_keeps_its_own_time_and_frame():
    _, events = run([track(1, [45, 55, 60, 65])])
    assert [(e.frame_index, e.time_s) for e in events] == [(1, pytest.approx(0.1))]


@pytest.mark.parametrize(
    "line_y, bottom, counted",
    [
        (99, 100, True),  # 1 px from the edge; a 30 px box (3 px margin) gets only 1 px past
        (98, 100, True),
        (99, 99, False),  # reaches the line but never gets past it
    ],
)
def test_line_at_the_frame_edge(line_y, bottom, counted):
    lanes = [LaneSpec(name="edge", line=((0, line_y), (100, line_y)))]
    _, events = run([track(1, [80, 90, 95, 97, bottom, bottom], h=30)], lanes=lanes)
    assert summary(events) == ([("edge", "in", "car")] if counted else [])


def test_line_along_the_left_edge_counts_horizontal_motion():
    lanes = [LaneSpec(name="left", line=((1, 0), (1, 100)))]  # top to bottom: "in" is leftwards
    _, events = run([track(1, [60] * 6, x=[20, 12, 8, 4, 0, 0])], lanes=lanes)
    assert summary(events) == [("left", "in", "car")]


def test_normalised_and_pixel_coordinates_agree():
    pixel = [LaneSpec(name="A", line=((0, 50), (50, 50)),
                      polygon=[(0, 0), (50, 0), (50, 100), (0, 100)])]
    norm = [LaneSpec(name="A", line=((0, 0.5), (0.5, 0.5)),
                     polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])]
    trajectories = [track(1, DOWN), track(2, UP, x=10), track(3, DOWN, x=75)]
    a1, e1 = run(trajectories, lanes=pixel, size=(100, 100))
    a2, e2 = run(trajectories, lanes=norm, coordinates="normalized", size=(100, 100))
    assert summary(e1) == summary(e2) == [("A", "in", "car"), ("A", "out", "car")]
    np.testing.assert_allclose(a2.lanes[0].line, [[0, 50], [50, 50]])


def test_normalised_coordinates_scale_to_frame():
    lanes = [LaneSpec(name="A", line=((0.25, 0.5), (0.75, 0.5)))]
    resolved = resolve_lanes(lanes, "normalized", 1280, 720)
    np.testing.assert_allclose(resolved[0].line, [[320, 360], [960, 360]])


@pytest.mark.parametrize(
    "coordinates, point, message",
    [
        ("pixels", (1300, 10), "outside the 1280x720 frame"),
        ("normalized", (1.5, 0.5), "not in 0..1"),
    ],
)
def test_lane_points_must_fit_the_frame(coordinates, point, message):
    lanes = [LaneSpec(name="bad", line=((0, 0), point))]
    with pytest.raises(ValueError, match=message):
        resolve_lanes(lanes, coordinates, 1280, 720)


def test_counts_are_broken_down_by_lane_class_direction():
    analytics, _ = run([track(1, DOWN), track(2, DOWN, x=30, cls=1), track(3, UP, x=70)])
    book = analytics.counts
    assert book.total() == 3
    assert book.total(lane="A", direction="in") == 2
    assert book.total(class_name="truck") == 1
    assert book.total(lane="B", direction="out", class_name="car") == 1


def test_track_state_is_forgotten_and_memory_bounded():
    trajectories = [[None] * (5 * k) + track(k + 1, DOWN, x=10 + k % 80) for k in range(60)]
    analytics, events = run(trajectories, forget_after_s=1.0)
    assert len(events) == 60
    assert analytics.tracked_count <= 25  # only tracks seen in the last second are held


def test_occupancy_and_dwell():
    lane = [LaneSpec(name="L", polygon=[(0, 0), (50, 0), (50, 100), (0, 100)])]
    resolved = resolve_lanes(lane, "pixels", *SIZE)
    analytics = LaneAnalytics("t", resolved, CountingSettings(), SIZE)
    rows = [(1, 10, 30, 0, 0.9, 20), (2, 20, 60, 0, 0.9, 20), (3, 80, 60, 0, 0.9, 20)]
    first = analytics.update(detections(rows), 0.0, 0)
    later = analytics.update(detections(rows), 2.5, 1)
    assert first.lanes[0].occupancy == 2
    assert first.lanes[0].max_dwell_s == 0
    assert later.lanes[0].max_dwell_s == pytest.approx(2.5)


def test_untracked_detections_are_rejected():
    analytics, _ = run([track(1, DOWN)])
    raw = Detections(np.array([[0, 0, 1, 1]], np.float32), np.array([0.9], np.float32),
                     np.array([0], np.int32), NAMES)
    with pytest.raises(ValueError, match="tracker_id"):
        analytics.update(raw, 10.0, 100)


def test_tracker_tentative_rows_are_followed_and_counted_once_confirmed():
    lanes = resolve_lanes(lanes_ab(), "pixels", *SIZE)
    analytics = LaneAnalytics("test", lanes, CountingSettings(confirm_frames=1), SIZE)
    events = []
    # Crosses while tentative (frames 0-3), confirmed by the tracker from frame 4.
    for i, y in enumerate([40, 45, 55, 60, 65, 70]):
        out = analytics.update(detections([(1, 25, y, 0, 0.9, 20)]), i / FPS, i,
                               confirmed=np.array([i >= 4]))
        events += out.crossings
        assert out.lanes[0].occupancy == 0  # no polygon here; and tentatives never occupy
    assert [(e.lane, e.frame_index) for e in events] == [("A", 2)]


def test_a_track_that_is_never_confirmed_never_counts():
    lanes = resolve_lanes(lanes_ab(), "pixels", *SIZE)
    analytics = LaneAnalytics("test", lanes, CountingSettings(confirm_frames=1), SIZE)
    events = []
    for i, y in enumerate(DOWN):
        events += analytics.update(detections([(1, 25, y, 0, 0.9, 20)]), i / FPS, i,
                                   confirmed=np.array([False])).crossings
    assert events == []


def test_occupancy_counts_confirmed_tracks_only():
    lane = [LaneSpec(name="L", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)])]
    analytics = LaneAnalytics("t", resolve_lanes(lane, "pixels", *SIZE), CountingSettings(), SIZE)
    rows = [(1, 10, 30, 0, 0.9, 20), (2, 20, 60, 0, 0.9, 20)]
    out = analytics.update(detections(rows), 0.0, 0, confirmed=np.array([True, False]))
    assert out.lanes[0].occupancy == 1
