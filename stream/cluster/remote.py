"""Cluster mode, the gateway's side: `RemoteStream` long-polls one stream's actor and publishes
its results as `StreamRunner` does in one process; `connect` joins the Ray cluster. The
design is described in actor.py."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np

from lanewatch.sinks.errors import ConfigError
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.sink import Sink
from lanewatch.stream.cluster.actor import (
    CALL_TIMEOUT_S,
    MIN_POLL_PERIOD_S,
    StreamActor,
    StreamBatch,
)
from lanewatch.stream.config.schema import ClusterConfig, Config, StreamConfig
from lanewatch.stream.pipeline.runner import (
    ResultPublisher,
)
from lanewatch.stream.sources.live import StreamState, redact
from lanewatch.trackers.analytics.counts import CountKey
from lanewatch.trackers.analytics.lanes import Lane

log = logging.getLogger(__name__)


def _failed_to_start(err: Exception) -> bool:
    """The actor died in its constructor: dead for good, whatever `max_restarts` says."""
    import ray

    return (isinstance(err, ray.exceptions.ActorDiedError)
            and "error raised in its creation task" in str(err))


def connect(cluster: ClusterConfig) -> None:
    """Join (or start) the Ray cluster, once per process."""
    try:
        import ray
    except ImportError:
        raise ConfigError("cluster.enabled needs Ray: pip install 'lanewatch[cluster]'"
                          ) from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=True,
                 logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = cluster.address or "a local Ray instance"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cluster.address: cannot join {where}: {reason} (start the head "
                          "node with `ray start --head`, or leave cluster.address unset for "
                          "a Ray instance in this process)") from None


class RemoteStream(ResultPublisher):
    """The gateway's side of one stream running as a Ray actor; a `RunningStream`
    (stream/pipeline/running_stream.py), as the local `StreamRunner` is, so the service, the
    API and the dashboard cannot tell them apart."""

    def __init__(self, stream: StreamConfig, config: Config, metrics: ServiceMetrics,
                 on_result: Callable[[FrameResult], None] | None = None,
                 video_fps: Callable[[], float] = lambda: 0.0,
                 sinks: Sequence[Sink] = ()):
        self.stream = stream
        self.config = config
        self.metrics = metrics
        self.video_fps = video_fps  # the highest rate a client watches this stream at (0: none)
        self._image_due = 0.0  # monotonic time the next image is wanted
        self._init_publisher(sinks, on_result)  # no store: the actor stored the crossings
        self.actor: Any = None
        self.batch: StreamBatch | None = None
        self.restarts = 0  # incarnations seen after the first
        self.unreachable: str | None = None  # why the last poll failed
        self.failure: str | None = None  # why the actor could not start (for good)
        self._lanes: tuple[Lane, ...] | None = None
        self._published: Counter[CountKey] = Counter()  # crossing counters as exported
        self._published_moves: Counter[CountKey] = Counter()
        self._seen_reconnects = self._seen_drops = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Create the stream's actor and start polling it; returns at once, with self."""
        import ray

        c = self.config.cluster
        actor_class = ray.remote(StreamActor).options(
            num_cpus=c.num_cpus, num_gpus=c.num_gpus, max_restarts=c.max_restarts,
            max_concurrency=4, name=f"lanewatch-{self.stream.id}-{uuid.uuid4().hex[:6]}")
        self.actor = actor_class.remote(self.stream, self.config)
        self._set_state(StreamState.STARTING)
        self._thread = threading.Thread(target=self._run, name=f"gateway-{self.stream.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the actor's stream (its crossings are stored), then the actor and the poller,
        waiting `timeout` s at most in all; True when the poller has ended. The actor is
        killed whether or not its stream stopped in time: it counts nothing more."""
        import ray

        deadline = time.monotonic() + timeout
        self._stop.set()
        if self.actor is not None:
            if self.failure is None:  # a failed actor has nothing to stop
                try:  # the last quarter is left for the poller to end
                    ray.get(self.actor.stop.remote(timeout / 2), timeout=timeout * 0.75)
                except ray.exceptions.RayError as err:
                    log.warning("stream %s: actor did not stop cleanly: %s", self.stream.id,
                                str(err).strip().splitlines()[0])
            ray.kill(self.actor, no_restart=True)
        if self._thread is not None:  # its poll fails at once now: the actor is gone
            self._thread.join(max(deadline - time.monotonic(), 0.05))
        self._set_state(StreamState.STOPPED)
        return self._thread is None or not self._thread.is_alive()

    # -- the poller --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._poll()
        finally:
            self.outputs.close()  # on the thread that published: no result comes after it

    def _poll(self) -> None:
        import ray

        incarnation, after = None, 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                batch: StreamBatch = ray.get(
                    self.actor.poll.remote(incarnation, after, self._wants_image(started),
                                           want_lanes=self._lanes is None),
                    timeout=CALL_TIMEOUT_S)
            except ray.exceptions.RayError as err:
                if self._stop.is_set():
                    return  # stopped: the actor is gone on purpose
                if _failed_to_start(err):
                    self._fail(err)
                    return
                self._lost(err)
                self._stop.wait(0.5)
                continue
            if batch.incarnation != incarnation:
                if incarnation is not None:
                    self.restarts += 1
                    log.warning("stream %s: actor restarted (%s on %s, pid %s)",
                                self.stream.id, batch.worker["actor"], batch.worker["node"],
                                batch.worker["pid"])
                incarnation, self._seen_reconnects, self._seen_drops = batch.incarnation, 0, 0
                self._lanes = batch.lanes
            self.unreachable = None
            self._apply(batch)
            after = batch.last_seq
            self._stop.wait(max(MIN_POLL_PERIOD_S - (time.monotonic() - started), 0.0))

    def _wants_image(self, now: float) -> bool:
        """Images travel only while someone watches, at most at the fastest client's rate."""
        fps = self.video_fps()
        if fps <= 0 or now < self._image_due:
            return False
        self._image_due = max(self._image_due + 1 / fps, now)
        return True

    def _fail(self, err: Exception) -> None:
        """The actor's start raised (model, store, config): Ray does not retry that."""
        self.failure = str(err).strip().splitlines()[-1].split(": ", 1)[-1]
        log.error("stream %s: cannot start on the cluster: %s", self.stream.id, self.failure)
        self._set_state(StreamState.FAILED)

    def _lost(self, err: Exception) -> None:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if self.batch is None:  # never answered: not placed yet (no node has the resources)
            c = self.config.cluster
            reason = (f"waiting for Ray to place the stream's actor (num_cpus {c.num_cpus}, "
                      f"num_gpus {c.num_gpus}): {reason}")
        elif self.unreachable is None:
            log.error("stream %s: actor unreachable (Ray restarts it): %s", self.stream.id,
                      reason)
        self.unreachable = reason
        self._set_state(self.state)

    def _apply(self, batch: StreamBatch) -> None:
        """Publish a batch exactly as a local stream publishes its results."""
        sid, m = self.stream.id, self.metrics
        if self._lanes is None and batch.lanes is not None:
            self._lanes = batch.lanes
        for result in batch.results:
            for e in result.analytics.crossings:
                self._published[CountKey(e.lane, e.class_name, e.direction)] += 1
            for mv in result.analytics.movements:
                self._published_moves[CountKey(mv.movement, mv.class_name, "")] += 1
            self._publish(result)
        if batch.missed:
            log.warning("stream %s: %d results left the actor's buffer before the gateway "
                        "collected them (their counts are in the store)", sid, batch.missed)
            m.dropped.labels(sid, "gateway").inc(batch.missed)
        # Catch up with crossings stored but never delivered (a dead incarnation's last ones,
        # the counts it resumed from): the counters follow the store, never backwards.
        for key, n in batch.cumulative.items():
            if n > self._published[key]:
                m.crossings.labels(sid, key.lane, key.class_name, key.direction).inc(
                    n - self._published[key])
                self._published[key] = n
        for key, n in batch.movements.items():
            mkey = CountKey(key.lane, key.class_name, "")
            if n > self._published_moves[mkey]:
                m.movements.labels(sid, key.lane, key.class_name).inc(
                    n - self._published_moves[mkey])
                self._published_moves[mkey] = n
        self.batch = batch
        status = batch.status
        self._set_state(StreamState(status["state"]))
        if status["reconnects"] > self._seen_reconnects:
            m.reconnects.labels(sid).inc(status["reconnects"] - self._seen_reconnects)
            self._seen_reconnects = status["reconnects"]
        if status["frames_dropped"] > self._seen_drops:
            m.dropped.labels(sid, "source").inc(status["frames_dropped"] - self._seen_drops)
            self._seen_drops = status["frames_dropped"]

    def _set_state(self, state: StreamState) -> None:
        self.metrics.set_state(self.stream.id, state.value, [s.value for s in StreamState])

    # -- what the API and the dashboard read (RunningStream) ---------------------------------
    @property
    def state(self) -> StreamState:
        """The actor's stream state, but failed, stopped, starting (no answer yet) or
        reconnecting (unreachable) as the gateway sees it."""
        if self.failure is not None:
            return StreamState.FAILED
        if self._stop.is_set():
            return StreamState.STOPPED
        if self.batch is None:
            return StreamState.STARTING
        if self.unreachable is not None:
            return StreamState.RECONNECTING
        return StreamState(self.batch.status["state"])

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the stream's frames, as of the last batch."""
        return None if self.batch is None else self.batch.frame_size

    @property
    def lanes(self) -> tuple[Lane, ...] | None:
        """The stream's lanes in pixels, sent by the actor once it knows its frame size."""
        return self._lanes

    def status(self) -> dict[str, Any]:
        """The actor's status, with the gateway's view: state, error, frames published,
        latency, and where the actor runs (node, pid, restarts)."""
        batch = self.batch
        base = batch.status if batch else {
            "id": self.stream.id, "source": redact(self.stream.source), "error": None,
            "frames_received": 0, "frames_dropped": 0, "reconnects": 0, "frame_size": None,
            "fps": None}
        return {**base, "state": self.state.value,
                "error": self._error(base.get("error")),
                "frames_processed": self.frames_processed,
                "latency_ms": self.latency_percentiles(),
                "worker": {**(batch.worker if batch else {}), "restarts": self.restarts}}

    def _error(self, reported: str | None) -> str | None:
        if self.failure is not None:
            return self.failure
        if self.unreachable is None:
            return reported  # the actor's own (source errors, lanes outside the frame)
        if self.batch is None:
            return self.unreachable  # waiting to be placed
        return f"stream actor unreachable: {self.unreachable}"

    def latest_image(self) -> np.ndarray | None:
        """The actor's last processed frame (BGR); None before the first or when the actor
        does not answer. Blocks up to CALL_TIMEOUT_S."""
        import ray

        try:
            return ray.get(self.actor.latest_image.remote(), timeout=CALL_TIMEOUT_S)
        except ray.exceptions.RayError:
            return None

    def lane_snapshot(self) -> list[dict[str, Any]]:
        """The lanes' live state, as of the last batch."""
        return [] if self.batch is None else self.batch.lane_snapshot

    def movement_snapshot(self) -> list[dict[str, Any]]:
        """Cumulative turning movements, as of the last batch."""
        return [] if self.batch is None else self.batch.movement_snapshot
