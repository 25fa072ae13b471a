"""Which live frames go to the model, and whether the stream's counts can be trusted.

A live stream takes every frame in order (stream/sources/live.py). When the box cannot run the model
on all of them, `CadenceScheduler` sends it every Nth frame, evenly spaced, with N (the
*cadence*) chosen by the process's `CapacityGovernor` (stream/pipeline/governor.py); the tracker
predicts the frames between, which keep their own timestamps. Counts stay exact while the time
between two detections stays under the stream's exactness limit (`detection.max_gap_s`; see
docs/performance.md for how it was established): `GapMonitor` watches that gap over the last
minute, whatever caused it (a high cadence, frames dropped from a full queue, a stalled
detector), and reports a `Reliability` the API, the WebSocket stats, the dashboard and
Prometheus all show. An operator must never read a silently wrong count.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from lanewatch.sinks.frames import Frame
from lanewatch.stream.config.schema import DetectionSettings
from lanewatch.stream.pipeline.governor import CapacityGovernor, StreamLoad

RELIABILITY_WINDOW_S = 60.0  # the gap and the processed fraction are over the last minute


@dataclass(frozen=True)
class Reliability:
    """Whether a live stream's counts are exact now, and the figures behind the verdict."""

    reliable: bool
    reason: str | None  # why not (None when reliable)
    cadence: int  # the model runs on every Nth frame now
    processed_fraction: float  # frames the model saw / frames counted, over the window
    largest_gap_frames: int  # frame intervals between two detections, largest in the window
    largest_gap_s: float  # the same in seconds of video
    limit_s: float  # the stream's exactness limit (detection.max_gap_s)
    frames_lost: int  # frames the pipeline never saw in the window (the queue was full)

    def as_status(self) -> dict:
        """The fields of the API's stream status and the WebSocket stats."""
        return {"counting_reliable": self.reliable, "counting_reason": self.reason,
                "cadence": self.cadence, "processed_fraction": round(self.processed_fraction, 4),
                "largest_gap_frames": self.largest_gap_frames,
                "largest_gap_s": round(self.largest_gap_s, 4), "gap_limit_s": self.limit_s,
                "frames_lost": self.frames_lost}

    def gauges(self) -> dict:
        """Keyword arguments of `ServiceMetrics.observe_reliability`."""
        return {"reliable": self.reliable, "cadence": self.cadence,
                "processed_fraction": self.processed_fraction,
                "largest_gap_s": self.largest_gap_s, "limit_s": self.limit_s}


class GapMonitor:
    """The largest gap between detections, and the share of frames detected, over a window
    of video time. Frame indices and timestamps come from the source, so frames dropped
    before the pipeline saw them widen the gap too."""

    def __init__(self, limit_s: float, fps: float, window_s: float = RELIABILITY_WINDOW_S):
        self.limit_s = limit_s
        self.fps = fps
        self.window_s = window_s
        # (pts_s, index) of each detected frame in the window, and of every frame, counted
        self._detections: collections.deque[tuple[float, int]] = collections.deque()
        self._frames: collections.deque[tuple[float, int]] = collections.deque()
        self._last: tuple[float, int] | None = None  # the newest frame seen

    def record(self, frame: Frame, detected: bool) -> None:
        point = (frame.pts_s, frame.index)
        self._frames.append(point)
        if detected:
            self._detections.append(point)
        self._last = point
        horizon = frame.pts_s - self.window_s
        while self._frames and self._frames[0][0] < horizon:
            self._frames.popleft()
        # Keep the detection just before the window: the gap into the window is in it.
        while len(self._detections) > 1 and self._detections[1][0] < horizon:
            self._detections.popleft()

    def reliability(self, cadence: int) -> Reliability:
        """The verdict over the window, for a stream now detecting every `cadence`th frame."""
        gap_s, gap_frames = 0.0, 0
        points = list(self._detections)
        if self._last is not None and points and self._last != points[-1]:
            points.append(self._last)  # the open gap since the last detection counts too
        for (pts_a, index_a), (pts_b, index_b) in zip(points, points[1:]):
            frames, seconds = index_b - index_a, pts_b - pts_a
            nominal = frames / self.fps
            # Timestamps of a live camera jitter around its rate (a looping file's restart,
            # RTSP arrival): within half a frame, the gap is its frames at the nominal rate;
            # beyond, the camera itself lost frames and the timestamps tell the real gap.
            gap_s = max(gap_s, nominal if abs(seconds - nominal) < 0.5 / self.fps else seconds)
            gap_frames = max(gap_frames, frames)
        frames = len(self._frames)
        detected = sum(1 for pts, _ in self._detections
                       if self._frames and pts >= self._frames[0][0])
        lost = 0
        if frames:
            lost = max(self._frames[-1][1] - self._frames[0][1] + 1 - frames, 0)
        fraction = detected / frames if frames else 1.0
        reliable = gap_s <= self.limit_s + 1e-9
        reason = None
        if not reliable:
            reason = (f"{gap_s:.2f} s ({gap_frames} frames) between two detections in the last "
                      f"{self.window_s:.0f} s is beyond this stream's exactness limit of "
                      f"{self.limit_s:g} s (detection.max_gap_s)")
            if lost:
                reason += (f"; {lost} frames were dropped because the pipeline fell "
                           "max_backlog_s behind")
            else:
                reason += (f"; the model runs on every {ordinal(cadence)} frame: the box "
                           "cannot keep up (fewer streams, a region crop or a smaller imgsz "
                           "help)")
        return Reliability(reliable, reason, cadence, fraction, gap_frames, gap_s,
                           self.limit_s, lost)


class CadenceScheduler:
    """One live stream's detection schedule: every Nth frame, evenly spaced, N from the
    governor. `due` is asked once per frame in order; `record` is told what it cost."""

    def __init__(self, stream_id: str, settings: DetectionSettings, fps: float,
                 governor: CapacityGovernor):
        self.stream_id = stream_id
        self.governor = governor
        self.load: StreamLoad = governor.register(stream_id, fps, settings.every_nth_frame,
                                                  settings.adaptive)
        self.gaps = GapMonitor(settings.max_gap_s, fps)
        self._next_index = 0

    def due(self, frame: Frame) -> bool:
        """Whether the model sees this frame. Detections fall on multiples of the cadence
        (so streams started together detect the same moments and share batches); a frame
        after a dropped due frame is detected instead."""
        if frame.index < self._next_index:
            return False
        cadence = self.load.cadence
        self._next_index = (frame.index // cadence + 1) * cadence
        return True

    def record(self, frame: Frame, detected: bool, detect_s: float, other_s: float,
               backlog: int) -> None:
        """The frame is done: `detect_s` in the model, `other_s` in the rest of the pipeline;
        `backlog` frames wait behind it."""
        self.gaps.record(frame, detected)
        self.governor.report(self.load, detect_s if detected else None, other_s, backlog)

    def reliability(self) -> Reliability:
        return self.gaps.reliability(self.load.cadence)

    def close(self) -> None:
        self.governor.unregister(self.load)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... for messages."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
