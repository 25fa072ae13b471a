"""Turning movements from synthetic trajectories (tables): through, turns, U-turns, tracks
that never exit, border jitter, one movement per track, and the config's checks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from lanewatch.trackers.analytics.movements import MovementCounter, TurningSettings

# A 600x600 junction: four arms around a 200x200 centre box (200..400 both ways).
ZONES = [
    {"name": "north", "polygon": [(200, 0), (400, 0), (400, 200), (200, 200)]},
    {"name": "south", "polygon": [(200, 400), (400, 400), (400, 600), (200, 600)]},
    {"name": "east", "polygon": [(400, 200), (600, 200), (600, 400), (400, 400)]},
    {"name": "west", "polygon": [(0, 200), (200, 200), (200, 400), (0, 400)]},
]
NAMED = [{"name": "north-through", "from": "north", "to": "south"},
         {"name": "north-left", "from": "north", "to": "east"},
         {"name": "north-u-turn", "from": "north", "to": "north"}]


def counter(**kw) -> MovementCounter:
    settings = TurningSettings(zones=ZONES, movements=NAMED, **kw)
    polygons = {z.name: np.asarray(z.polygon, float) for z in settings.zones}
    return MovementCounter(settings, polygons)


def path(*waypoints, steps=10):
    """Points along straight segments between waypoints, `steps` per segment."""
    points = []
    for a, b in zip(waypoints, waypoints[1:]):
        for s in range(steps):
            points.append(np.asarray(a, float) + (np.asarray(b) - np.asarray(a)) * s / steps)
    points.append(np.asarray(waypoints[-1], float))
    return points


def run(c, points, tid=1):
    movements = []
    for i, p in enumerate(points):
        movements += c.update(np.array([tid]), np.asarray([p]), i / 30, i)
    return movements


@pytest.mark.parametrize("waypoints, expected", [
    # southbound through: enters from the north arm, leaves by the south arm
    ([(300, 20), (300, 300), (300, 580)], ("north-through", "north", "south")),
    # a left turn for southbound traffic (image coordinates: east is to the right)
    ([(300, 20), (300, 300), (580, 300)], ("north-left", "north", "east")),
    # not named in the config: counted as from->to
    ([(580, 300), (300, 300), (20, 300)], ("east->west", "east", "west")),
    ([(20, 300), (300, 300), (300, 20)], ("west->north", "west", "north")),
    # U-turn: into the centre and back out into the arm it came from
    ([(250, 20), (250, 300), (350, 300), (350, 20)], ("north-u-turn", "north", "north")),
    # first seen in the centre box: its origin is the first arm it is seen in
    ([(300, 300), (300, 580), (300, 599)], None),
    # the whole track inside one arm (parked, or a queue that never moves on)
    ([(300, 20), (300, 150)], None),
])
def test_movement_from_a_trajectory(waypoints, expected):
    c = counter()
    movements = run(c, path(*waypoints))
    if expected is None:
        assert movements == []
    else:
        assert [(m.name, m.origin, m.destination) for m in movements] == [expected]
        assert movements[0].track_id == 1


def test_one_movement_per_track_and_the_first_destination_wins():
    c = counter()
    movements = run(c, path((300, 20), (300, 300), (300, 580), (20, 300)))
    assert [(m.origin, m.destination) for m in movements] == [("north", "south")]


def test_a_track_that_never_exits_is_reported_unfinished_by_its_origin():
    c = counter()
    assert run(c, path((300, 20), (300, 300))) == []  # lost in the centre of the junction
    assert c.forget(1) == "north"
    assert c.forget(1) is None  # already forgotten
    done = counter()
    run(done, path((300, 20), (300, 300), (300, 580)), tid=2)
    assert done.forget(2) is None  # a finished track is not unfinished


def test_border_jitter_makes_no_visit():
    """A track flickering across the north/centre border for single frames never establishes
    the centre or re-enters north: no U-turn is invented."""
    c = counter(min_frames=3)
    points = [(300, 150)] * 5 + [(300, 205), (300, 195)] * 10 + [(300, 150)] * 5
    assert run(c, points) == []
    assert c.forget(1) == "north"


def test_movement_time_is_when_the_destination_is_established():
    c = counter(min_frames=3)
    points = path((300, 20), (300, 300), (300, 580), steps=30)
    movements = run(c, points)
    first_in_south = next(i for i, p in enumerate(points) if p[1] >= 400)
    assert movements[0].frame_index == first_in_south + 2  # third frame in a row


def test_tracks_are_independent():
    c = counter()
    a = path((300, 20), (300, 300), (300, 580))
    b = path((580, 300), (300, 300), (20, 300))
    got = []
    for i, (pa, pb) in enumerate(zip(a, b)):
        got += c.update(np.array([1, 2]), np.asarray([pa, pb]), i / 30, i)
    assert sorted((m.track_id, m.name) for m in got) == [(1, "north-through"), (2, "east->west")]


@pytest.mark.parametrize("zones, movements, message", [
    (ZONES[:1], [], "at least 2 items"),
    (ZONES + [ZONES[0]], [], "repeated: north"),
    (ZONES, [{"name": "x", "from": "north", "to": "up"}], "no zone 'up'"),
    (ZONES, NAMED + [{"name": "again", "from": "north", "to": "south"}], "named twice"),
    (ZONES, NAMED + [{"name": "north-left", "from": "east", "to": "west"}], "used twice"),
    ([{"name": "bad", "polygon": [(0, 0), (10, 10), (10, 0), (0, 10)]}] + ZONES, [],
     "cross each other"),
])
def test_turning_config_errors(zones, movements, message):
    with pytest.raises(ValidationError, match=message):
        TurningSettings(zones=zones, movements=movements)
