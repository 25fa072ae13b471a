"""Ground-plane calibration and speed: a known homography, synthetic tracks, tables."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from lanewatch.trackers.analytics.ground import CalibrationSpec, GroundPlane, SpeedEstimator

# A camera looking down a road: the world rectangle X 0..10 m, Y 0..50 m seen as a trapezoid.
WORLD = [(0, 0), (10, 0), (10, 50), (0, 50)]
IMAGE = [(300, 700), (900, 700), (680, 200), (520, 200)]
TRUE_H = cv2.getPerspectiveTransform(np.float32(WORLD), np.float32(IMAGE))  # world -> image


def to_image(world_xy: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(world_xy, np.float64).reshape(-1, 1, 2),
                                    TRUE_H).reshape(-1, 2)


def spec(**kw) -> CalibrationSpec:
    return CalibrationSpec(image_points=IMAGE, world_points=WORLD, **kw)


def test_plane_maps_pixels_back_to_metres():
    plane = GroundPlane(IMAGE, WORLD)
    assert plane.reprojection_error_m < 1e-6
    world = np.array([[5.0, 25.0], [1.0, 3.0], [9.5, 48.0]])
    np.testing.assert_allclose(plane.to_world(to_image(world)), world, atol=1e-6)
    assert plane.to_world(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize("speed_kmh, direction, fps", [
    (50, (0, 1), 30),      # along the road, away from the camera
    (120, (0, -1), 30),    # towards the camera, motorway speed
    (30, (0.6, 0.8), 25),  # diagonal (changing lanes / turning)
    (8, (1, 0), 15),       # slow, across the road, low frame rate
])
def test_speed_of_a_synthetic_track_within_2_percent(speed_kmh, direction, fps):
    estimator = SpeedEstimator(GroundPlane(IMAGE, WORLD), spec())
    v = np.asarray(direction, float) / np.linalg.norm(direction) * speed_kmh / 3.6
    start = np.array([5.0, 25.0]) - v * 1.0
    rng = np.random.default_rng(7)
    for i in range(2 * fps):
        t = i / fps
        pixel = to_image(start + v * t) + rng.normal(0, 0.5, 2)  # detector jitter, 0.5 px
        estimator.update(np.array([1]), pixel, t)
    reading = estimator.reading(1)
    assert reading.speed_kmh == pytest.approx(speed_kmh, rel=0.02)
    assert not reading.rejected


@pytest.mark.parametrize("observations, expected", [
    (3, None),  # fewer than min_observations
    (5, None),  # 5 observations but spanning only 4/30 s of a 1 s window
])
def test_no_speed_from_too_little_evidence(observations, expected):
    estimator = SpeedEstimator(GroundPlane(IMAGE, WORLD), spec())
    for i in range(observations):
        estimator.update(np.array([1]), to_image([[5.0, 10 + i * 0.5]]), i / 30)
    assert estimator.reading(1).speed_kmh is expected
    assert estimator.reading(99).speed_kmh is None  # unknown track


def test_implausible_speed_is_rejected_not_reported():
    estimator = SpeedEstimator(GroundPlane(IMAGE, WORLD), spec(max_speed_kmh=200))
    for i in range(30):  # 300 km/h
        estimator.update(np.array([4]), to_image([[5.0, 1 + i * (300 / 3.6) / 30]]), i / 30)
    reading = estimator.reading(4)
    assert reading.speed_kmh is None and reading.rejected


def test_window_forgets_old_positions():
    """A car that stopped: the window holds only the stopped positions, so the speed is ~0."""
    estimator = SpeedEstimator(GroundPlane(IMAGE, WORLD), spec(speed_window_s=1.0))
    t = 0.0
    for i in range(60):  # 2 s at 36 km/h ...
        estimator.update(np.array([2]), to_image([[5.0, 5 + i / 3]]), t)
        t += 1 / 30
    for _ in range(45):  # ... then 1.5 s standing still
        estimator.update(np.array([2]), to_image([[5.0, 25.0]]), t)
        t += 1 / 30
    assert estimator.reading(2).speed_kmh == pytest.approx(0, abs=0.5)
    estimator.forget(2)
    assert len(estimator) == 0


@pytest.mark.parametrize("image, world, message", [
    (IMAGE[:3], WORLD[:3], "at least 4 point pairs"),
    (IMAGE, WORLD[:3] + [(10, 60)] + [(0, 1)], "pair them one to one"),
    ([(0, 0), (100, 0), (200, 0), (300, 5)], WORLD, "image_points: three of four points"),
    (IMAGE, [(0, 0), (0, 10), (0, 20), (5, 5)], "world_points: three of four points"),
])
def test_bad_calibration_says_what_to_fix(image, world, message):
    with pytest.raises(ValidationError, match=message):
        CalibrationSpec(image_points=image, world_points=world)


def test_points_in_a_crossed_order_are_refused():
    crossed = [WORLD[0], WORLD[2], WORLD[1], WORLD[3]]  # a bow-tie: fits, but folds the road
    with pytest.raises(ValueError, match="in the same order"):
        GroundPlane(IMAGE, crossed)
    # a mirror image (X to the left instead of the right) is a valid plane: speeds are the same
    mirrored = [(-x, y) for x, y in WORLD]
    assert GroundPlane(IMAGE, mirrored).reprojection_error_m < 1e-6
