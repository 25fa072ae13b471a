"""The road's ground plane: image pixels to metres (a homography), and vehicle speeds from it.

A stream's `calibration:` gives four or more image points with their positions on the road in
metres (any flat, right-handed frame: lane-marking corners measured or taken from the standard
lane width and dash spacing). The homography maps a track's anchor (the bottom centre of its
box, where the vehicle touches the road) to the ground plane; speed is the least-squares slope of
the ground positions over a sliding time window, which smooths the detector's jitter without
lagging a steady vehicle. Speeds above `max_speed_kmh` or from too few observations are rejected
and counted, never reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Point = tuple[float, float]


class CalibrationSpec(BaseModel):
    """Ground-plane calibration of a stream (`streams[].calibration:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_points: list[Point] = Field(
        description="4+ points on the road surface, in the stream's coordinates (x, y)")
    world_points: list[Point] = Field(description="the same points on the road, metres (X, Y)")
    speed_window_s: float = Field(
        1.0, gt=0, le=10, description="speed = slope of ground positions over this window")
    min_observations: int = Field(
        5, ge=3, description="positions a speed needs inside the window")
    max_speed_kmh: float = Field(
        250.0, gt=0, description="faster is implausible: rejected and counted, not reported")
    stopped_below_kmh: float = Field(
        5.0, ge=0, description="slower counts as stopped (queue length)")

    @model_validator(mode="after")
    def _check_points(self) -> CalibrationSpec:
        if len(self.image_points) != len(self.world_points):
            raise ValueError(f"image_points has {len(self.image_points)} points but "
                             f"world_points has {len(self.world_points)}; pair them one to one")
        if len(self.image_points) < 4:
            raise ValueError(f"a homography needs at least 4 point pairs, got "
                             f"{len(self.image_points)}")
        for name in ("image_points", "world_points"):
            if _degenerate(np.asarray(getattr(self, name), float)):
                raise ValueError(f"{name}: three of four points (or all of them) lie on one "
                                 "line; take them from at least two lane lines, near and far")
        return self


def _degenerate(points: np.ndarray) -> bool:
    """True when no homography can come from these points: all on one line, or (with exactly
    four) any three on one line."""
    scale = max(float(np.ptp(points, axis=0).max()), 1e-9)
    def area(a, b, c) -> float:
        (ux, uy), (vx, vy) = b - a, c - a
        return abs(float(ux * vy - uy * vx)) / scale**2
    if len(points) == 4:
        triples = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
        return any(area(*points[list(t)]) < 1e-4 for t in triples)
    centred = points - points.mean(axis=0)
    return np.linalg.matrix_rank(centred / scale, tol=1e-6) < 2


class GroundPlane:
    """Maps image pixels to ground-plane metres."""

    def __init__(self, image_points, world_points):
        src = np.asarray(image_points, np.float64)
        dst = np.asarray(world_points, np.float64)
        matrix, _ = cv2.findHomography(src, dst, 0)  # least squares over every pair
        if matrix is None or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
            raise ValueError("calibration points give no valid homography (check that the "
                             "image and world points are listed in the same order)")
        # A plane seen by a camera maps with the horizon outside the road: the projective
        # denominator keeps one sign over the points. A sign change means the pairs are in a
        # crossed order (a bow-tie), which fits exactly but folds the road through infinity.
        w = np.c_[src, np.ones(len(src))] @ matrix[2]
        if not (np.all(w > 0) or np.all(w < 0)):
            raise ValueError("calibration points fold the road through the horizon: list "
                             "image_points and world_points in the same order around the area")
        self.matrix = matrix
        self.reprojection_error_m = float(np.abs(self.to_world(src) - dst).max())

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) metres."""
        points = np.asarray(points, np.float64).reshape(-1, 1, 2)
        if len(points) == 0:
            return np.zeros((0, 2))
        return cv2.perspectiveTransform(points, self.matrix).reshape(-1, 2)


class TrackMotion:
    """Recent positions of each track (any unit: metres or pixels) over a sliding window, and
    its velocity as the least-squares slope of those positions."""

    def __init__(self, window_s: float = 1.0, min_observations: int = 5):
        self.window_s = window_s
        self.min_observations = min_observations
        self._history: dict[int, deque[tuple[float, float, float]]] = {}

    def update(self, ids: np.ndarray, positions: np.ndarray, time_s: float) -> None:
        """Record this frame's positions of the given tracks."""
        horizon = time_s - self.window_s - 1e-9
        for tid, (x, y) in zip(np.asarray(ids).tolist(), np.asarray(positions).tolist()):
            history = self._history.setdefault(tid, deque())
            history.append((time_s, x, y))
            while history[0][0] < horizon:
                history.popleft()

    def velocity(self, tid: int) -> tuple[float, float] | None:
        """(vx, vy) per second, or None with fewer than `min_observations` positions or a span
        shorter than half the window (too little to trust)."""
        history = self._history.get(tid)
        if not history or len(history) < self.min_observations:
            return None
        samples = np.asarray(history)
        t = samples[:, 0] - samples[:, 0].mean()
        if t.max() - t.min() < self.window_s / 2:
            return None
        denominator = float(t @ t)
        return (float(t @ (samples[:, 1] - samples[:, 1].mean())) / denominator,
                float(t @ (samples[:, 2] - samples[:, 2].mean())) / denominator)

    def forget(self, tid: int) -> None:
        self._history.pop(tid, None)

    def __len__(self) -> int:
        return len(self._history)


@dataclass(frozen=True)
class SpeedReading:
    """A track's speed now, or why there is none."""

    speed_kmh: float | None  # None: not enough observations yet, or rejected
    rejected: bool = False  # True: a speed was computed but is implausible


class SpeedEstimator:
    """Ground-plane speeds of tracks from their anchors in pixels."""

    def __init__(self, plane: GroundPlane, spec: CalibrationSpec):
        self.plane = plane
        self.spec = spec
        self.motion = TrackMotion(spec.speed_window_s, spec.min_observations)

    def update(self, ids: np.ndarray, anchors_px: np.ndarray, time_s: float) -> None:
        """Record this frame's anchors (pixels) of the given tracks."""
        self.motion.update(ids, self.plane.to_world(anchors_px), time_s)

    def reading(self, tid: int) -> SpeedReading:
        """The track's speed over the window; implausible speeds come back rejected."""
        velocity = self.motion.velocity(tid)
        if velocity is None:
            return SpeedReading(None)
        kmh = float(np.hypot(*velocity) * 3.6)
        if kmh > self.spec.max_speed_kmh:
            return SpeedReading(None, rejected=True)
        return SpeedReading(kmh)

    def forget(self, tid: int) -> None:
        self.motion.forget(tid)

    def __len__(self) -> int:
        return len(self.motion)
