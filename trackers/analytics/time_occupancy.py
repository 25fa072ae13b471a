"""Time occupancy at the counting lines, as loop detectors report it.

A loop detector reports the share of time a vehicle is over it, per interval: the density
measure of traffic engineering (HCM: occupancy = sum of the times vehicles occupy the
detector / the interval). Here each lane's counting line is a point detector across the lane:
it is occupied while some confirmed object's box overlaps the line segment. The state seen in
a frame holds until the next frame (sample and hold), so time is split exactly at interval
boundaries and a frame rate change does not bias the share. Only the middle half of a box's
width is taken: seen at an angle, a vehicle's box spills over the next lane's line, which its
wheels never touch.

The same detector gives each lane's gaps, as loop detectors report them: the time the line
stays vacant between one object leaving it and the next arriving (a headway minus the time
the leading object occupied the line). Only gaps closed by an arrival count: the vacant time
before the first and after the last object is not a gap. Like a loop's, a gap is between any
two objects over the line, so where lanes are narrow (far from the camera) a vehicle of the
next lane whose box reaches over the line can split a gap in two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_GAPS = 10_000  # per lane, kept for the statistics


@dataclass(frozen=True)
class OccupancyRow:
    """One lane's time occupancy in one interval.

    Attributes:
        interval_start_s, interval_end_s: the interval (the last one ends with the video).
        lane: the lane.
        occupied_s: seconds with an object over the counting line.
        observed_s: seconds of video in the interval.
        occupancy_pct: occupied_s / observed_s in %, None for an unobserved interval.
    """

    interval_start_s: float
    interval_end_s: float
    lane: str
    occupied_s: float
    observed_s: float
    occupancy_pct: float | None


def boxes_touch_segment(xyxy: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """(N,) whether each box (x1, y1, x2, y2) overlaps the segment ((x0, y0), (x1, y1)):
    Liang-Barsky clipping of the segment against every box at once."""
    if len(xyxy) == 0:
        return np.zeros(0, bool)
    (px, py), (qx, qy) = segment
    dx, dy = qx - px, qy - py
    lo, hi = np.zeros(len(xyxy)), np.ones(len(xyxy))
    ok = np.ones(len(xyxy), bool)
    # p * t <= q for each of the four box sides
    for p, q in ((-dx, px - xyxy[:, 0]), (dx, xyxy[:, 2] - px),
                 (-dy, py - xyxy[:, 1]), (dy, xyxy[:, 3] - py)):
        if p == 0:
            ok &= q >= 0  # parallel to this side: inside its half-plane or never
            continue
        t = q / p
        if p < 0:
            lo = np.maximum(lo, t)
        else:
            hi = np.minimum(hi, t)
    return ok & (lo <= hi)


class LineOccupancy:
    """Occupied time per counting line and interval (see the module docstring)."""

    def __init__(self, lines: dict[str, np.ndarray], interval_s: float, origin_s: float = 0.0,
                 retain_intervals: int | None = None):
        """`retain_intervals`: keep only the latest intervals (a live service's memory)."""
        self.lines = lines
        self.interval_s = interval_s
        self.origin_s = origin_s
        self.retain_intervals = retain_intervals
        self._occupied: dict[tuple[int, str], float] = {}
        self._observed: dict[int, float] = {}
        self._until: dict[int, float] = {}  # the end of each interval's observed time
        self._last_s: float | None = None
        self._state: dict[str, bool] = {}
        self._vacant_since: dict[str, float] = {}  # lanes whose line emptied, since when
        self.gaps: dict[str, list[float]] = {lane: [] for lane in lines}

    def update(self, boxes: np.ndarray, time_s: float) -> None:
        """A frame at `time_s` with these confirmed objects' boxes (N, 4)."""
        if self._last_s is not None:
            self._hold(self._last_s, time_s)
        self._last_s = time_s
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        quarter = (boxes[:, 2] - boxes[:, 0]) / 4
        core = np.column_stack([boxes[:, 0] + quarter, boxes[:, 1], boxes[:, 2] - quarter,
                                boxes[:, 3]])
        state = {lane: bool(boxes_touch_segment(core, seg).any())
                 for lane, seg in self.lines.items()}
        for lane, occupied in state.items():
            if self._state.get(lane) and not occupied:
                self._vacant_since[lane] = time_s
            elif occupied and lane in self._vacant_since:
                gaps = self.gaps[lane]
                gaps.append(round(time_s - self._vacant_since.pop(lane), 3))
                if len(gaps) > MAX_GAPS:  # a live service: the latest ones
                    del gaps[: len(gaps) - MAX_GAPS]
        self._state = state

    def _hold(self, start_s: float, end_s: float) -> None:
        """Credit [start_s, end_s) with the last frame's state, split at interval bounds."""
        t = start_s
        while t < end_s - 1e-9:
            k = self._interval(t)
            stop = min(end_s, self.origin_s + (k + 1) * self.interval_s)
            self._observed[k] = self._observed.get(k, 0.0) + stop - t
            self._until[k] = stop
            for lane, occupied in self._state.items():
                if occupied:
                    self._occupied[(k, lane)] = self._occupied.get((k, lane), 0.0) + stop - t
            t = stop
        if self.retain_intervals is not None and len(self._observed) > self.retain_intervals:
            oldest = sorted(self._observed)[:-self.retain_intervals]
            for k in oldest:
                del self._observed[k], self._until[k]
                for lane in self.lines:
                    self._occupied.pop((k, lane), None)

    def _interval(self, time_s: float) -> int:
        if math.isinf(self.interval_s):
            return 0
        return math.floor((time_s - self.origin_s) / self.interval_s + 1e-9)

    def table(self, end_s: float) -> list[OccupancyRow]:
        """Every interval x lane up to `end_s` (the video's end: the last frame's state
        holds until then)."""
        if self._last_s is not None and end_s > self._last_s:
            self._hold(self._last_s, end_s)
            self._last_s = end_s
        rows = []
        last = max(self._observed, default=None)
        for k in sorted(self._observed):
            start = (self.origin_s if math.isinf(self.interval_s)
                     else self.origin_s + k * self.interval_s)
            end = self._until[k] if k == last else start + self.interval_s
            observed = self._observed[k]
            for lane in self.lines:
                occupied = self._occupied.get((k, lane), 0.0)
                rows.append(OccupancyRow(
                    round(start, 3), round(end, 3), lane, round(occupied, 3), round(observed, 3),
                    round(100 * occupied / observed, 1) if observed else None))
        return rows
