"""Prometheus metrics of the live service (names as in docs/architecture.md; never a label
per track id: label values are streams, lanes, classes, directions and stages only).

Each service owns its own registry, so several services (or tests) in one process never mix
their series.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (re-export)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lanewatch.sinks.results import FrameResult
from lanewatch.trackers.analytics.lane_analytics import AnalyticsUpdate, CrossingEvent, LaneState

# Stage timings of a CPU pipeline span 1 ms (tracking) to a few hundred ms (inference).
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)
_SPEED_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 160, 200, 250)
# Fine below 100 ms, where a CPU model's single-frame time (25-60 ms) and its multiples lie, so
# that histogram_quantile's p50/p95/p99 are close to the real percentiles.
_LATENCY_BUCKETS = (0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.07, 0.08,
                    0.09, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5)


class ServiceMetrics:
    """Every metric the service exposes on /metrics; a sink (sinks/sink.py) of every
    stream's results."""

    name = "metrics"

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("lanewatch_frames", "Frames processed", ["stream"], registry=r)
        self.dropped = Counter("lanewatch_frames_dropped", "Frames dropped, by stage",
                               ["stream", "stage"], registry=r)
        self.stage_seconds = Histogram("lanewatch_stage_seconds", "Time per frame in a stage",
                                       ["stream", "stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.latency = Histogram("lanewatch_latency_seconds",
                                 "Capture to publish latency of a frame", ["stream"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.stream_up = Gauge("lanewatch_stream_up", "1 while the stream delivers frames",
                               ["stream"], registry=r)
        self.reconnects = Counter("lanewatch_reconnects", "Reconnection attempts", ["stream"],
                                  registry=r)
        self.stream_state = Gauge("lanewatch_stream_state",
                                  "1 for the stream's current state, 0 for the others",
                                  ["stream", "state"], registry=r)
        self.crossings = Counter("lanewatch_lane_crossings", "Counting-line crossings",
                                 ["stream", "lane", "class", "direction"], registry=r)
        self.occupancy = Gauge("lanewatch_lane_occupancy", "Objects in the lane now",
                               ["stream", "lane"], registry=r)
        self.congested = Gauge("lanewatch_lane_congested", "1 while the lane is congested",
                               ["stream", "lane"], registry=r)
        self.ws_clients = Gauge("lanewatch_websocket_clients", "Connected WebSocket clients",
                                registry=r)
        self.batch = Histogram("lanewatch_batch_frames", "Frames per inference batch "
                               "(model.batch_size > 1)", buckets=(1, 2, 3, 4, 6, 8, 12, 16,
                                                                  24, 32, 48, 64), registry=r)
        self.queue = Gauge("lanewatch_lane_queue", "Stopped vehicles in the lane now",
                           ["stream", "lane"], registry=r)
        self.movements = Counter("lanewatch_movements", "Turning movements (origin to "
                                 "destination zone)", ["stream", "movement", "class"],
                                 registry=r)
        self.speed = Histogram("lanewatch_speed_kmh", "Spot speed at the counting line",
                               ["stream", "lane"], buckets=_SPEED_BUCKETS, registry=r)
        self.speeds_rejected = Counter("lanewatch_speeds_rejected",
                                       "Implausible speeds, not reported", ["stream", "lane"],
                                       registry=r)
        self.wrong_way = Counter("lanewatch_wrong_way", "Vehicles driving against the lane",
                                 ["stream", "lane"], registry=r)
        self.dwell_alerts = Counter("lanewatch_dwell_alerts", "Vehicles staying longer than "
                                    "max_dwell_s", ["stream", "area"], registry=r)
        # Counting reliability (stream/pipeline/cadence.py): the model's cadence, the share of
        # frames it saw and the largest gap between detections over the last minute, against the
        # stream's exactness limit.
        self.counting_reliable = Gauge(
            "lanewatch_counting_reliable", "1 while the stream's counts are exact (the gap "
            "between detections within its exactness limit), 0 when they may miss vehicles",
            ["stream"], registry=r)
        self.cadence = Gauge("lanewatch_detection_cadence",
                             "The model runs on every Nth frame of the stream now", ["stream"],
                             registry=r)
        self.processed_fraction = Gauge(
            "lanewatch_processed_fraction", "Share of the stream's frames the model saw "
            "(last minute)", ["stream"], registry=r)
        self.detection_gap = Gauge(
            "lanewatch_detection_gap_seconds", "Largest time between two detections "
            "(last minute)", ["stream"], registry=r)
        self.detection_gap_limit = Gauge(
            "lanewatch_detection_gap_limit_seconds", "The stream's exactness limit "
            "(detection.max_gap_s)", ["stream"], registry=r)

    def set_state(self, stream: str, state: str, states: list[str]) -> None:
        """Record a stream's state (one series per possible state, the current one at 1)."""
        for s in states:
            self.stream_state.labels(stream, s).set(1 if s == state else 0)
        self.stream_up.labels(stream).set(1 if state == "running" else 0)

    def observe_crossings(self, events: tuple[CrossingEvent, ...]) -> None:
        """Count a frame's crossings."""
        for e in events:
            self.crossings.labels(e.stream, e.lane, e.class_name, e.direction).inc()

    def observe_lanes(self, stream: str, lanes: tuple[LaneState, ...]) -> None:
        """Set the lanes' occupancy, queue and congestion gauges."""
        for lane in lanes:
            self.occupancy.labels(stream, lane.name).set(lane.occupancy)
            self.queue.labels(stream, lane.name).set(lane.queue)
            self.congested.labels(stream, lane.name).set(1 if lane.congested else 0)

    def declare_stream(self, stream, classes: list[str] | None) -> None:
        """Create a configured stream's analytics series at 0 (`stream`: its StreamConfig),
        so that alerts on increase() fire on the first event and panels show zero, not
        "no data": wrong-way per one-way lane, long stays per lane or zone with `max_dwell_s`,
        rejected speeds per counting line on calibrated streams, named movements per class
        (when the config lists the classes)."""
        sid = stream.id
        for lane in stream.lanes:
            if lane.polygon is not None and lane.line is not None and lane.direction != "both":
                self.wrong_way.labels(sid, lane.name)
            if lane.polygon is not None and lane.max_dwell_s is not None:
                self.dwell_alerts.labels(sid, lane.name)
            if lane.line is not None and stream.calibration is not None:
                self.speeds_rejected.labels(sid, lane.name)
        if stream.turning is not None:
            for zone in stream.turning.zones:
                if zone.max_dwell_s is not None:
                    self.dwell_alerts.labels(sid, zone.name)
            for movement in stream.turning.movements:
                for class_name in classes or []:
                    self.movements.labels(sid, movement.name, class_name)

    def observe_reliability(self, stream: str, *, reliable: bool, cadence: int,
                            processed_fraction: float, largest_gap_s: float,
                            limit_s: float) -> None:
        """A live stream's counting reliability now (see stream/pipeline/cadence.py)."""
        self.counting_reliable.labels(stream).set(1 if reliable else 0)
        self.cadence.labels(stream).set(cadence)
        self.processed_fraction.labels(stream).set(processed_fraction)
        self.detection_gap.labels(stream).set(largest_gap_s)
        self.detection_gap_limit.labels(stream).set(limit_s)

    def on_result(self, result: FrameResult) -> None:
        """A processed frame: its count, stage times and everything its analytics changed."""
        sid, t = result.frame.stream_id, result.timings
        self.frames.labels(sid).inc()
        if result.detected:  # predicted frames never reached the model
            self.stage_seconds.labels(sid, "detect").observe(t.detect_s)
        self.stage_seconds.labels(sid, "track").observe(t.track_s)
        self.stage_seconds.labels(sid, "analytics").observe(t.analytics_s)
        self.observe_update(sid, result.analytics)

    def close(self) -> None:
        """Nothing: the metrics outlive each stream (a stopped stream's series stay)."""

    def observe_update(self, stream: str, update: AnalyticsUpdate) -> None:
        """Everything one frame's analytics changed."""
        self.observe_crossings(update.crossings)
        self.observe_lanes(stream, update.lanes)
        for e in update.crossings:
            if e.speed_kmh is not None:
                self.speed.labels(e.stream, e.lane).observe(e.speed_kmh)
            if e.speed_rejected:
                self.speeds_rejected.labels(e.stream, e.lane).inc()
        for m in update.movements:
            self.movements.labels(m.stream, m.movement, m.class_name).inc()
        for w in update.wrong_way:
            self.wrong_way.labels(w.stream, w.lane).inc()
        for d in update.dwell:
            self.dwell_alerts.labels(d.stream, d.area).inc()

    def restore_movements(self, stream: str, totals) -> None:
        """Start the movement counters from stored totals (after a restart)."""
        for name, _, _, class_name, n in totals:
            self.movements.labels(stream, name, class_name).inc(n)

    def restore_crossings(self, stream: str, cumulative) -> None:
        """Start the crossing counters from stored totals (after a restart), so a counter never
        appears to go backwards to dashboards that do not use rate()."""
        for key, n in cumulative.items():
            self.crossings.labels(stream, key.lane, key.class_name, key.direction).inc(n)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
