"""Live sources for `lanewatch serve`: RTSP cameras, HTTP/HLS, webcams, and files paced in real
time so that a file behaves like a camera.

Each source reads in its own thread into a short queue bounded in seconds (`max_backlog_s`):
the pipeline takes every frame in order, so that a detector slower than the camera is met by
an evenly spaced detection cadence (stream/pipeline/cadence.py) rather than by frames lost
in irregular bursts. Only when the pipeline falls more than `max_backlog_s` behind is the
oldest waiting frame dropped, and counted. Failures never end the thread: the source reconnects with
exponential back-off and jitter (started over after a healthy session: `ReconnectBackoff`), a
watchdog reconnects a stream that stops delivering frames, and the state machine (starting,
running, reconnecting, stopped, failed) is visible to the service. Credentials in URLs are
never logged (sinks/redaction.py).
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Literal

import av
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanewatch.sinks.frames import Frame, Picture
from lanewatch.sinks.redaction import password_of, redact  # redact: also imported from here

log = logging.getLogger(__name__)

STARTUP_BACKLOG_S = 10.0  # frames kept while the pipeline starts (compiling the model); 1.4 MB
# each at 720p: a bound on memory too


class StreamState(str, Enum):
    """Lifecycle of a live source."""

    STARTING = "starting"  # opening for the first time
    RUNNING = "running"  # frames are arriving
    RECONNECTING = "reconnecting"  # lost (error, stall, end of a non-looping stream): retrying
    STOPPED = "stopped"  # stopped on request, or a file that ended without loop
    FAILED = "failed"  # gave up after max_attempts failures in a row


class SourceSettings(BaseModel):
    """How a live source is opened and kept alive (`source_options:` of a stream)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    open_timeout_s: float = Field(10.0, gt=0, description="give up opening after this long")
    read_timeout_s: float = Field(5.0, gt=0, description="a read blocking this long fails")
    stall_timeout_s: float = Field(
        10.0, gt=0, description="watchdog: no decoded frame for this long means reconnect")
    reconnect_initial_s: float = Field(0.5, gt=0, description="first back-off delay")
    reconnect_max_s: float = Field(
        30.0, gt=0, description="longest back-off delay; a connection that delivered frames "
        "for this long starts the back-off over")
    max_attempts: int | None = Field(
        None, ge=1, description="consecutive failed attempts before 'failed' (null: forever)")
    realtime: bool | None = Field(
        None, description="pace files at their frame rate (default: on for files in serve)")
    loop: bool = Field(False, description="restart a file at its end")
    max_fps: float | None = Field(
        None, gt=0, description="process at most this many frames per second (serve): the "
        "first frame of each 1/max_fps slot as it arrives, the others dropped and counted. "
        "Caps what one camera takes of a shared box")
    max_backlog_s: float = Field(
        2.0, gt=0, le=30, description="frames waiting for the pipeline, in seconds of video: "
        "absorbs the time of one detection and short load peaks; beyond it the oldest frame "
        "is dropped (counted, and reported as a gap in the stream's counting reliability)")

    @model_validator(mode="after")
    def _backoff_order(self) -> SourceSettings:
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError("reconnect_initial_s must not exceed reconnect_max_s")
        return self


def is_device(url: str) -> bool:
    """A V4L2 capture device such as /dev/video0 (or v4l2:///dev/video0)."""
    return url.startswith(("/dev/video", "v4l2://"))


def is_file_source(url: str) -> bool:
    """A local video file (or file:// URL) rather than a network stream or device."""
    return not is_device(url) and ("://" not in url or url.startswith("file://"))


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential back-off with full jitter: uniform in [d/2, d], d = initial * 2^attempt."""
    ceiling = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(ceiling / 2, ceiling)


class ReconnectBackoff:
    """The reconnect delays of one source: exponential with jitter over the failures in a row
    (`backoff_delay`), started over after a healthy session.

    A session (one connection) is healthy when it delivered frames for at least
    `reconnect_max_s` (from its first frame to its last): a camera that works for minutes
    between outages is retried at once after each outage, while one that breaks again within
    seconds of every reconnection keeps backing off up to the cap. The count also decides
    when to give up (`max_attempts`), so a healthy session resets that too.
    """

    def __init__(self, settings: SourceSettings, rng: random.Random):
        self.settings = settings
        self.rng = rng
        self.failures = 0  # in a row, since the last healthy session

    def reset(self) -> None:
        """Start over (a file that loops, a stop on request)."""
        self.failures = 0

    def session_ended(self, delivered_s: float) -> None:
        """A connection ended after delivering frames for `delivered_s` seconds."""
        if delivered_s >= self.settings.reconnect_max_s:
            self.failures = 0

    def failed(self) -> float:
        """Count a failure; the delay before the next attempt."""
        delay = backoff_delay(self.failures, self.settings.reconnect_initial_s,
                              self.settings.reconnect_max_s, self.rng)
        self.failures += 1
        return delay


class LiveSource:
    """Reader of one stream in its own thread; the pipeline takes its frames in order from a
    queue bounded by `max_backlog_s` (the oldest frame is dropped when it is full)."""

    def __init__(self, stream_id: str, url: str, settings: SourceSettings | None = None,
                 on_state: Callable[[str, StreamState], None] | None = None,
                 seed: int | None = None):
        self.stream_id = stream_id
        self.url = url
        self.settings = settings or SourceSettings()
        self._on_state = on_state
        self._backoff = ReconnectBackoff(self.settings, random.Random(seed))
        self._session: tuple[float, float] | None = None  # this connection's first, last frame
        self._file = is_file_source(url)
        realtime = self.settings.realtime
        self._realtime = self._file if realtime is None else realtime
        self._lock = threading.Condition()
        self._waiting: collections.deque[Frame] = collections.deque()
        self._limit: int | None = None  # frames the queue may hold; None: starting
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = StreamState.STARTING
        self.reconnects = 0  # successful or not: every attempt after the first
        self.frames_received = 0
        self.frames_dropped = 0  # the queue was full, or the pipeline skipped it (max_fps)
        self.last_error: str | None = None
        self.frame_size: tuple[int, int] | None = None
        self.fps: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LiveSource:
        """Start the reader thread (returns self)."""
        self._thread = threading.Thread(target=self._run, name=f"source-{self.stream_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading and wait for the thread (bounded by `timeout`)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(StreamState.STOPPED)

    @property
    def reading(self) -> bool:
        """Whether the reader thread is running (False before `start` and once it ended,
        e.g. after a `stop` whose join was not cut short by its timeout)."""
        return self._thread is not None and self._thread.is_alive()

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame not yet taken, waiting up to `timeout` seconds for one. Frames
        still queued when a file ends are returned; None once stopped, or on time-out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._waiting:
                if self._stop.is_set() or self.state in (StreamState.STOPPED,
                                                         StreamState.FAILED):
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(remaining if remaining is not None else 0.5)
            if self._stop.is_set():
                return None
            frame = self._waiting.popleft()
            if self._limit is not None:  # a start-up queue drains: its extra room goes too
                self._limit = min(self._limit, len(self._waiting)
                                  + self._frames_for(self.settings.max_backlog_s))
            return frame

    @property
    def backlog(self) -> int:
        """Frames decoded and waiting for the pipeline."""
        return len(self._waiting)

    def capacity(self) -> int:
        """How many frames the queue holds now: `max_backlog_s` of video (at least two);
        more while the pipeline starts and while it drains what queued meanwhile."""
        if self._limit is None:  # starting: STARTUP_BACKLOG_S
            return self._frames_for(STARTUP_BACKLOG_S)
        return self._limit

    def _frames_for(self, seconds: float) -> int:
        return max(2, math.ceil(seconds * (self.fps or 30.0)))

    def pipeline_ready(self) -> None:
        """The pipeline has done its start-up work (model compiled for the frame size).
        Until then the queue holds STARTUP_BACKLOG_S, so that the first vehicles are not lost
        to a slow start on a busy box; what queued is drained at the pipeline's cadence, the
        queue never more than `max_backlog_s` above its shortest length since then."""
        with self._lock:
            if self._limit is None:
                self._limit = len(self._waiting) + self._frames_for(self.settings.max_backlog_s)

    def skip(self) -> None:
        """The pipeline took a frame but leaves it unprocessed (its max_fps)."""
        with self._lock:
            self.frames_dropped += 1

    # -- reader thread -----------------------------------------------------------------------
    def _set_state(self, state: StreamState) -> None:
        if state is self.state:
            return
        self.state = state
        log.info("stream %s: %s", self.stream_id, state.value)
        if self._on_state is not None:
            try:
                self._on_state(self.stream_id, state)
            except Exception:  # a listener's bug must not kill the source
                log.exception("stream %s: state listener failed", self.stream_id)
        with self._lock:
            self._lock.notify_all()

    def _open(self) -> av.container.InputContainer:
        s = self.settings
        options = {}
        if self.url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = s.rtsp_transport
        target = self.url.removeprefix("file://").removeprefix("v4l2://")
        if self._file and not Path(target).exists():
            raise FileNotFoundError(f"file not found: {target}")
        return av.open(target, format="v4l2" if is_device(self.url) else None, options=options,
                       timeout=(s.open_timeout_s, s.read_timeout_s))

    def _run(self) -> None:
        index = 0  # frame index keeps increasing across reconnects
        while not self._stop.is_set():
            try:
                container = self._open()
            except Exception as err:  # noqa: BLE001 - any failure to open means retry
                if not self._failed(f"cannot open: {_describe(err)}"):
                    return
                continue
            self._session = None
            reason = None  # why this connection ended, if it failed
            try:
                index, ended = self._read(container, index)
                if ended and self._file and not self.settings.loop:
                    self._set_state(StreamState.STOPPED)
                    return
                if ended and not self._file:
                    reason = "stream ended"
            except Exception as err:  # noqa: BLE001 - read errors, stalls: reconnect
                reason = _describe(err)
            finally:
                try:
                    container.close()
                except Exception:  # already broken: nothing left to release
                    pass
            if reason is None:  # a looping file restarts, or a stop was requested
                self._backoff.reset()
                continue
            first, last = self._session or (0.0, 0.0)
            self._backoff.session_ended(last - first)
            if not self._failed(reason):
                return

    def _read(self, container, index: int) -> tuple[int, bool]:
        """Decode until the stream ends (returns True) or stop is requested (False)."""
        stream = container.streams.video[0]
        # Slice threads only: FFmpeg's frame threading holds back a frame per extra thread,
        # latency a live stream does not want (and it costs more CPU per frame).
        stream.thread_type = "SLICE"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps
        first_pts = None
        started = time.monotonic()
        anchor = time.time()  # wall time of this connection's first frame
        last_frame_at = time.monotonic()
        for packet in container.demux(stream):
            if self._stop.is_set():
                return index, False
            if time.monotonic() - last_frame_at > self.settings.stall_timeout_s:
                raise TimeoutError(f"no frame for {self.settings.stall_timeout_s:g} s (stalled)")
            for vf in packet.decode():
                pts = float(vf.time) if vf.time is not None else index / (self.fps or 30)
                if first_pts is None:
                    first_pts = pts
                if self._realtime:  # a file behaves like a camera: no faster than real time
                    wait = (pts - first_pts) - (time.monotonic() - started)
                    if wait > 0 and self._stop.wait(wait):
                        return index, False
                picture = Picture.from_video_frame(vf)  # converted to BGR only if drawn
                # Presentation time on the stream's own clock, anchored to the wall clock at
                # (re)connection: the tracker sees the real spacing of frames even when they are
                # decoded in bursts, and intervals and events still carry wall-clock times.
                frame = Frame(self.stream_id, index, anchor + (pts - first_pts), time.time(),
                              picture)
                self._publish(frame)
                index += 1
                last_frame_at = time.monotonic()
                if self.state is not StreamState.RUNNING:
                    self.frame_size = picture.size
                    self._set_state(StreamState.RUNNING)
        return index, True

    def _publish(self, frame: Frame) -> None:
        now = time.monotonic()
        self._session = (self._session[0] if self._session else now, now)
        with self._lock:
            if len(self._waiting) >= self.capacity():
                self._waiting.popleft()  # the pipeline is max_backlog_s behind
                self.frames_dropped += 1
            self._waiting.append(frame)
            self.frames_received += 1
            self._lock.notify_all()

    def _failed(self, reason: str) -> bool:
        """Record a failure and sleep the back-off; False to give up (max_attempts)."""
        # FFmpeg errors may quote the URL, or a piece of it
        reason = reason.replace(self.url, redact(self.url))
        password = password_of(self.url)
        if password:
            reason = reason.replace(password, "***")
        self.last_error = reason
        delay = self._backoff.failed()
        failures = self._backoff.failures
        limit = self.settings.max_attempts
        if limit is not None and failures >= limit:
            log.error("stream %s (%s): %s; giving up after %d attempts", self.stream_id,
                      redact(self.url), reason, failures)
            self._set_state(StreamState.FAILED)
            return False
        log.warning("stream %s (%s): %s; reconnecting in %.1f s", self.stream_id,
                    redact(self.url), reason, delay)
        self._set_state(StreamState.RECONNECTING)
        self.reconnects += 1
        self._stop.wait(delay)
        return True


def _describe(err: Exception) -> str:
    """Short one-line description of an error (FFmpeg errors carry their strerror)."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text.splitlines()[0]
