"""`lanewatch serve`: every configured stream live, served on one HTTP port.

    GET /ws                          WebSocket (docs/websocket.md)
    GET /metrics                     Prometheus text format
    GET /healthz, /readyz            liveness; readiness (every stream running)
    GET /api/streams                 streams and their state
    GET /api/streams/{id}            one stream: state and current lane states
    GET /api/streams/{id}/counts     cumulative counts per lane, class and direction
    GET /api/streams/{id}/intervals  interval history (?since=&until= Unix seconds)
    GET /api/streams/{id}/events     recent crossings (?limit=)

With `server.auth_token` set, /ws and /api need `Authorization: Bearer TOKEN` (or
`?token=TOKEN`); /metrics and the health checks too when `protect_metrics` / `protect_health`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from typing import Any

from aiohttp import web

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.live_video import LiveVideo
from lanewatch.sinks.metrics import CONTENT_TYPE, ServiceMetrics
from lanewatch.sinks.reports import crossing_record
from lanewatch.sinks.store import CountStore
from lanewatch.sinks.websocket import WebSocketHub
from lanewatch.stream.config import Config
from lanewatch.stream.detector import Detector, UltralyticsDetector
from lanewatch.stream.live import StreamState
from lanewatch.stream.pipeline import FrameResult
from lanewatch.stream.runner import StreamRunner

log = logging.getLogger(__name__)


class Service:
    """The live service: stream runners, store, metrics, WebSocket hub and HTTP app."""

    def __init__(self, config: Config, detector: Detector | None = None):
        self.config = config
        self.metrics = ServiceMetrics()
        self.store = CountStore(config.store.path, config.counting.interval_s)
        self.detector = detector or UltralyticsDetector(config.model)
        s = config.server
        self.hub = WebSocketHub([st.id for st in config.streams], s.client_queue,
                                s.slow_client_drops, s.max_message_bytes, self.metrics,
                                s.max_clients)
        lock = threading.Lock()  # one model, shared by the streams
        self.runners = {
            st.id: StreamRunner(st, config, self.detector, lock, self.metrics, self.store,
                                on_result=self._on_result, source_settings=st.source_options)
            for st in config.streams
        }
        self.video = LiveVideo(list(self.runners), self.hub.video_requests,
                               self.hub.publish_frame, self._make_annotator)
        self._pusher: asyncio.Task | None = None

    # -- results from the stream threads -------------------------------------------------------
    def _on_result(self, result: FrameResult) -> None:
        self.hub.publish_result(result)
        self.video.offer(result)  # drawn and encoded on the stream's video thread, if watched

    def _make_annotator(self, stream: str, frame_size: tuple[int, int],
                        width: int) -> FrameAnnotator:
        out = self.config.output
        return FrameAnnotator(self.runners[stream].processor.lanes, out.trail_seconds,
                              out.draw_masks, self.config.counting.anchor, frame_size, width)

    # -- snapshots for the API and the periodic push -------------------------------------------
    def lane_snapshot(self, stream: str) -> list[dict[str, Any]]:
        runner = self.runners[stream]
        result = runner.last_result
        if result is None or runner.processor is None:
            return []
        book = runner.processor.analytics.counts
        lanes = []
        for lane in result.analytics.lanes:
            by_class: dict[str, dict[str, int]] = {}
            for key, n in book.cumulative.items():
                if key.lane == lane.name:
                    by_class.setdefault(key.class_name, {})[key.direction] = n
            lanes.append({"name": lane.name, "occupancy": lane.occupancy,
                          "congested": lane.congested, "max_dwell_s": round(lane.max_dwell_s, 2),
                          "counts": lane.counts, "by_class": by_class})
        return lanes

    def stats(self, stream: str) -> dict[str, Any]:
        return self.runners[stream].status()

    async def _push_periodically(self) -> None:
        period = self.config.server.counts_interval_s
        while True:
            await asyncio.sleep(period)
            now = time.time()
            for sid in self.runners:
                self.hub.broadcast_json(sid, {"type": "counts", "stream": sid, "ts": now,
                                              "lanes": self.lane_snapshot(sid)})
                self.hub.broadcast_json(sid, {"type": "stats", "stream": sid, "ts": now,
                                              **self.stats(sid)})

    # -- HTTP ----------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        token = self.config.server.auth_token
        if token is None:
            return True
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode(), token.encode())

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        path = request.path
        s = self.config.server
        needs = (path == "/ws" or path.startswith("/api/")
                 or (path == "/metrics" and s.protect_metrics)
                 or (path in ("/healthz", "/readyz") and s.protect_health))
        if needs and not self._authorized(request):
            return web.json_response({"error": "unauthorized",
                                      "message": "missing or wrong bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    def _runner(self, request: web.Request) -> StreamRunner:
        sid = request.match_info["id"]
        if sid not in self.runners:
            raise web.HTTPNotFound(text=f'{{"error": "unknown stream", "stream": "{sid}"}}',
                                   content_type="application/json")
        return self.runners[sid]

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        states = {sid: r.state.value for sid, r in self.runners.items()}
        ready = all(state == StreamState.RUNNING.value for state in states.values())
        return web.json_response({"ready": ready, "streams": states},
                                 status=200 if ready else 503)

    async def _streams(self, request: web.Request) -> web.Response:
        return web.json_response([r.status() for r in self.runners.values()])

    async def _stream(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        return web.json_response({**runner.status(), "lanes": self.lane_snapshot(runner.stream.id)})

    async def _counts(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        cumulative = self.store.cumulative(runner.stream.id)
        return web.json_response({
            "stream": runner.stream.id,
            "counts": [{"lane": k.lane, "class": k.class_name, "direction": k.direction,
                        "count": n} for k, n in sorted(cumulative.items())],
            "lanes": self.lane_snapshot(runner.stream.id)})

    async def _intervals(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        try:
            since = float(request.query["since"]) if "since" in request.query else None
            until = float(request.query["until"]) if "until" in request.query else None
        except ValueError:
            return web.json_response({"error": "bad_query",
                                      "message": "since and until are Unix seconds"}, status=400)
        rows = self.store.intervals(runner.stream.id, since, until)
        return web.json_response([{"interval_start_s": r.interval_start_s,
                                   "interval_end_s": r.interval_end_s, "lane": r.lane,
                                   "class": r.class_name, "direction": r.direction,
                                   "count": r.count} for r in rows])

    async def _events(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        try:
            limit = int(request.query.get("limit", 100))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 10000:
            return web.json_response({"error": "bad_query",
                                      "message": "limit must be 1..10000"}, status=400)
        events = self.store.recent_crossings(runner.stream.id, limit)
        return web.json_response([crossing_record(e) for e in events])

    def app(self) -> web.Application:
        """The aiohttp application (starts and stops the streams with itself)."""
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.get("/ws", self.hub.handle),
            web.get("/metrics", self._metrics),
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/api/streams", self._streams),
            web.get("/api/streams/{id}", self._stream),
            web.get("/api/streams/{id}/counts", self._counts),
            web.get("/api/streams/{id}/intervals", self._intervals),
            web.get("/api/streams/{id}/events", self._events),
        ])
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
        """Stop sources and workers (their crossings are already committed), close clients."""
        if self._pusher is not None:
            self._pusher.cancel()
        await self.hub.close_all()
        await asyncio.to_thread(self._stop_runners)
        self.store.close()

    def _stop_runners(self) -> None:
        for runner in self.runners.values():
            runner.stop(timeout=5)
        self.video.stop()


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Run the service until SIGINT/SIGTERM (graceful shutdown)."""
    service = Service(config)
    h = host or config.server.host
    p = port if port is not None else config.server.port
    log.warning("lanewatch serving %d stream(s) on http://%s:%d", len(service.runners), h, p)
    web.run_app(service.app(), host=h, port=p, print=None,
                handle_signals=True, shutdown_timeout=10)

