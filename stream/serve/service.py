"""`lanewatch serve`: every configured stream live, served on one HTTP port.

`Service` owns the stream runners, the count store, the metrics, the WebSocket hub and the live
video threads, and starts and stops them with the aiohttp application; the routes are in
`api.py`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.live_video import LiveVideo
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.store import CountStore
from lanewatch.sinks.websocket import WebSocketHub
from lanewatch.stream.cluster.remote import RemoteStream, connect
from lanewatch.stream.config.schema import Config, StreamConfig
from lanewatch.stream.detect.batching import BatchingDetector
from lanewatch.stream.detect.detector import Detector
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.pipeline.governor import CapacityGovernor
from lanewatch.stream.pipeline.runner import StreamRunner
from lanewatch.stream.pipeline.running_stream import RunningStream
from lanewatch.stream.serve.api import Api, auth_token, exposure_warning
from lanewatch.stream.serve.stream_admin import StreamAdmin
from lanewatch.stream.serve.stream_registry import StreamRegistry
from lanewatch.stream.sources.live import StreamState

log = logging.getLogger(__name__)

# SIGINT/SIGTERM end the process within SHUTDOWN_TIMEOUT_S whatever the clients do (README,
# docs/deployment.md): inside the 10 s a container gets by default before SIGKILL. The budget:
RUNNER_STOP_TIMEOUT_S = 3.0  # every stream's source and worker stopped at once and joined
CLIENT_CLOSE_TIMEOUT_S = 2.0  # every WebSocket client closed at once; the stalled ones dropped
HTTP_DRAIN_TIMEOUT_S = 1.0  # aiohttp waits up to twice this for the requests still running
SHUTDOWN_TIMEOUT_S = 8.0


class Service:
    """The live service: stream runners, store, metrics, WebSocket hub and HTTP app."""

    def __init__(self, config: Config, detector: Detector | None = None,
                 config_path: Path | None = None):
        self.config = config
        self.config_path = config_path  # the file the lane editor exports a new version of
        self.metrics = ServiceMetrics()
        self.store = CountStore(config.store.target, config.counting.interval_s)
        self.registry = StreamRegistry(config.store.target)
        streams = self.registry.apply(config.streams)  # with the changes made at run time
        self.detector: Detector | None = None
        if config.cluster.enabled:  # each stream's actor has its own detector
            connect(config.cluster)
        else:
            self.detector = detector or create_detector(config.model, max(len(streams), 1))
        if config.model.batch_size > 1 and self.detector is not None:  # frames batched
            self.detector = BatchingDetector(self.detector, config.model.batch_size,
                                             config.model.batch_timeout_ms / 1000,
                                             self.metrics.batch.observe)
        s = config.server
        self.hub = WebSocketHub([st.id for st in streams], s.client_queue,
                                s.slow_client_drops, s.max_message_bytes, self.metrics,
                                s.max_clients)
        # The streams of this process share its capacity: one governor sets their detection
        # cadence and sheds the live video first (stream/pipeline/governor.py).
        self.governor = CapacityGovernor(video_active=self._video_watched)
        self.video = LiveVideo([st.id for st in streams], self.hub.video_requests,
                               self.hub.publish_frame, self._make_annotator,
                               rate_scale=lambda: self.governor.video_scale)
        self.runners: dict[str, RunningStream] = {st.id: self._runner(st) for st in streams}
        self._pusher: asyncio.Task | None = None
        # Held by every stream mutation (stream_admin.py): two PUTs of one stream at once would
        # each stop the same old runner and start their own, leaving orphans that count twice.
        self.mutations = asyncio.Lock()
        self.stopping = False  # set at shutdown: no runner may start after that
        self.started_s = time.time()  # the flow chart starts here, not before
        self._failing: set[str] = set()  # streams whose status failed (logged once each)

    def _runner(self, stream: StreamConfig) -> RunningStream:
        """The stream's runner: in a Ray actor in cluster mode, else in this process (the
        one place that tells the two apart)."""
        # Each result goes to the store (where the stream runs), the metrics, then these.
        sinks = (self.hub, self.video)
        if self.config.cluster.enabled:
            return RemoteStream(stream, self.config, self.metrics, sinks=sinks,
                                video_fps=functools.partial(self._video_fps, stream.id))
        return StreamRunner(stream, self.config, self.detector, self.metrics, self.store,
                            source_settings=stream.source_options, governor=self.governor,
                            sinks=sinks)

    def _video_watched(self) -> bool:
        """Whether any client watches any stream's live video now."""
        return any(self.hub.video_requests(sid) for sid in list(self.runners))

    def _video_fps(self, stream_id: str) -> float:
        """The highest frame rate a client watches a stream's video at (0: nobody)."""
        return max((fps for fps, _ in self.hub.video_requests(stream_id)), default=0.0)

    # -- streams added, changed and removed at run time (on the event loop) ----------------------
    def add_stream(self, stream: StreamConfig) -> RunningStream:
        """Start a new stream now and keep it across restarts; the others are not touched."""
        if stream.id in self.runners:
            raise ValueError(f"stream '{stream.id}' already exists (PUT updates it)")
        if self.stopping:
            raise RuntimeError("the service is shutting down: no stream can be added")
        runner = self.runners[stream.id] = self._runner(stream)
        self._callers_changed()
        self.hub.stream_ids.append(stream.id)
        self.video.add(stream.id)
        if self.hub.loop is not None:  # serving: start now (otherwise with the app)
            runner.start()
        self.registry.save(stream)
        self.hub.broadcast_json(None, {"type": "streams", "streams": list(self.runners),
                                       "ts": time.time()})
        return runner

    async def update_stream(self, stream: StreamConfig) -> RunningStream:
        """Restart one stream with new settings (lanes, thresholds, source); its cumulative
        counts resume from the store. Call with `mutations` held. The old runner is stopped
        and its threads joined before the new one starts: never two runners for a stream."""
        old = self.runners[stream.id]
        if not await asyncio.to_thread(old.stop, RUNNER_STOP_TIMEOUT_S):
            raise RuntimeError(f"stream '{stream.id}' did not stop within "
                               f"{RUNNER_STOP_TIMEOUT_S:.0f} s (is its camera or the model "
                               "hanging?); it is stopping: retry the update shortly")
        if self.stopping:  # the shutdown began meanwhile: a new runner would outlive it
            raise RuntimeError(f"the service is shutting down: stream '{stream.id}' stays "
                               "stopped")
        self._failing.discard(stream.id)
        # A fresh video thread: the old one's drawings are cached with the old lanes.
        await asyncio.to_thread(self.video.remove, stream.id)
        self.video.add(stream.id)
        runner = self.runners[stream.id] = self._runner(stream)
        runner.start()
        self.registry.save(stream)
        before = [lane.name for lane in old.stream.lanes]
        after = [lane.name for lane in stream.lanes]
        log.info("stream %s updated: %d lane(s) (%s; added: %s, removed: %s); its live video "
                 "is redrawn with them", stream.id, len(after), ", ".join(after),
                 ", ".join(n for n in after if n not in before) or "none",
                 ", ".join(n for n in before if n not in after) or "none")
        return runner

    async def remove_stream(self, stream_id: str) -> None:
        """Stop a stream for good; its counts stay in the store. Call with `mutations` held."""
        # The video thread goes first: drawing its last frame needs the registered runner.
        await asyncio.to_thread(self.video.remove, stream_id)
        runner = self.runners.pop(stream_id)
        self._failing.discard(stream_id)
        self._callers_changed()
        self.hub.stream_ids.remove(stream_id)
        if not await asyncio.to_thread(runner.stop, RUNNER_STOP_TIMEOUT_S):
            log.warning("stream %s: still stopping %.0f s after its removal (it ends on its "
                        "own and records nothing more)", stream_id, RUNNER_STOP_TIMEOUT_S)
        self.metrics.set_state(stream_id, "stopped", [s.value for s in StreamState])
        self.registry.remove(stream_id)
        self.hub.broadcast_json(None, {"type": "streams", "streams": list(self.runners),
                                       "ts": time.time()})

    def _callers_changed(self) -> None:
        """Tell the shared model how many streams call it now (OpenVINO compiles for one
        caller's latency or for several callers' throughput)."""
        if self.detector is not None:  # None in cluster mode: each actor has its own
            self.detector.set_callers(len(self.runners))

    # -- live video of the streams -------------------------------------------------------------
    def _make_annotator(self, stream: str, frame_size: tuple[int, int],
                        width: int) -> FrameAnnotator:
        out = self.config.output
        return FrameAnnotator(self.runners[stream].lanes, out.trail_seconds,
                              out.draw_masks, self.config.counting.anchor, frame_size, width,
                              out.speed_labels)

    # -- snapshots for the API and the periodic push -------------------------------------------
    def lane_snapshot(self, stream: str) -> list[dict[str, Any]]:
        return self.runners[stream].lane_snapshot()

    def movement_snapshot(self, stream: str) -> list[dict[str, Any]]:
        return self.runners[stream].movement_snapshot()

    def stats(self, stream: str) -> dict[str, Any]:
        """One stream's state for the API and the stats push; a stream whose status cannot
        be read shows as failed, logged once, and never takes the others down with it."""
        runner = self.runners[stream]
        try:
            # The service's start: where the dashboard's flow chart begins.
            return {**runner.status(), "service_started_s": self.started_s}
        except Exception:  # noqa: BLE001 - one stream's bug is not the service's
            self._failed_once(stream, "status")
            return {"id": stream, "state": StreamState.FAILED.value,
                    "error": "its status cannot be read (the server log has the reason)"}

    def _failed_once(self, stream: str, what: str) -> None:
        """Log a stream's failure with its traceback, once per stream (it would repeat every
        push, every second)."""
        if stream not in self._failing:
            self._failing.add(stream)
            log.exception("stream %s: cannot read its %s; the other streams go on (logged "
                          "once)", stream, what)

    async def _push_periodically(self) -> None:
        period = self.config.server.counts_interval_s
        while True:
            await asyncio.sleep(period)
            now = time.time()
            for sid in list(self.runners):
                if sid not in self.runners:  # removed while an earlier one was sent
                    continue
                # One stream's failure costs that stream's message, never the others' (nor
                # this task, which would end every client's counts and stats for good).
                try:
                    self.hub.broadcast_json(sid, {"type": "counts", "stream": sid, "ts": now,
                                                  "lanes": self.lane_snapshot(sid),
                                                  "movements": self.movement_snapshot(sid)})
                except Exception:  # noqa: BLE001
                    self._failed_once(sid, "counts")
                try:
                    self.hub.broadcast_json(sid, {"type": "stats", "stream": sid, "ts": now,
                                                  **self.stats(sid)})
                except Exception:  # noqa: BLE001
                    self._failed_once(sid, "stats")

    def app(self) -> web.Application:
        """The aiohttp application (starts and stops the streams with itself)."""
        api = Api(self)
        app = web.Application(middlewares=[api.cross_site, api.auth])
        app.add_routes([web.get("/ws", self.hub.handle), *api.routes(),
                        *StreamAdmin(self).routes()])
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _start(self, app: web.Application) -> None:
        self.hub.loop = asyncio.get_running_loop()
        for runner in self.runners.values():
            runner.start()
        self.video.start()
        self._pusher = asyncio.create_task(self._push_periodically())

    async def _shutdown(self, app: web.Application) -> None:
        """Stop sources and workers, then send the clients what is queued and close them
        (1001), then close the store: each step bounded (RUNNER_STOP_TIMEOUT_S, then
        CLIENT_CLOSE_TIMEOUT_S) whatever the cameras and clients do. Workers first: every
        crossing stored reaches the clients that stay to the end."""
        self.stopping = True  # a stream mutation still running starts no runner now
        if self._pusher is not None:
            self._pusher.cancel()
        await asyncio.to_thread(self._stop_runners, RUNNER_STOP_TIMEOUT_S)
        await self.hub.close_all(timeout=CLIENT_CLOSE_TIMEOUT_S)
        self.store.close()
        self.registry.close()
        if self.detector is not None:  # None: cluster mode, the actors hold the models
            self.detector.close()

    def _stop_runners(self, timeout: float) -> None:
        """Stop every stream and live video thread at once, each waited for `timeout` s at
        most: one after the other, N hanging cameras would take N times as long."""
        stoppers = [*(r.stop for r in self.runners.values()), self.video.stop]
        with ThreadPoolExecutor(len(stoppers), thread_name_prefix="stopping") as pool:
            for stop in stoppers:
                pool.submit(stop, timeout)
        left = sorted(t.name for t in threading.enumerate()
                      if t.name.startswith(("pipeline-", "source-", "video-", "gateway-")))
        if left:  # daemon threads: they end with the process
            log.warning("threads still running %.0f s after the stop: %s", timeout,
                        ", ".join(left))


def serve(config: Config, host: str | None = None, port: int | None = None,
          config_path: Path | None = None) -> None:
    """Run the service until SIGINT/SIGTERM (graceful shutdown)."""
    service = Service(config, config_path=config_path)
    h = host or config.server.host
    p = port if port is not None else config.server.port
    log.info("lanewatch serving %d stream(s) on http://%s:%d", len(service.runners), h, p)
    if warning := exposure_warning(h, auth_token(config.server)):
        log.warning(warning)
    web.run_app(service.app(), host=h, port=p, print=None,
                handle_signals=True, shutdown_timeout=HTTP_DRAIN_TIMEOUT_S)

