"""Per-stream lane analytics: crossings, occupancy, dwell and congestion from tracked objects.

Feed it every frame's tracks (`Detections` with tracker ids), tentative ones included with
their `confirmed` flag. A crossing counts once the tracker has confirmed the track and the
track has been seen in `confirm_frames` frames; a crossing made earlier is held and counted (at
its original time) when that happens, or dropped if the track dies first. Occupancy, dwell and
congestion use confirmed tracks only. The class of a crossing is the track's majority class so
far (confidence-weighted votes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from lanewatch.trackers.congestion import CongestionMonitor
from lanewatch.trackers.counts import CountBook, CountKey
from lanewatch.trackers.crossing import LineCrossings
from lanewatch.trackers.detections import Detections
from lanewatch.trackers.geometry import points_in_polygon
from lanewatch.trackers.lanes import CountingSettings, Lane


@dataclass(frozen=True)
class CrossingEvent:
    """A track crossed a lane's counting line."""

    stream: str
    lane: str
    track_id: int
    class_name: str
    direction: str
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class CongestionEvent:
    """A lane became congested (`congested=True`) or cleared."""

    stream: str
    lane: str
    congested: bool
    occupancy: int
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class LaneState:
    """A lane at one instant."""

    name: str
    occupancy: int
    congested: bool
    max_dwell_s: float
    counts: dict[str, int]  # cumulative crossings per direction label


@dataclass(frozen=True)
class AnalyticsUpdate:
    """What one frame changed."""

    lanes: tuple[LaneState, ...]
    crossings: tuple[CrossingEvent, ...]
    congestion: tuple[CongestionEvent, ...]


@dataclass
class _Pending:
    lane: str
    direction: str
    time_s: float
    frame_index: int


@dataclass
class _TrackRecord:
    hits: int = 0
    confirmed: bool = False  # by the tracker
    last_seen_s: float = 0.0
    votes: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))
    pending: list[_Pending] = field(default_factory=list)
    entered_s: dict[str, float] = field(default_factory=dict)  # lane -> time it entered

    def majority_class(self) -> int:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]


class LaneAnalytics:
    """Lane analytics state of one stream."""

    def __init__(
        self,
        stream_id: str,
        lanes: list[Lane],
        settings: CountingSettings,
        frame_size: tuple[int, int],
        origin_s: float = 0.0,
    ):
        self.stream_id = stream_id
        self.lanes = lanes
        self.settings = settings
        self.counts = CountBook(settings.interval_s, origin_s)
        self._lines = {
            lane.name: LineCrossings(
                lane, frame_size, settings.hysteresis, settings.min_hysteresis_px,
                settings.min_confidence,
            )
            for lane in lanes
            if lane.line is not None
        }
        self._congestion = {
            lane.name: CongestionMonitor(lane.congestion) for lane in lanes if lane.congestion
        }
        self._tracks: dict[int, _TrackRecord] = {}
        self.class_names: dict[int, str] = {}

    def count_keys(self, class_names: list[str]) -> list[CountKey]:
        """Every lane x class x direction combination, for complete report grids."""
        return [
            CountKey(lane.name, cls, label)
            for lane in self.lanes
            for label in lane.labels()
            for cls in class_names
        ]

    def update(self, tracks: Detections, time_s: float, frame_index: int,
               confirmed: np.ndarray | None = None) -> AnalyticsUpdate:
        """Process one frame's tracks (`confirmed`: the tracker's flag per row; default all)."""
        if len(tracks) and tracks.tracker_id is None:
            raise ValueError("lane analytics needs tracked detections (tracker_id is missing)")
        self.class_names.update(tracks.class_names)
        self.counts.observe_time(time_s)
        ids = np.zeros(0, np.int64) if tracks.tracker_id is None else tracks.tracker_id
        anchors = tracks.anchors(self.settings.anchor)
        heights = tracks.xyxy[:, 3] - tracks.xyxy[:, 1]

        confirmed = np.ones(len(ids), bool) if confirmed is None else np.asarray(confirmed, bool)
        for tid, cls, conf, ok in zip(ids.tolist(), tracks.class_id.tolist(),
                                      tracks.confidence.tolist(), confirmed.tolist()):
            record = self._tracks.setdefault(tid, _TrackRecord())
            record.hits += 1
            record.confirmed |= ok
            record.last_seen_s = time_s
            record.votes[cls] += max(conf, 1e-3)

        crossings: list[CrossingEvent] = []
        for lane_name, line in self._lines.items():
            for c in line.observe(ids, anchors, heights, tracks.confidence):
                self._tracks[c.track_id].pending.append(
                    _Pending(lane_name, c.label, time_s, frame_index))
        for tid in ids.tolist():
            crossings.extend(self._release_pending(tid))

        lane_states, congestion = self._lane_states(ids[confirmed], anchors[confirmed], time_s,
                                                    frame_index)
        self._forget_stale(time_s)
        return AnalyticsUpdate(tuple(lane_states), tuple(crossings), tuple(congestion))

    def _release_pending(self, tid: int) -> list[CrossingEvent]:
        record = self._tracks[tid]
        if (not record.confirmed or record.hits < self.settings.confirm_frames
                or not record.pending):
            return []
        class_name = self.class_names.get(record.majority_class(), str(record.majority_class()))
        events = []
        for p in record.pending:
            self.counts.add(CountKey(p.lane, class_name, p.direction), p.time_s)
            events.append(CrossingEvent(self.stream_id, p.lane, tid, class_name, p.direction,
                                        p.time_s, p.frame_index))
        record.pending.clear()
        return events

    def _lane_states(self, ids, anchors, time_s, frame_index):
        states, changes = [], []
        for lane in self.lanes:
            occupancy, max_dwell = 0, 0.0
            if lane.polygon is not None:
                inside = points_in_polygon(anchors, lane.polygon)
                occupancy = int(inside.sum())
                for tid, is_in in zip(ids.tolist(), inside.tolist()):
                    entered = self._tracks[tid].entered_s
                    if is_in:
                        max_dwell = max(max_dwell, time_s - entered.setdefault(lane.name, time_s))
                    else:
                        entered.pop(lane.name, None)
            monitor = self._congestion.get(lane.name)
            if monitor is not None and monitor.update(occupancy, max_dwell, time_s):
                changes.append(CongestionEvent(self.stream_id, lane.name, monitor.congested,
                                               occupancy, time_s, frame_index))
            counts = {label: self.counts.total(lane=lane.name, direction=label)
                      for label in lane.labels()}
            states.append(LaneState(lane.name, occupancy, bool(monitor and monitor.congested),
                                    max_dwell, counts))
        return states, changes

    def _forget_stale(self, time_s: float) -> None:
        horizon = time_s - self.settings.forget_after_s
        for tid in [t for t, r in self._tracks.items() if r.last_seen_s < horizon]:
            del self._tracks[tid]
            for line in self._lines.values():
                line.forget(tid)

    @property
    def tracked_count(self) -> int:
        """Tracks whose state is held (bounded by forget_after_s)."""
        return len(self._tracks)
