"""Wrong-way detection (tables): direction of travel from the lane's counting line, distance
in box heights (uncalibrated) or metres (calibrated, also with a mirrored ground frame)."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.trackers.analytics.ground import GroundPlane
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes
from lanewatch.trackers.analytics.wrong_way import WrongWayDetector, WrongWaySettings

# A lane running down the image (traffic comes towards the camera: "in" = moving down).
LANE = dict(name="down", polygon=[(100, 0), (300, 0), (300, 600), (100, 600)],
            line=[(100, 300), (300, 300)], direction="in")
# 1 px = 0.1 m on the ground: the lane is 20 m wide and 60 m long.
PLANE_POINTS = ([(100, 0), (300, 0), (300, 600), (100, 600)], [(0, 60), (20, 60), (20, 0), (0, 0)])


def detector(plane=None, **lane):
    lanes = resolve_lanes([LaneSpec(**(LANE | lane))], "pixels", 400, 600)
    return WrongWayDetector(lanes, WrongWaySettings(), plane)


def drive(d, ys, height=40.0, x=200.0):
    events = []
    for i, y in enumerate(ys):
        events += d.update("down", np.array([7]), np.array([[x, y]]), np.array([height]),
                           i / 30, i)
    return events


@pytest.mark.parametrize("ys, height, wrong", [
    (np.linspace(50, 550, 60), 40, False),  # the right way, the whole lane
    (np.linspace(550, 50, 60), 40, True),  # the wrong way, the whole lane
    (np.linspace(300, 250, 20), 40, False),  # 50 px back = 1.25 box heights: not enough
    (np.linspace(300, 210, 20), 40, True),  # 90 px back = 2.25 box heights
    (np.linspace(300, 210, 20), 60, False),  # the same 90 px for a nearer, bigger vehicle
    (300 + 3 * np.sin(np.arange(300)), 40, False),  # standing in a queue, 3 px jitter
    (np.r_[np.linspace(50, 400, 40), np.linspace(400, 380, 10)], 40, False),  # rolls back a bit
])
def test_uncalibrated_distance_in_box_heights(ys, height, wrong):
    events = drive(detector(), ys, height)
    assert bool(events) is wrong
    if wrong:
        assert len(events) == 1 and events[0].unit == "box heights"  # one event per track
        assert events[0].distance >= 2.0 and events[0].lane == "down" and events[0].track_id == 7


@pytest.mark.parametrize("world", [PLANE_POINTS[1], [(-x, y) for x, y in PLANE_POINTS[1]]])
@pytest.mark.parametrize("back_px, wrong", [(70, False), (90, True)])  # 7 m / 9 m vs 8 m
def test_calibrated_distance_in_metres(world, back_px, wrong):
    plane = GroundPlane(PLANE_POINTS[0], world)
    events = drive(detector(plane), np.linspace(400, 400 - back_px, 30), height=5)
    assert bool(events) is wrong
    if wrong:
        assert events[0].unit == "m" and 8.0 <= events[0].distance < 8.4  # raised at 8 m
    assert drive(detector(plane), np.linspace(100, 500, 30)) == []  # the right way


@pytest.mark.parametrize("lane", [
    dict(direction="both"),  # two-way lane: no direction of travel
    dict(polygon=None),  # a line without a polygon: no lane area to watch
])
def test_lanes_without_a_direction_are_not_watched(lane):
    d = detector(**lane)
    assert d.lanes == {}
    assert drive(d, np.linspace(550, 50, 60)) == []


def test_out_lane_runs_up_the_image():
    d = detector(direction="out")
    assert drive(d, np.linspace(550, 50, 60)) == []  # "out": moving up is the right way
    assert len(drive(detector(direction="out"), np.linspace(50, 550, 60))) == 1


def test_forget_releases_a_track():
    d = detector()
    drive(d, np.linspace(550, 50, 60))
    d.forget(7)
    assert d._best == {} and d._flagged == set()
