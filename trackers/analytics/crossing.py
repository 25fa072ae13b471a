"""Line-crossing detection for one counting line, robust to box jitter and stop-and-go.

Each track's anchor point is classified as clearly on one side of the line (beyond a margin)
or inside the band around it; anchors of low-confidence boxes (typically partial boxes of an
occluded object, whose bottom edge is not the object's) are treated as inside the band. A
crossing is the change of a track's *settled* side; positions inside the band never settle,
so jitter on the line or a vehicle stopping on it cannot produce a second count. The crossing
must also happen within the segment's extent (between the line's two points), and a track is
counted at most once per line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lanewatch.trackers.analytics.geometry import crossing_position, signed_distance
from lanewatch.trackers.analytics.lanes import Direction, Lane


@dataclass
class _Settled:
    side: int  # +1 right-hand side of start->end (on screen), -1 left-hand side
    point: np.ndarray  # last anchor seen settled on that side
    counted: bool = False


@dataclass(frozen=True)
class Crossing:
    """A track crossed the line; `label` is the lane's label for that direction."""

    track_id: int
    label: str


class LineCrossings:
    """Stateful crossing detector for one lane's counting line."""

    def __init__(
        self,
        lane: Lane,
        frame_size: tuple[int, int],
        hysteresis: float = 0.1,
        min_hysteresis_px: float = 2.0,
        min_confidence: float = 0.0,
    ):
        if lane.line is None:
            raise ValueError(f"lane '{lane.name}' has no counting line")
        self.lane = lane
        self._start, self._end = lane.line[0], lane.line[1]
        self._hysteresis = hysteresis
        self._min_px = min_hysteresis_px
        self._min_confidence = min_confidence
        # A line close to the frame edge: the anchor can only get so far past it. Cap the margin
        # on each side at half of what is reachable inside the frame, so such a line still counts.
        w, h = frame_size
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float)
        reach = signed_distance(corners, self._start, self._end)
        self._max_margin_pos = max(reach.max(), 0.0) / 2
        self._max_margin_neg = max(-reach.min(), 0.0) / 2
        self._state: dict[int, _Settled] = {}

    def observe(
        self,
        track_ids: np.ndarray,
        anchors: np.ndarray,
        box_heights: np.ndarray,
        confidence: np.ndarray | None = None,
    ) -> list[Crossing]:
        """Feed one frame's tracks; returns the crossings that count (at most one per track)."""
        if len(track_ids) == 0:
            return []
        distance = signed_distance(anchors, self._start, self._end)
        margin = np.maximum(self._hysteresis * box_heights, self._min_px)
        side = np.where(
            distance >= np.minimum(margin, self._max_margin_pos),
            1,
            np.where(distance <= -np.minimum(margin, self._max_margin_neg), -1, 0),
        )
        if confidence is not None:
            side[confidence < self._min_confidence] = 0
        crossings = []
        for tid, s, point in zip(track_ids.tolist(), side.tolist(), anchors):
            if s == 0:
                continue  # inside the band: nothing settles here
            state = self._state.get(tid)
            if state is None:
                self._state[tid] = _Settled(s, point)
                continue
            if s == state.side:
                state.point = point
                continue
            position = crossing_position(state.point, point, self._start, self._end)
            state.side, state.point = s, point
            # Half-open [0, 1): a point exactly on the shared end of two adjacent lanes'
            # lines belongs to one lane only.
            if state.counted or position is None or not 0 <= position < 1:
                continue
            direction = Direction.IN if s == 1 else Direction.OUT
            if self.lane.direction not in (Direction.BOTH, direction):
                continue
            state.counted = True
            label = self.lane.in_label if direction is Direction.IN else self.lane.out_label
            crossings.append(Crossing(tid, label))
        return crossings

    def forget(self, track_id: int) -> None:
        """Drop a finished track's state."""
        self._state.pop(track_id, None)
