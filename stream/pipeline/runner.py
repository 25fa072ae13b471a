"""One live stream of `lanewatch serve`: source -> detect -> track -> lane analytics -> outputs.

A `StreamRunner` owns a `LiveSource` and a worker thread that takes every frame in order; its
`CadenceScheduler` sends every Nth of them to the model, N chosen by the process's
`CapacityGovernor` from the capacity it measures, and the tracker predicts the frames between,
so a box slower than its cameras loses no frames in irregular bursts
(stream/pipeline/governor.py). The detector is shared by the streams and safe to call from
their threads (OpenVINO runs their requests side by side). Results go through one `FanOut`
(sinks/sink.py) to the count store (committed before anything else sees them), the metrics
and the service's sinks (WebSocket hub, live video). A failing sink is logged and counted; it
never stops the stream, and a failing stream never stops the others.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self

import numpy as np

from lanewatch.sinks.errors import ConfigError, ModelError
from lanewatch.sinks.frames import Frame, Picture
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.sink import FanOut, Listener, Sink, SinkFailure
from lanewatch.sinks.store import CountStore, StoreSink
from lanewatch.stream.config.schema import Config, StreamConfig
from lanewatch.stream.detect.detector import Detector
from lanewatch.stream.detect.step import DetectedFrame, detection_steps
from lanewatch.stream.pipeline.cadence import CadenceScheduler, Reliability
from lanewatch.stream.pipeline.governor import CapacityGovernor
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.sources.live import LiveSource, SourceSettings, StreamState, redact
from lanewatch.trackers.analytics.lanes import Lane
from lanewatch.trackers.bytetrack.warm_up import warm_up
from lanewatch.trackers.detections import Detections

log = logging.getLogger(__name__)

LATENCY_WINDOW = 900  # frames behind the API's latency percentiles (30 s of a 30 f/s camera)
GAUGE_PERIOD_S = 0.5  # how often the counting-reliability gauges are refreshed


class ResultPublisher:
    """What a stream does with each processed frame, wherever it ran: hands it to its sinks
    (sinks/sink.py) through one `FanOut`: the store where the stream runs, then the metrics,
    the service's sinks (WebSocket hub, live video) and the `on_result` function; then takes
    the frame's capture-to-publish latency. A failing sink is logged and counted in
    lanewatch_frames_dropped_total{stage=<its name>}; the stream goes on. Shared by
    `StreamRunner` (this process) and `RemoteStream` (a cluster actor's results)."""

    stream: StreamConfig
    config: Config
    metrics: ServiceMetrics

    def _init_publisher(self, sinks: Sequence[Sink],
                        on_result: Callable[[FrameResult], None] | None,
                        store: CountStore | None = None) -> None:
        """Call at the end of `__init__`, with `stream`, `config` and `metrics` set. Each
        result goes to `store` (committed before anything else sees it), the metrics,
        `sinks` in order, then `on_result`."""
        # Series exist from the start at 0, so rate() and dashboards see "none yet", not "no data".
        sid = self.stream.id
        self.metrics.frames.labels(sid)
        self.metrics.reconnects.labels(sid)
        self.metrics.dropped.labels(sid, "source")
        self.metrics.declare_stream(self.stream, self.config.model.classes)
        self.frames_processed = 0
        self.last_result: FrameResult | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        stored = () if store is None else (StoreSink(store),)
        listener = () if on_result is None else (Listener(on_result),)
        self.outputs = FanOut(sid, (*stored, self.metrics, *sinks, *listener),
                              self._sink_failed)

    def _sink_failed(self, failure: SinkFailure) -> None:
        """A sink missed a result (logged by the fan-out): counted under its name."""
        self.metrics.dropped.labels(failure.stream, failure.sink).inc(failure.lost)

    def _publish(self, result: FrameResult) -> None:
        """Publish a frame to every sink (in `StreamRunner`, the store is the first)."""
        self.outputs.on_result(result)
        self.frames_processed += 1
        self.last_result = result
        # Capture to publish: the results are in the store, the metrics and the hub.
        latency = max(time.time() - result.frame.wall_time, 0.0)
        self.metrics.latency.labels(self.stream.id).observe(latency)
        self._latencies.append(latency)

    def latency_percentiles(self) -> dict[str, float] | None:
        """Capture-to-publish p50/p95/p99 in ms over the last `LATENCY_WINDOW` frames."""
        recent = np.fromiter(tuple(self._latencies), float)
        if not len(recent):
            return None
        p50, p95, p99 = np.percentile(recent, (50, 95, 99)) * 1000
        return {"p50": round(float(p50), 1), "p95": round(float(p95), 1),
                "p99": round(float(p99), 1), "frames": len(recent)}


class StreamRunner(ResultPublisher):
    """Runs one configured stream until stopped, in this process; a `RunningStream`
    (stream/pipeline/running_stream.py), as the cluster's `RemoteStream` is."""

    def __init__(self, stream: StreamConfig, config: Config, detector: Detector,
                 metrics: ServiceMetrics,
                 store: CountStore | None = None,
                 on_result: Callable[[FrameResult], None] | None = None,
                 source_settings: SourceSettings | None = None,
                 governor: CapacityGovernor | None = None,
                 sinks: Sequence[Sink] = ()):
        self.stream = stream
        self.config = config
        self.detector = detector
        self.metrics = metrics
        self.store = store
        self.source = LiveSource(stream.id, stream.source, source_settings,
                                 on_state=self._on_state)
        self.processor: StreamProcessor | None = None
        self.governor = governor or CapacityGovernor()  # shared by the process's streams
        self.scheduler: CadenceScheduler | None = None
        self.error: str | None = None  # a configuration problem found at run time
        self._init_publisher(sinks, on_result, store)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_reconnects = 0
        self._seen_drops = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the source and the worker thread; returns at once, with the runner."""
        warm_up()  # compiled tracker kernels load before the first live frame arrives
        self._on_state(self.stream.id, StreamState.STARTING)
        self.source.start()
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{self.stream.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the source and the worker, waiting `timeout` s at most in all; True when both
        threads have ended (False: still stopping, e.g. a camera that hangs in a read)."""
        deadline = time.monotonic() + timeout
        self._stop.set()  # first: the worker winds down while the source is joined
        self.source.stop(timeout)
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.05))
        if self.scheduler is not None:
            self.scheduler.close()  # its share of the box goes back to the other streams
        self._on_state(self.stream.id, StreamState.STOPPED)
        worker_alive = self._thread is not None and self._thread.is_alive()
        return not (worker_alive or self.source.reading)

    @property
    def state(self) -> StreamState:
        """The source's state, but failed on a configuration error, and running while the
        frames queued before a file ended are still processed."""
        if self.error:
            return StreamState.FAILED
        state = self.source.state
        if (state is StreamState.STOPPED and not self._stop.is_set()
                and self._thread is not None and self._thread.is_alive()):
            return StreamState.RUNNING  # the file ended; its queued frames are still counted
        return state

    def status(self) -> dict[str, Any]:
        """The stream's state for the API (no credentials)."""
        s = self.source
        return {
            "id": self.stream.id,
            "source": redact(self.stream.source),
            "state": self.state.value,
            "error": self.error or s.last_error,
            "frames_received": s.frames_received,
            "frames_processed": self.frames_processed,
            "frames_dropped": s.frames_dropped,
            "reconnects": s.reconnects,
            "frame_size": list(s.frame_size) if s.frame_size else None,
            "fps": s.fps,
            "latency_ms": self.latency_percentiles(),
            **self.reliability().as_status(),
            "video_scale": self.governor.video_scale,
        }

    def reliability(self) -> Reliability:
        """Whether the stream's counts are exact now (cadence, gaps; stream/pipeline/cadence.py)."""
        if self.scheduler is None:  # nothing processed yet: nothing can have been missed
            limit = self.stream.detection.max_gap_s
            return Reliability(True, None, self.stream.detection.every_nth_frame, 1.0, 0, 0.0,
                               limit, 0)
        return self.scheduler.reliability()

    # -- what the API and the dashboard read --------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the stream's frames, once the first one arrived."""
        return None if self.processor is None else self.processor.frame_size

    @property
    def lanes(self) -> tuple[Lane, ...] | None:
        """The stream's lanes in pixels, once the frame size is known."""
        return None if self.processor is None else tuple(self.processor.lanes)

    def latest_image(self) -> np.ndarray | None:
        """The last processed frame (BGR), for snapshots."""
        result = self.last_result
        return None if result is None else result.frame.image

    def lane_snapshot(self) -> list[dict[str, Any]]:
        """Per lane: occupancy, queue, congestion, longest stay, interval and all-time counts."""
        return lane_snapshot(self.processor, self.last_result)

    def movement_snapshot(self) -> list[dict[str, Any]]:
        """Cumulative turning movements per movement and class (streams with `turning:`)."""
        return movement_snapshot(self.processor)

    # -- worker ------------------------------------------------------------------------------
    def _on_state(self, stream_id: str, state: StreamState) -> None:
        self.metrics.set_state(stream_id, state.value, [s.value for s in StreamState])

    def _sync_source_metrics(self) -> None:
        s, sid = self.source, self.stream.id
        if s.reconnects > self._seen_reconnects:
            self.metrics.reconnects.labels(sid).inc(s.reconnects - self._seen_reconnects)
            self._seen_reconnects = s.reconnects
        if s.frames_dropped > self._seen_drops:
            self.metrics.dropped.labels(sid, "source").inc(s.frames_dropped - self._seen_drops)
            self._seen_drops = s.frames_dropped

    def _processor_for(self, frame_size: tuple[int, int]) -> StreamProcessor | None:
        """Build the processor on the first frame (lanes need the frame size)."""
        if self.processor is not None and self.processor.frame_size == frame_size:
            return self.processor
        try:
            # The store keeps the interval history: memory holds only the last few intervals.
            processor = StreamProcessor(self.stream, self.config, self.detector, frame_size,
                                        self.source.fps or 30.0, origin_s=0.0,
                                        retain_intervals=2)
            processor.prepare_detector(single=True)  # compiled for this input now, not later
        except (ConfigError, ModelError) as err:
            self.error = str(err)
            log.error("stream %s: %s", self.stream.id, err)
            self._on_state(self.stream.id, StreamState.FAILED)
            return None
        if self.store is not None:
            stored = self.store.cumulative(self.stream.id)
            processor.analytics.counts.restore(stored)
            moved = self.store.movement_totals(self.stream.id)
            processor.analytics.restore_movements(moved)
            if self.processor is None:
                self.metrics.restore_crossings(self.stream.id, stored)
                self.metrics.restore_movements(self.stream.id, moved)
        if self.scheduler is not None:
            self.scheduler.close()
        self.scheduler = CadenceScheduler(self.stream.id, self.stream.detection,
                                          self.source.fps or 30.0, self.governor)
        self.processor = processor
        self.source.pipeline_ready()
        return processor

    def _run(self) -> None:
        try:
            self._work()
        finally:  # the final verdict is on /metrics too, whenever the worker ends
            self.outputs.close()  # on the thread that published: no result comes after it
            if self.scheduler is not None:
                self.metrics.observe_reliability(self.stream.id,
                                                 **self.reliability().gauges())

    def _work(self) -> None:
        gauges_due = 0.0
        # One frame at a time, by design: each is stored and published before the next is taken.
        for step in detection_steps(self._frames(), self._due, self._detect):
            self._process(self.processor, step)
            now = time.monotonic()
            if now >= gauges_due:
                gauges_due = now + GAUGE_PERIOD_S
                self.metrics.observe_reliability(self.stream.id, **self.reliability().gauges())

    def _frames(self) -> Iterator[Frame]:
        """The frames to process, in order, until the runner stops, the source ends or the
        stream fails; when one comes out, the processor and scheduler for its size are set."""
        max_fps = self.source.settings.max_fps
        next_due = 0.0  # capture time (time.time()) from which the next frame is processed
        while not self._stop.is_set():
            frame = self.source.next_frame(timeout=0.5)
            self._sync_source_metrics()
            if frame is None:
                if self.source.state in (StreamState.STOPPED, StreamState.FAILED):
                    return
                continue
            if max_fps is not None:
                # Frames captured before their slot are dropped (and counted): the stream
                # takes no more of the model than its cap. The first frame of each slot is
                # processed as it arrives, not when a timer fires: the cap adds no latency.
                due, next_due = next_slot(frame.wall_time, next_due, 1 / max_fps)
                if not due:
                    self.source.skip()
                    continue
            if self._processor_for(frame.size) is None:
                return  # a configuration error: this stream stops, the others go on
            yield frame

    def _due(self, frame: Frame) -> bool:
        """Whether the model sees this frame: the cadence scheduler's word."""
        return self.scheduler.due(frame)

    def _detect(self, picture: Picture) -> Detections:
        """The current processor's detections (its plan's crop and input size)."""
        return self.processor.detect(picture)

    def _process(self, processor: StreamProcessor, step: DetectedFrame) -> None:
        """One frame after the detection step: tracked (or predicted), stored, published."""
        scheduler, frame = self.scheduler, step.frame
        t1 = time.perf_counter()
        result = processor.update(frame, step.detections, step.detect_s)
        self._publish(result)  # stored first, then the metrics and the service's sinks
        scheduler.record(frame, step.detected, step.detect_s, time.perf_counter() - t1,
                         self.source.backlog)


def next_slot(captured: float, next_due: float, period: float) -> tuple[bool, float]:
    """(process this frame?, the next slot's start) for a frame captured at `captured`.
    A frame more than a period before its slot means the wall clock stepped back (NTP): it is
    processed and the slots restart from it, so a clock change never stalls the stream."""
    if next_due - period <= captured < next_due:
        return False, next_due
    if captured < next_due or captured >= next_due + period:  # clock stepped back, or a stall
        return True, captured + period
    return True, next_due + period  # keeps the cadence of the slots


def lane_snapshot(processor: StreamProcessor | None,
                  result: FrameResult | None) -> list[dict[str, Any]]:
    """The lanes' live state after `result`, with the processor's all-time counts per class."""
    if result is None or processor is None:
        return []
    book = processor.analytics.counts
    lanes = []
    for lane in result.analytics.lanes:
        by_class: dict[str, dict[str, int]] = {}
        for key, n in book.cumulative.items():
            if key.lane == lane.name:
                by_class.setdefault(key.class_name, {})[key.direction] = n
        lanes.append({"name": lane.name, "occupancy": lane.occupancy, "queue": lane.queue,
                      "congested": lane.congested, "max_dwell_s": round(lane.max_dwell_s, 2),
                      "counts": lane.counts, "by_class": by_class})
    return lanes


def movement_snapshot(processor: StreamProcessor | None) -> list[dict[str, Any]]:
    """Cumulative turning movements per movement and class."""
    if processor is None or processor.analytics.turning is None:
        return []
    a = processor.analytics
    return [{"movement": k.lane, "from": a.movement_pairs[k.lane][0],
             "to": a.movement_pairs[k.lane][1], "class": k.class_name, "count": n}
            for k, n in sorted(a.movement_counts.cumulative.items())]
