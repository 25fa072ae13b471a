"""Cluster mode, the worker's side: each stream's pipeline runs as a Ray actor (`StreamActor`);
`lanewatch serve` is the gateway (remote.py: `RemoteStream`, `connect`).

    gateway (lanewatch serve)                         Ray actor per stream (any node)
    HTTP API, /ws, /metrics, dashboard                StreamActor: a StreamRunner with its own
    RemoteStream per stream: a thread long-polls  <-  detector, source and store connection;
      its actor, publishes each result exactly as    results kept in a bounded buffer, the
      StreamRunner does in single-process mode       newest frame's image only when asked for

Crossings are committed to the shared PostgreSQL store by the actor before the gateway sees
them. An actor that dies (its process killed, its node lost) is restarted by Ray
(`cluster.max_restarts`); the new incarnation resumes its counts from the store and the
gateway's poller reconnects, marking the stream `reconnecting` meanwhile. Every batch carries
the stream's all-time counts as of its last result, so the gateway's counters catch up with
crossings a dead incarnation committed but never delivered, and never run backwards.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import socket
import threading
import uuid
from typing import Any

import numpy as np

from lanewatch.sinks.frames import Picture
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.store import CountStore
from lanewatch.stream.config.schema import Config, StreamConfig
from lanewatch.stream.pipeline.runner import (
    StreamRunner,
    lane_snapshot,
    movement_snapshot,
)
from lanewatch.trackers.analytics.counts import CountKey
from lanewatch.trackers.analytics.lanes import Lane

log = logging.getLogger(__name__)

BUFFER = 600  # results an actor keeps for the gateway (20 s of a 30 f/s camera)
POLL_WAIT_S = 0.5  # an actor answers a poll at its next result, or after this long
MIN_POLL_PERIOD_S = 0.02  # results of a fast stream travel in small batches, not one by one
CALL_TIMEOUT_S = 30.0
_NO_PICTURE = Picture(bgr=np.zeros((0, 0, 3), np.uint8))


@dataclasses.dataclass(frozen=True)
class StreamBatch:
    """An actor's answer to a poll: the results since the gateway's last one, and its state."""

    incarnation: str  # changes when Ray restarts the actor
    last_seq: int  # sequence number of the last result (0: none yet)
    results: tuple[FrameResult, ...]  # images dropped, except the last one's when asked for
    missed: int  # results that left the buffer before the gateway collected them
    cumulative: dict[CountKey, int]  # all-time lane counts as of the last result
    movements: dict[CountKey, int]  # all-time turning movements as of the last result
    status: dict[str, Any]
    lane_snapshot: list[dict[str, Any]]
    movement_snapshot: list[dict[str, Any]]
    frame_size: tuple[int, int] | None
    lanes: tuple[Lane, ...] | None  # sent when the gateway has none from this incarnation
    worker: dict[str, Any]  # node and process of the actor


@dataclasses.dataclass(frozen=True)
class _Buffered:
    seq: int
    result: FrameResult  # without its image and masks
    cumulative: dict[CountKey, int]
    movements: dict[CountKey, int]


def _light(result: FrameResult) -> FrameResult:
    """A result without the pixels (image, masks): what the gateway needs for everything but
    drawing, a few kilobytes instead of megabytes."""
    return dataclasses.replace(
        result, frame=dataclasses.replace(result.frame, picture=_NO_PICTURE),
        detections=dataclasses.replace(result.detections, masks=None),
        tracks=dataclasses.replace(result.tracks, masks=None))


class StreamActor:
    """One stream's pipeline inside a Ray worker process (wrapped by `ray.remote` at start).

    Results wait in a bounded buffer until the gateway acknowledges them (the `after` of its
    next poll), without their pixels; only the newest result keeps its image, for the video."""

    def __init__(self, stream: StreamConfig, config: Config):
        from lanewatch.stream.detect.factory import create_detector

        self.incarnation = uuid.uuid4().hex
        self.store = CountStore(config.store.target, config.counting.interval_s)
        self._cond = threading.Condition()
        self._buffer: collections.deque[_Buffered] = collections.deque(maxlen=BUFFER)
        self._seq = 0
        self._newest: tuple[int, FrameResult] | None = None  # with its image
        self.runner = StreamRunner(stream, config, create_detector(config.model, 1),
                                   ServiceMetrics(), self.store, on_result=self._keep,
                                   source_settings=stream.source_options)
        self.runner.start()
        log.warning("stream %s: actor %s started (pid %d)", stream.id, self.incarnation[:8],
                    os.getpid())

    def _keep(self, result: FrameResult) -> None:
        """Runs on the stream's thread after each frame (its crossings are stored)."""
        analytics = self.runner.processor.analytics
        light = _light(result)
        cumulative = dict(analytics.counts.cumulative)
        movements = dict(analytics.movement_counts.cumulative)
        with self._cond:
            self._seq += 1
            self._buffer.append(_Buffered(self._seq, light, cumulative, movements))
            self._newest = (self._seq, result)
            self._cond.notify_all()

    def poll(self, incarnation: str | None, after: int, want_image: bool,
             wait_s: float = POLL_WAIT_S, want_lanes: bool = False) -> StreamBatch:
        """Results after `after` (of `incarnation`; all buffered ones after a restart), waiting
        up to `wait_s` for the first. Results up to `after` were received: they are dropped.
        The lanes come with the first answer to a new gateway or incarnation, and with every
        answer while the gateway still has none (the first polls may come before the first
        frame, when the stream's lanes in pixels are not known yet)."""
        if incarnation != self.incarnation:
            after = 0
        with self._cond:
            while self._buffer and self._buffer[0].seq <= after:
                self._buffer.popleft()
            self._cond.wait_for(lambda: self._seq > after, timeout=wait_s)
            entries = [e for e in self._buffer if e.seq > after]
            newest, seq = self._newest, self._seq
        missed = entries[0].seq - after - 1 if entries else 0
        results = tuple(e.result for e in entries)
        if want_image and entries and newest is not None and newest[0] == entries[-1].seq:
            results = (*results[:-1], newest[1])
        last = entries[-1] if entries else None
        runner = self.runner
        return StreamBatch(
            incarnation=self.incarnation, last_seq=last.seq if last else max(after, seq),
            results=results, missed=missed,
            cumulative=last.cumulative if last else {}, movements=last.movements if last else {},
            status=runner.status(),
            lane_snapshot=lane_snapshot(runner.processor, runner.last_result),
            movement_snapshot=movement_snapshot(runner.processor),
            frame_size=runner.frame_size,
            lanes=runner.lanes if want_lanes or incarnation != self.incarnation else None,
            worker={"node": socket.gethostname(), "pid": os.getpid(),
                    "actor": self.incarnation[:8]})

    def latest_image(self) -> np.ndarray | None:
        return self.runner.latest_image()

    def pid(self) -> int:
        return os.getpid()

    def stop(self, timeout: float = 5.0) -> None:
        self.runner.stop(timeout)
        self.store.close()
