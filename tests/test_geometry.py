"""Table-driven tests of lane geometry."""

import numpy as np
import pytest

from lanewatch.trackers.analytics.geometry import (
    crossing_position,
    points_in_polygon,
    polygon_area,
    polygon_is_simple,
    signed_distance,
)

LINE = (np.array([0.0, 10.0]), np.array([20.0, 10.0]))  # left to right at y=10


@pytest.mark.parametrize(
    "point, expected",
    [
        ((5, 15), 5.0),  # below a left-to-right line: right-hand side on screen, positive
        ((5, 5), -5.0),  # above: negative
        ((50, 10), 0.0),  # on the infinite line, beyond the segment
        ((-3, 12), 2.0),
    ],
)
def test_signed_distance(point, expected):
    assert signed_distance(np.array([point], float), *LINE)[0] == pytest.approx(expected)


def test_signed_distance_flips_with_line_direction():
    p = np.array([[5.0, 15.0]])
    assert signed_distance(p, LINE[1], LINE[0])[0] == pytest.approx(-5.0)


def test_signed_distance_diagonal_line():
    d = signed_distance(np.array([[0.0, 1.0]]), np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    assert d[0] == pytest.approx(np.sqrt(0.5))


@pytest.mark.parametrize(
    "p0, p1, expected",
    [
        ((10, 0), (10, 20), 0.5),  # straight down through the middle
        ((0, 0), (0, 20), 0.0),  # through the start point
        ((20, 0), (20, 20), 1.0),  # through the end point
        ((30, 0), (30, 20), 1.5),  # beyond the end: caller rejects it
        ((0, 0), (20, 20), 0.5),  # diagonal path crosses at x=10
        ((0, 5), (20, 5), None),  # parallel path
    ],
)
def test_crossing_position(p0, p1, expected):
    t = crossing_position(np.array(p0, float), np.array(p1, float), *LINE)
    if expected is None:
        assert t is None
    else:
        assert t == pytest.approx(expected)


SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
CONCAVE = np.array([[0, 0], [10, 0], [10, 10], [5, 3], [0, 10]], float)


@pytest.mark.parametrize(
    "polygon, point, inside",
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (15, 5), False),
        (SQUARE, (-1, -1), False),
        (SQUARE, (9.99, 0.01), True),
        (CONCAVE, (5, 8), False),  # in the notch
        (CONCAVE, (2, 2), True),
        (CONCAVE, (9.5, 8), True),  # right prong
        (CONCAVE, (8, 8), False),  # notch edge runs through x=8.57 at y=8
    ],
)
def test_points_in_polygon(polygon, point, inside):
    assert points_in_polygon(np.array([point], float), polygon)[0] == inside


def test_points_in_polygon_vectorised_and_empty():
    pts = np.array([[5, 5], [15, 5], [1, 9]], float)
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, True]
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)


@pytest.mark.parametrize(
    "polygon, simple",
    [
        (SQUARE, True),
        (CONCAVE, True),
        (np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float), False),  # bow tie
    ],
)
def test_polygon_is_simple(polygon, simple):
    assert polygon_is_simple(polygon) == simple


def test_polygon_area():
    assert polygon_area(SQUARE) == 100
    assert polygon_area(np.array([[0, 0], [1, 1], [2, 2]], float)) == 0
