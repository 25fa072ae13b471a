"""Per-stream traffic analytics from tracked objects: crossings (with spot speeds), occupancy
(objects in a lane, and the time share of its counting line, as loops measure it), queues,
dwell, congestion, turning movements and wrong-way driving.

Feed it every frame's tracks (`Detections` with tracker ids), tentative ones included with
their `confirmed` flag. A crossing counts once the tracker has confirmed the track and the
track has been seen in `confirm_frames` frames; a crossing made earlier is held and counted (at
its original time) when that happens, or dropped if the track dies first. Everything else uses
confirmed tracks only. The class of an event is the track's majority class so far
(confidence-weighted votes). Speeds need the stream's ground-plane calibration; without it,
queues use motion in box heights per second and wrong-way distances are in box heights.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from lanewatch.trackers.analytics.congestion import CongestionMonitor
from lanewatch.trackers.analytics.counts import CountBook, CountKey
from lanewatch.trackers.analytics.crossing import LineCrossings
from lanewatch.trackers.analytics.dwell import Area, DwellTracker
from lanewatch.trackers.analytics.events import (
    AnalyticsUpdate,
    CongestionEvent,
    CrossingEvent,
    DwellEvent,
    LaneState,
    MovementEvent,
    WrongWayEvent,
)
from lanewatch.trackers.analytics.geometry import points_in_polygon
from lanewatch.trackers.analytics.ground import SpeedEstimator, SpeedReading, TrackMotion
from lanewatch.trackers.analytics.lanes import CountingSettings, Lane
from lanewatch.trackers.analytics.movements import MovementCounter, TurningSettings
from lanewatch.trackers.analytics.time_occupancy import LineOccupancy
from lanewatch.trackers.analytics.wrong_way import WrongWayDetector
from lanewatch.trackers.detections import Detections

__all__ = ["AnalyticsUpdate", "CongestionEvent", "CrossingEvent", "DwellEvent", "LaneAnalytics",
           "LaneState", "MovementEvent", "WrongWayEvent"]

MOVEMENT = "movement"  # the direction field of movement count keys


@dataclass
class _Pending:
    lane: str
    direction: str
    time_s: float
    frame_index: int
    speed: SpeedReading


@dataclass
class _TrackRecord:
    hits: int = 0
    confirmed: bool = False  # by the tracker
    last_seen_s: float = 0.0
    votes: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))
    pending: list[_Pending] = field(default_factory=list)

    def majority_class(self) -> int:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]


class LaneAnalytics:
    """Traffic analytics state of one stream.

    `zones` and `turning` enable turning movements (and zone dwell); `speeds` (a calibrated
    ground plane) enables speeds and metric distances. `retain_intervals` bounds the interval
    history held in memory (live services; a review keeps it all for its reports).
    """

    def __init__(self, stream_id: str, lanes: list[Lane], settings: CountingSettings,
                 frame_size: tuple[int, int], origin_s: float = 0.0, *,
                 zones: list[Area] = (), turning: TurningSettings | None = None,
                 speeds: SpeedEstimator | None = None, retain_intervals: int | None = None):
        self.stream_id = stream_id
        self.lanes = lanes
        self.settings = settings
        self.counts = CountBook(settings.interval_s, origin_s, retain_intervals)
        # Movement counts: key lane = movement name, direction = MOVEMENT.
        self.movement_counts = CountBook(settings.interval_s, origin_s, retain_intervals)
        self.unfinished: Counter[str] = Counter()  # origin zone -> tracks with no destination
        self.movement_pairs: dict[str, tuple[str, str]] = {}  # movement -> (origin, dest)
        self.speeds_rejected = 0
        self.turning = turning
        self._lines = {
            lane.name: LineCrossings(lane, frame_size, settings.hysteresis,
                                     settings.min_hysteresis_px, settings.min_confidence)
            for lane in lanes if lane.line is not None
        }
        self._congestion = {
            lane.name: CongestionMonitor(lane.congestion) for lane in lanes if lane.congestion
        }
        self._movements = (MovementCounter(turning, {z.name: z.polygon for z in zones})
                           if turning is not None else None)
        self._speeds = speeds
        self._pixel_motion = TrackMotion()  # stopped vehicles when there is no ground plane
        self._wrong_way = WrongWayDetector(lanes, settings.wrong_way,
                                           speeds.plane if speeds is not None else None)
        lane_areas = [Area(lane.name, lane.polygon, lane.max_dwell_s) for lane in lanes
                      if lane.polygon is not None]
        self.dwell = DwellTracker(lane_areas + list(zones), settings.interval_s, origin_s,
                                  retain_intervals)
        self._zones = list(zones)
        self.line_occupancy = LineOccupancy(
            {lane.name: lane.line for lane in lanes if lane.line is not None},
            settings.interval_s, origin_s, retain_intervals)
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

    def movement_keys(self, class_names: list[str]) -> list[CountKey]:
        """Every named movement x class, for complete report grids."""
        if self.turning is None:
            return []
        return [CountKey(m.name, cls, MOVEMENT) for m in self.turning.movements
                for cls in class_names]

    def restore_movements(self, totals: list[tuple[str, str, str, str, int]]) -> None:
        """Start from movement totals kept elsewhere (a store, after a restart):
        (movement, origin, destination, class, count) rows."""
        for name, origin, destination, class_name, n in totals:
            self.movement_counts.cumulative[CountKey(name, class_name, MOVEMENT)] += n
            self.movement_pairs[name] = (origin, destination)

    def update(self, tracks: Detections, time_s: float, frame_index: int,
               confirmed: np.ndarray | None = None) -> AnalyticsUpdate:
        """Process one frame's tracks (`confirmed`: the tracker's flag per row; default all)."""
        if len(tracks) and tracks.tracker_id is None:
            raise ValueError("lane analytics needs tracked detections (tracker_id is missing)")
        self.class_names.update(tracks.class_names)
        self.counts.observe_time(time_s)
        self.movement_counts.observe_time(time_s)
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
        if self._speeds is not None:
            self._speeds.update(ids, anchors, time_s)
        else:
            self._pixel_motion.update(ids, anchors, time_s)

        crossings: list[CrossingEvent] = []
        for lane_name, line in self._lines.items():
            for c in line.observe(ids, anchors, heights, tracks.confidence):
                self._tracks[c.track_id].pending.append(
                    _Pending(lane_name, c.label, time_s, frame_index, self._speed(c.track_id)))
        for tid in ids.tolist():
            crossings.extend(self._release_pending(tid))

        ids_c, anchors_c, heights_c = ids[confirmed], anchors[confirmed], heights[confirmed]
        self.line_occupancy.update(tracks.xyxy[confirmed], time_s)
        lane_states, congestion, wrong_way, dwell = self._lane_states(
            ids_c, anchors_c, heights_c, time_s, frame_index)
        dwell += self._zone_dwell(ids_c, anchors_c, time_s, frame_index)
        movements = self._update_movements(ids_c, anchors_c, time_s, frame_index)
        self._forget_stale(time_s)
        return AnalyticsUpdate(tuple(lane_states), tuple(crossings), tuple(congestion),
                               tuple(movements), tuple(wrong_way), tuple(dwell))

    # -- per-track helpers -----------------------------------------------------------------------
    def _class_of(self, tid: int) -> str:
        cls = self._tracks[tid].majority_class()
        return self.class_names.get(cls, str(cls))

    def _speed(self, tid: int) -> SpeedReading:
        return self._speeds.reading(tid) if self._speeds is not None else SpeedReading(None)

    def _stopped(self, tid: int, height: float) -> bool:
        if self._speeds is not None:
            kmh = self._speeds.reading(tid).speed_kmh
            return kmh is not None and kmh < self._speeds.spec.stopped_below_kmh
        velocity = self._pixel_motion.velocity(tid)
        return velocity is not None and (
            float(np.hypot(*velocity)) / max(height, 1.0)
            < self.settings.stopped_below_heights_per_s)

    def _release_pending(self, tid: int) -> list[CrossingEvent]:
        record = self._tracks[tid]
        if (not record.confirmed or record.hits < self.settings.confirm_frames
                or not record.pending):
            return []
        class_name = self._class_of(tid)
        events = []
        for p in record.pending:
            self.counts.add(CountKey(p.lane, class_name, p.direction), p.time_s)
            self.speeds_rejected += p.speed.rejected
            kmh = None if p.speed.speed_kmh is None else round(p.speed.speed_kmh, 1)
            events.append(CrossingEvent(self.stream_id, p.lane, tid, class_name, p.direction,
                                        p.time_s, p.frame_index, kmh, p.speed.rejected))
        record.pending.clear()
        return events

    # -- lanes, zones, movements -----------------------------------------------------------------
    def _lane_states(self, ids, anchors, heights, time_s, frame_index):
        states, changes, wrong_way, dwell = [], [], [], []
        for lane in self.lanes:
            occupancy, queue, longest = 0, 0, 0.0
            if lane.polygon is not None:
                inside = points_in_polygon(anchors, lane.polygon)
                occupancy = int(inside.sum())
                queue = sum(self._stopped(tid, h) for tid, h in
                            zip(ids[inside].tolist(), heights[inside].tolist()))
                longest, stays = self.dwell.update(lane.name, ids, inside, time_s)
                dwell += [DwellEvent(self.stream_id, s.area, s.track_id, self._class_of(s.track_id),
                                     round(s.dwell_s, 2), time_s, frame_index) for s in stays]
                for w in self._wrong_way.update(lane.name, ids[inside], anchors[inside],
                                                heights[inside], time_s, frame_index):
                    wrong_way.append(WrongWayEvent(self.stream_id, w.lane, w.track_id,
                                                   self._class_of(w.track_id), w.distance,
                                                   w.unit, time_s, frame_index))
            monitor = self._congestion.get(lane.name)
            if monitor is not None and monitor.update(occupancy, longest, time_s, queue):
                changes.append(CongestionEvent(self.stream_id, lane.name, monitor.congested,
                                               occupancy, time_s, frame_index))
            counts = {label: self.counts.total(lane=lane.name, direction=label)
                      for label in lane.labels()}
            states.append(LaneState(lane.name, occupancy, bool(monitor and monitor.congested),
                                    longest, counts, queue))
        return states, changes, wrong_way, dwell

    def _zone_dwell(self, ids, anchors, time_s, frame_index) -> list[DwellEvent]:
        events = []
        for zone in self._zones:
            inside = points_in_polygon(anchors, zone.polygon)
            _, stays = self.dwell.update(zone.name, ids, inside, time_s)
            events += [DwellEvent(self.stream_id, s.area, s.track_id, self._class_of(s.track_id),
                                  round(s.dwell_s, 2), time_s, frame_index) for s in stays]
        return events

    def _update_movements(self, ids, anchors, time_s, frame_index) -> list[MovementEvent]:
        if self._movements is None:
            return []
        events = []
        for m in self._movements.update(ids, anchors, time_s, frame_index):
            class_name = self._class_of(m.track_id)
            self.movement_counts.add(CountKey(m.name, class_name, MOVEMENT), time_s)
            self.movement_pairs[m.name] = (m.origin, m.destination)
            events.append(MovementEvent(self.stream_id, m.name, m.origin, m.destination,
                                        m.track_id, class_name, time_s, frame_index))
        return events

    def close(self) -> None:
        """The video ended: every track is gone (open dwell visits end at each track's last
        sighting; tracks with an origin and no destination are unfinished)."""
        self._forget_stale(float("inf"))

    def _forget_stale(self, time_s: float) -> None:
        horizon = time_s - self.settings.forget_after_s
        for tid in [t for t, r in self._tracks.items() if r.last_seen_s < horizon]:
            record = self._tracks.pop(tid)
            for line in self._lines.values():
                line.forget(tid)
            if self._movements is not None and (origin := self._movements.forget(tid)):
                self.unfinished[origin] += 1
            self._wrong_way.forget(tid)
            self.dwell.forget(tid, record.last_seen_s)
            (self._speeds.motion if self._speeds is not None else self._pixel_motion).forget(tid)

    @property
    def has_speeds(self) -> bool:
        """Whether the stream is calibrated (crossings carry spot speeds)."""
        return self._speeds is not None

    @property
    def tracked_count(self) -> int:
        """Tracks whose state is held (bounded by forget_after_s)."""
        return len(self._tracks)
