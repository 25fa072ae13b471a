"""Wrong-way detection: a track moving against its lane's direction of travel.

A one-way lane (a polygon and a counting line whose `direction` is `in` or `out`) has a
direction of travel: across its counting line the way it counts. Inside the lane polygon each
track's progress along that direction is followed; a track that goes back from the furthest
point it reached by at least a minimum distance is driving the wrong way. The distance is in
metres on the ground plane when the stream is calibrated, otherwise in heights of the track's
own box (so near and far vehicles are judged alike). Box jitter and a vehicle standing in a
queue move a few pixels either way and never add up to that distance. One event per track and
lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lanewatch.trackers.analytics.geometry import signed_distance
from lanewatch.trackers.analytics.ground import GroundPlane
from lanewatch.trackers.analytics.lanes import Direction, Lane, WrongWaySettings


@dataclass(frozen=True)
class WrongWay:
    """A track went against `lane`'s direction for `distance` (metres or box heights)."""

    track_id: int
    lane: str
    distance: float
    unit: str  # "m" or "box heights"
    time_s: float
    frame_index: int


class _OneWayLane:
    """One lane's direction of travel, as a signed distance that grows along it."""

    def __init__(self, lane: Lane, plane: GroundPlane | None):
        self.name = lane.name
        start, end = lane.line[0], lane.line[1]
        sign = 1.0 if lane.direction is Direction.IN else -1.0  # "in": towards the right side
        self.plane = plane
        if plane is None:
            self.start, self.end, self.sign = start, end, sign
            return
        # On the ground plane the right-hand side may be mirrored (the plane's handedness is
        # the calibration's choice): take the sign from a point on the travel side.
        self.start, self.end = plane.to_world(np.stack([start, end]))
        normal = np.array([-(end - start)[1], (end - start)[0]]) / np.hypot(*(end - start))
        ahead = plane.to_world(((start + end) / 2 + sign * 10 * normal)[None])
        self.sign = float(np.sign(signed_distance(ahead, self.start, self.end)[0])) or sign

    def progress(self, anchors_px: np.ndarray) -> np.ndarray:
        points = anchors_px if self.plane is None else self.plane.to_world(anchors_px)
        return self.sign * signed_distance(points, self.start, self.end)


class WrongWayDetector:
    """Wrong-way state of one stream's tracks over its one-way lanes."""

    def __init__(self, lanes: list[Lane], settings: WrongWaySettings,
                 plane: GroundPlane | None = None):
        self.settings = settings
        self.lanes = {lane.name: _OneWayLane(lane, plane) for lane in lanes
                      if settings.enabled and lane.polygon is not None and lane.line is not None
                      and lane.direction is not Direction.BOTH}
        self._best: dict[tuple[int, str], float] = {}  # furthest progress reached
        self._flagged: set[tuple[int, str]] = set()

    def update(self, lane: str, ids: np.ndarray, anchors: np.ndarray, heights: np.ndarray,
               time_s: float, frame_index: int) -> list[WrongWay]:
        """Tracks inside `lane` this frame (ids, anchors in pixels, box heights)."""
        one_way = self.lanes.get(lane)
        if one_way is None or len(ids) == 0:
            return []
        s = self.settings
        metres = one_way.plane is not None
        events = []
        for tid, progress, height in zip(np.asarray(ids).tolist(),
                                         one_way.progress(anchors).tolist(),
                                         np.asarray(heights).tolist()):
            key = (tid, lane)
            best = max(self._best.get(key, progress), progress)
            self._best[key] = best
            back = best - progress
            distance = back if metres else back / max(height, 1.0)
            needed = s.min_distance_m if metres else s.min_distance_heights
            if distance >= needed and key not in self._flagged:
                self._flagged.add(key)
                events.append(WrongWay(tid, lane, round(distance, 2),
                                       "m" if metres else "box heights", time_s, frame_index))
        return events

    def forget(self, tid: int) -> None:
        for name in self.lanes:
            self._best.pop((tid, name), None)
            self._flagged.discard((tid, name))
