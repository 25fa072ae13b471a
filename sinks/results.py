"""The per-frame result: what the pipeline hands to every sink (reports, annotated video, store,
metrics, WebSocket hub, live video), and how long each stage took on that frame.

It lives with the sinks, the lowest layer that reads it, so that sinks never import the
pipeline that produces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanewatch.sinks.frames import Frame
from lanewatch.trackers.analytics.lane_analytics import AnalyticsUpdate
from lanewatch.trackers.detections import Detections


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
    detections: Detections  # all detector output (the predicted tracks on skipped frames)
    tracks: Detections  # rows of `detections` that belong to confirmed tracks, with ids
    analytics: AnalyticsUpdate
    timings: StageTimings
    detected: bool = True  # False: the detector skipped this frame, `tracks` are predicted
