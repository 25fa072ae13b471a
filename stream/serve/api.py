"""The HTTP side of `lanewatch serve`: dashboard, JSON API, metrics, health, auth.

    GET  /                                 the operator dashboard (static files, no CDN)
    GET  /ws                               WebSocket (docs/websocket.md)
    GET  /metrics                          Prometheus text format
    GET  /healthz, /readyz                 liveness; readiness (every stream running)
    GET  /api/streams                      streams and their state
    GET  /api/streams/{id}                 one stream: state and current lane states
    GET  /api/streams/{id}/counts          cumulative counts per lane, class and direction
    GET  /api/streams/{id}/intervals       interval history (?since=&until= Unix seconds)
    GET  /api/streams/{id}/events          recent crossings (?limit=)
    GET  /api/streams/{id}/flow            crossings per lane in bins, lane colours (flow_api.py)
    GET  /api/streams/{id}/movements       turning movements: totals and intervals (?since=&until=)
    GET  /api/streams/{id}/speeds          spot speeds per lane and interval (?since=&until=)
    GET  /api/streams/{id}/traffic         flow per 15 min, peak hour, headways (traffic_api.py)
    GET  /api/streams/{id}/lanes           the stream's lanes, in pixels of its frame
    GET  /api/streams/{id}/snapshot.jpg    the last processed camera frame, unannotated
    POST /api/streams/{id}/lanes/export    validate edited lanes; YAML for the config
    POST /api/streams, PUT|DELETE /api/streams/{id}   streams at run time (stream_admin.py)

With `server.auth_token` set (or, when it is not, the environment variable
LANEWATCH_AUTH_TOKEN: how the compose stack passes a generated token), /ws and /api need
`Authorization: Bearer TOKEN` (any case of "Bearer") or `?token=TOKEN`; /metrics and the
health checks too when `protect_metrics` / `protect_health`.
The dashboard page itself is static and holds no data; it asks for the token when needed.

Cross-site requests (docs/deployment.md, Security): a browser sends any page's requests to the
service, token or not, so a request that changes state (any method but GET/HEAD/OPTIONS) and
the /ws upgrade are refused (403) when their `Origin` is neither the service's own host:port
nor in `server.allowed_origins`; a POST/PUT body must be `application/json` (415 otherwise),
which a cross-site page cannot send without a CORS preflight that the service never grants.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import cv2
import numpy as np
from aiohttp import web

from lanewatch.sinks import json_input
from lanewatch.sinks.errors import ConfigError
from lanewatch.sinks.metrics import CONTENT_TYPE
from lanewatch.sinks.overlay_layout import lane_color_hex
from lanewatch.sinks.reports import crossing_record
from lanewatch.stream.pipeline.running_stream import RunningStream
from lanewatch.stream.serve.flow_api import FlowQueryError, flow_figures
from lanewatch.stream.serve.lane_export import config_yaml, lanes_from_editor, lanes_yaml
from lanewatch.stream.serve.traffic_api import TrafficQueryError, traffic_figures
from lanewatch.stream.sources.live import StreamState

if TYPE_CHECKING:
    from lanewatch.stream.config.schema import ServerConfig
    from lanewatch.stream.serve.service import Service

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods that change nothing


def _bad_query(message: str) -> web.Response:
    return web.json_response({"error": "bad_query", "message": message}, status=400)


TOKEN_ENV = "LANEWATCH_AUTH_TOKEN"


def auth_token(server: ServerConfig) -> str | None:
    """The bearer token the service requires: `server.auth_token`, else $LANEWATCH_AUTH_TOKEN,
    else None (no authentication). Raises ConfigError for a token too short to be secret."""
    token = server.auth_token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 8:
        raise ConfigError(f"{TOKEN_ENV} is {len(token)} characters long: use at least 8, "
                          "e.g. the output of `openssl rand -hex 24`")
    return token


def exposure_warning(host: str, token: str | None) -> str | None:
    """The start-up warning for a service that anyone on the network can control: listening
    beyond loopback with no token. None when the service is safe in this respect."""
    if token:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        loopback = False
    if loopback:
        return None
    return (f"SECURITY: listening on {host}, beyond loopback, with no server.auth_token: anyone "
            "who can reach this port can add, change and delete streams and watch every "
            f"camera. Set server.auth_token or ${TOKEN_ENV}, or listen on 127.0.0.1 "
            "(server.host); see docs/deployment.md, Security")


def same_host(origin: str, host: str) -> bool:
    """Whether an `Origin` header names the host:port of the request's `Host` header (a Host
    without a port counts as the Origin scheme's default port, as behind a TLS proxy)."""
    try:
        o, h = urlsplit(origin), urlsplit(f"//{host}")
        o_port, h_port = o.port, h.port
    except ValueError:  # a malformed port
        return False
    if not o.hostname or o.hostname != h.hostname:
        return False
    default = {"http": 80, "https": 443}.get(o.scheme)
    return (o_port or default) == (h_port or default)


class Api:
    """Route handlers over a running `Service`; its streams are read only through the
    `RunningStream` protocol (stream/pipeline/running_stream.py), in either mode."""

    def __init__(self, service: Service, static_dir: Path | None = None):
        self.service = service
        self.static_dir = static_dir or _static_dir()
        self.token = auth_token(service.config.server)

    # -- auth --------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        token = self.token
        if token is None:
            return True
        given = request.query.get("token", "")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":  # auth schemes are case-insensitive (RFC 7235)
            given = credentials.strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not sent by a browser for a cross-site request: curl, scripts
            return True
        allowed = {o.rstrip("/").lower() for o in self.service.config.server.allowed_origins}
        return origin.rstrip("/").lower() in allowed or same_host(origin, request.host)

    @web.middleware
    async def cross_site(self, request: web.Request, handler):
        """Refuse what a page on another site could make a browser send (module docstring)."""
        changes = request.method not in SAFE_METHODS
        if (changes or request.path == "/ws") and not self._origin_allowed(request):
            origin = json_input.shorten(request.headers["Origin"])
            return web.json_response({
                "error": "forbidden_origin",
                "message": f"a page at {origin} may not change streams or open /ws; this "
                           f"service accepts its own origin ({request.host}) and those listed "
                           "in server.allowed_origins"}, status=403)
        if (request.method in ("POST", "PUT", "PATCH")
                and request.content_type != "application/json"):
            return web.json_response({
                "error": "unsupported_media_type",
                "message": f"{request.method} {request.path} takes a JSON body with "
                           f"Content-Type: application/json (got {request.content_type})"},
                status=415)
        return await handler(request)

    @web.middleware
    async def auth(self, request: web.Request, handler):
        path = request.path
        s = self.service.config.server
        needs = (path == "/ws" or path.startswith("/api/")
                 or (path == "/metrics" and s.protect_metrics)
                 or (path in ("/healthz", "/readyz") and s.protect_health))
        if needs and not self._authorized(request):
            return web.json_response({"error": "unauthorized",
                                      "message": "missing or wrong bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    # -- helpers -----------------------------------------------------------------------------
    def _runner(self, request: web.Request) -> RunningStream:
        sid = request.match_info["id"]
        runners = self.service.runners
        if sid not in runners:
            raise web.HTTPNotFound(text=json.dumps({"error": "unknown stream", "stream": sid,
                                                    "streams": list(runners)}),
                                   content_type="application/json")
        return runners[sid]

    @staticmethod
    def _no_frame_yet(runner: RunningStream) -> web.HTTPException:
        return web.HTTPServiceUnavailable(
            text=json.dumps({"error": "no_frame_yet",
                             "message": f"stream {runner.stream.id} has not delivered a "
                                        f"frame yet (state: {runner.state.value})"}),
            content_type="application/json", headers={"Retry-After": "2"})

    def _frame_size(self, runner: RunningStream) -> tuple[int, int]:
        size = runner.frame_size  # read once: a property another thread may change
        if size is None:
            raise self._no_frame_yet(runner)
        return size

    # -- plain endpoints ---------------------------------------------------------------------
    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.service.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        states = {sid: r.state.value for sid, r in self.service.runners.items()}
        ready = all(state == StreamState.RUNNING.value for state in states.values())
        return web.json_response({"ready": ready, "streams": states},
                                 status=200 if ready else 503)

    async def streams(self, request: web.Request) -> web.Response:
        return web.json_response([self.service.stats(sid) for sid in list(self.service.runners)])

    async def stream(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        return web.json_response({**runner.status(),
                                  "lanes": self.service.lane_snapshot(runner.stream.id)})

    async def counts(self, request: web.Request) -> web.Response:
        sid = self._runner(request).stream.id
        cumulative = self.service.store.cumulative(sid)
        return web.json_response({
            "stream": sid,
            "counts": [{"lane": k.lane, "class": k.class_name, "direction": k.direction,
                        "count": n} for k, n in sorted(cumulative.items())],
            "lanes": self.service.lane_snapshot(sid)})

    async def intervals(self, request: web.Request) -> web.Response:
        sid = self._runner(request).stream.id
        try:
            since = float(request.query["since"]) if "since" in request.query else None
            until = float(request.query["until"]) if "until" in request.query else None
        except ValueError:
            return _bad_query("since and until are Unix seconds")
        rows = self.service.store.intervals(sid, since, until)
        return web.json_response([{"interval_start_s": r.interval_start_s,
                                   "interval_end_s": r.interval_end_s, "lane": r.lane,
                                   "class": r.class_name, "direction": r.direction,
                                   "count": r.count} for r in rows])

    async def events(self, request: web.Request) -> web.Response:
        sid = self._runner(request).stream.id
        try:
            limit = int(request.query.get("limit", 100))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 10000:
            return _bad_query("limit must be 1..10000")
        events = self.service.store.recent_crossings(sid, limit)
        return web.json_response([crossing_record(e) for e in events])

    @staticmethod
    def _time_range(request: web.Request) -> tuple[float, float]:
        """?since=&until= in Unix seconds (default: the last 24 hours); a 400 reply if bad."""
        try:
            until = float(request.query.get("until", time.time()))
            since = float(request.query.get("since", until - 86400))
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({
                "error": "bad_query", "message": "since and until are Unix seconds"}),
                content_type="application/json") from None
        return since, until

    async def movements(self, request: web.Request) -> web.Response:
        sid = self._runner(request).stream.id
        since, until = self._time_range(request)
        store = self.service.store
        return web.json_response({
            "stream": sid,
            "totals": [{"movement": m, "from": o, "to": d, "class": c, "count": n}
                       for m, o, d, c, n in store.movement_totals(sid)],
            "intervals": [{"interval_start_s": start,
                           "interval_end_s": start + store.interval_s, "movement": m,
                           "class": c, "count": n}
                          for start, m, c, n in store.movement_intervals(sid, since, until)]})

    async def speeds(self, request: web.Request) -> web.Response:
        sid = self._runner(request).stream.id
        since, until = self._time_range(request)
        store = self.service.store
        groups: dict[tuple[float, str], list[float]] = {}
        for t, lane, kmh in store.speeds(sid, since, until):
            start = (t // store.interval_s) * store.interval_s
            groups.setdefault((start, lane), []).append(kmh)
        return web.json_response({"stream": sid, "intervals": [
            {"interval_start_s": start, "interval_end_s": start + store.interval_s,
             "lane": lane, "vehicles": len(v), "mean_kmh": round(float(np.mean(v)), 1),
             "p85_kmh": round(float(np.percentile(v, 85)), 1)}
            for (start, lane), v in sorted(groups.items())]})

    async def flow(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        try:
            return web.json_response(flow_figures(runner, self.service.store, request.query,
                                                  self.service.started_s))
        except FlowQueryError as err:
            return _bad_query(str(err))

    async def traffic(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        try:
            return web.json_response(traffic_figures(runner, self.service.config,
                                                     self.service.store, request.query))
        except TrafficQueryError as err:
            return _bad_query(str(err))

    async def lanes(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        width, height = self._frame_size(runner)
        lanes = []
        for i, lane in enumerate(runner.lanes or ()):
            lanes.append({
                "name": lane.name, "direction": lane.direction.value,
                "color": lane_color_hex(i),  # the video overlay's and the chart's
                "in_label": lane.in_label, "out_label": lane.out_label,
                "polygon": None if lane.polygon is None else lane.polygon.round(1).tolist(),
                "line": None if lane.line is None else lane.line.round(1).tolist(),
                "congestion": None if lane.congestion is None
                else lane.congestion.model_dump(exclude_none=True)})
        return web.json_response({"stream": runner.stream.id, "width": width,
                                  "height": height, "coordinates": runner.stream.coordinates,
                                  "lanes": lanes})

    async def snapshot(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        image = await asyncio.to_thread(runner.latest_image)
        if image is None:
            raise self._no_frame_yet(runner)
        ok, buf = await asyncio.to_thread(cv2.imencode, ".jpg", image,
                                          [cv2.IMWRITE_JPEG_QUALITY, 90])
        return web.Response(body=buf.tobytes(), content_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})

    async def export_lanes(self, request: web.Request) -> web.Response:
        runner = self._runner(request)
        frame_size = self._frame_size(runner)
        try:
            payload = json_input.parse(await request.read())
        except json_input.JSONInputError as err:
            return web.json_response({"error": "bad_json", "message": f"the body: {err}"},
                                     status=400)
        try:
            specs = lanes_from_editor(payload, runner.stream, frame_size)
            path = self.service.config_path
            whole = config_yaml(path, runner.stream.id, specs) if path else None
        except ConfigError as err:
            return web.json_response({"error": "invalid_lanes", "message": str(err)},
                                     status=400)
        return web.json_response({"stream": runner.stream.id, "lanes_yaml": lanes_yaml(specs),
                                  "config_yaml": whole,
                                  "config_name": path.name if path else None})

    # -- dashboard ---------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.static_dir / "index.html",
                                headers={"Cache-Control": "no-cache"})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.static("/static", self.static_dir),
            web.get("/metrics", self.metrics),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/api/streams", self.streams),
            web.get("/api/streams/{id}", self.stream),
            web.get("/api/streams/{id}/counts", self.counts),
            web.get("/api/streams/{id}/intervals", self.intervals),
            web.get("/api/streams/{id}/events", self.events),
            web.get("/api/streams/{id}/flow", self.flow),
            web.get("/api/streams/{id}/movements", self.movements),
            web.get("/api/streams/{id}/speeds", self.speeds),
            web.get("/api/streams/{id}/traffic", self.traffic),
            web.get("/api/streams/{id}/lanes", self.lanes),
            web.get("/api/streams/{id}/snapshot.jpg", self.snapshot),
            web.post("/api/streams/{id}/lanes/export", self.export_lanes),
        ]


def _static_dir() -> Path:
    """The dashboard's files: beside the installed `lanewatch.sinks` package."""
    from lanewatch import sinks
    return Path(sinks.__file__).resolve().parent / "static"
