"""Per-stream processing: detect -> track -> lane analytics, one frame at a time.

`StreamProcessor` owns the per-stream state (tracker ids, lane counts) and borrows a detector,
which may be shared by several streams. It is synchronous; the offline review and the live
service decide where it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lanewatch.stream.config import Config, StreamConfig
from lanewatch.stream.detector import Detector
from lanewatch.stream.errors import ConfigError
from lanewatch.stream.frames import Frame
from lanewatch.trackers.analytics import AnalyticsUpdate, LaneAnalytics
from lanewatch.trackers.bytetrack import ByteTrack
from lanewatch.trackers.detections import Detections, suppress_contained
from lanewatch.trackers.lanes import Lane, resolve_lanes


@dataclass(frozen=True)
class StageTimings:
    """Seconds spent in each stage for one frame."""

    detect_s: float
    track_s: float
    analytics_s: float


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one frame, handed to the sinks."""

    frame: Frame
    detections: Detections  # all detector output
    tracks: Detections  # rows of `detections` that belong to confirmed tracks, with ids
    analytics: AnalyticsUpdate
    timings: StageTimings


class StreamProcessor:
    """Detection, tracking and lane analytics for one stream."""

    def __init__(
        self,
        stream: StreamConfig,
        config: Config,
        detector: Detector,
        frame_size: tuple[int, int],
        fps: float,
        origin_s: float = 0.0,
    ):
        self.stream = stream
        self.frame_size = frame_size
        self.detector = detector
        self._suppress_contained = config.model.suppress_contained
        try:
            self.lanes: list[Lane] = resolve_lanes(stream.lanes, stream.coordinates, *frame_size)
        except ValueError as err:
            raise ConfigError(f"streams({stream.id}).lanes: {err}") from None
        self.tracker = ByteTrack(config.tracker, frame_rate=fps)
        self.analytics = LaneAnalytics(stream.id, self.lanes, config.counting, frame_size,
                                       origin_s=origin_s)

    def process(self, frame: Frame, detections: Detections | None = None) -> FrameResult:
        """Run every stage on one frame (detection too, unless its `detections` are given:
        a pipelined detector has already run)."""
        t0 = time.perf_counter()
        if detections is None:
            detections = self.detector.detect(frame.image)
        if self._suppress_contained is not None:
            detections = suppress_contained(detections, self._suppress_contained)
        t1 = time.perf_counter()
        tracked = self.tracker.update(detections, frame.pts_s)
        t2 = time.perf_counter()
        update = self.analytics.update(tracked.detections, frame.pts_s, frame.index,
                                       tracked.confirmed)
        t3 = time.perf_counter()
        timings = StageTimings(t1 - t0, t2 - t1, t3 - t2)
        return FrameResult(frame, detections, tracked.confirmed_detections, update, timings)
