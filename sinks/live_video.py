"""Live annotated video for WebSocket viewers, produced only as far as someone watches.

Each stream has a video thread beside its pipeline worker. The worker offers every result
(a pointer swap: the newest result replaces one not yet drawn) and goes back to its frames; the
video thread draws and JPEG-encodes the newest result for each *rendition* that a viewer is
due to receive. A rendition is a width from a fixed ladder, never wider than the frame: a
client asking for at most 700 pixels gets the 640-pixel rendition, so any number of clients
cost at most one encode per ladder step, at the highest rate any of them asked for. Drawing
happens at the rendition's size (the frame is shrunk first), which costs a fraction of
annotating the full frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from lanewatch.sinks.annotate import FrameAnnotator, SpeedMemory
from lanewatch.sinks.results import FrameResult

log = logging.getLogger(__name__)

WIDTH_LADDER = (320, 480, 640, 800, 960, 1280, 1600, 1920, 2560, 3840)
JPEG_QUALITY = 75
MIN_SHED_FPS = 1.0  # live video shed for an overloaded box never goes below this


def rendition_width(max_width: int, frame_width: int) -> int:
    """The ladder width served to a client that accepts at most `max_width` pixels."""
    fitting = [w for w in WIDTH_LADDER if w <= min(max_width, frame_width)]
    return fitting[-1] if fitting else min(max_width, frame_width)


class RateLimiter:
    """Lets events through at most `fps` per second on average, on a schedule rather than by
    "an interval since the last one": against a source whose frame spacing does not divide
    the interval (15 frames/s, 10 asked), the latter would give far fewer (7.5)."""

    _SLACK = 1e-6  # seconds: float rounding of frame times never costs a frame

    def __init__(self) -> None:
        self.next_due = -float("inf")

    def allow(self, now: float, fps: float) -> bool:
        if now + self._SLACK < self.next_due:
            return False
        interval = 1.0 / fps
        # On schedule: the next slot follows this one. Late by more than half an interval
        # (a pause, a slow source): the schedule restarts from now, never bursting to catch up.
        on_schedule = now - self.next_due <= interval / 2
        self.next_due = (self.next_due if on_schedule else now) + interval
        return True


@dataclass(frozen=True)
class EncodedFrame:
    """One annotated JPEG of one rendition, ready to send."""

    stream: str
    rendition: int  # ladder width it was made for (clients are matched on this)
    source_width: int  # width of the camera frame
    header: dict
    jpeg: bytes


class _StreamVideo:
    """The video thread of one stream."""

    def __init__(self, stream: str, feed: LiveVideo):
        self.stream = stream
        self.feed = feed
        self.pending: FrameResult | None = None
        self.wakeup = threading.Condition()
        self.limiters: dict[int, RateLimiter] = {}
        self.annotators: dict[tuple[int, tuple[int, int]], FrameAnnotator] = {}
        # Speeds of every result's crossings, drawn or not: a crossing in a result replaced
        # before it was drawn still labels its vehicle (output.speed_labels).
        self.speeds = SpeedMemory()
        self.thread = threading.Thread(target=self._run, name=f"video-{stream}", daemon=True)
        self.frames_encoded = 0
        self.stopping = threading.Event()  # this stream only (removed at run time)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        with self.wakeup:
            self.wakeup.notify()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _stopped(self) -> bool:
        return self.stopping.is_set() or self.feed.stopping.is_set()

    def offer(self, result: FrameResult) -> None:
        with self.wakeup:
            if result.analytics.crossings:
                self.speeds.record(result.analytics.crossings)
            self.pending = result  # an older, undrawn result is simply replaced
            self.wakeup.notify()

    def _run(self) -> None:
        while not self._stopped():
            with self.wakeup:
                while self.pending is None and not self._stopped():
                    self.wakeup.wait(0.5)
                result, self.pending = self.pending, None
            if result is None:
                continue
            try:
                self._draw(result)
            except Exception:  # noqa: BLE001 - a drawing failure loses one frame, nothing else
                log.exception("stream %s: cannot draw a video frame", self.stream)

    def _draw(self, result: FrameResult) -> None:
        feed = self.feed
        wanted = feed.requests(self.stream)  # [(max_fps, max_width)] of watching clients
        if not wanted:
            return
        frame_width = result.frame.size[0]
        rates: dict[int, float] = {}
        for fps, width in wanted:
            rung = rendition_width(width, frame_width)
            rates[rung] = max(rates.get(rung, 0.0), fps)
        now = time.monotonic()
        scale = feed.rate_scale()
        for rung, fps in rates.items():
            fps = max(fps * scale, min(fps, MIN_SHED_FPS))
            if not self.limiters.setdefault(rung, RateLimiter()).allow(now, fps):
                continue
            image = self._annotator(rung, result).annotate(result)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                continue
            header = {"stream": self.stream, "frame": result.frame.index,
                      "ts": result.frame.wall_time, "width": image.shape[1],
                      "height": image.shape[0]}
            self.frames_encoded += 1
            feed.publish(EncodedFrame(self.stream, rung, frame_width, header, buf.tobytes()))

    def _annotator(self, rung: int, result: FrameResult) -> FrameAnnotator:
        key = (rung, result.frame.size)
        if key not in self.annotators:
            annotator = self.feed.make_annotator(self.stream, result.frame.size, rung)
            annotator.share_speeds(self.speeds)
            self.annotators[key] = annotator
        return self.annotators[key]


class LiveVideo:
    """Annotated JPEG renditions of every stream, made on demand off the pipeline threads; a
    sink (sinks/sink.py) of every stream's results.

    Args:
        requests: stream id -> [(max_fps, max_width)] of the clients watching its video now.
        publish: hands an `EncodedFrame` over (called on the video threads).
        make_annotator: (stream id, frame size, output width) -> a new `FrameAnnotator`.
        rate_scale: the share of the clients' frame rate drawn now (1.0; lower when the box
            is over capacity: live video is the first work shed, never below 1 frame/s).
    """

    name = "live_video"

    def __init__(self, stream_ids: list[str],
                 requests: Callable[[str], list[tuple[float, int]]],
                 publish: Callable[[EncodedFrame], None],
                 make_annotator: Callable[[str, tuple[int, int], int], FrameAnnotator],
                 rate_scale: Callable[[], float] | None = None):
        self.requests = requests
        self.rate_scale = rate_scale or (lambda: 1.0)
        self.publish = publish
        self.make_annotator = make_annotator
        self.stopping = threading.Event()
        self._streams = {sid: _StreamVideo(sid, self) for sid in stream_ids}
        self._started = False

    def start(self) -> LiveVideo:
        self._started = True
        for video in list(self._streams.values()):
            video.thread.start()
        return self

    def add(self, stream: str) -> None:
        """A stream added at run time gets its video thread."""
        video = self._streams[stream] = _StreamVideo(stream, self)
        if self._started:
            video.thread.start()

    def remove(self, stream: str, timeout: float = 5.0) -> None:
        """A stream removed at run time: its video thread ends."""
        video = self._streams.pop(stream, None)
        if video is not None:
            video.stop(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for video in list(self._streams.values()):
            video.stop(timeout)

    def on_result(self, result: FrameResult) -> None:
        """Called by a stream's worker with each result; returns at once. A result without
        pixels (a cluster actor sends its image only while someone watches) is skipped."""
        video = self._streams.get(result.frame.stream_id)
        if (video is not None and result.frame.size != (0, 0)
                and self.requests(result.frame.stream_id)):
            video.offer(result)

    def close(self) -> None:
        """Nothing: the video threads outlive each run of a stream (`remove`, `stop`)."""

    def frames_encoded(self, stream: str) -> int:
        return self._streams[stream].frames_encoded
