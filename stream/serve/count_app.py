"""The manual-counting page's server (`lanewatch count`): one video, loopback by default.

    GET  /                                    the counting page (sinks/static/count.html)
    GET  /static/...                          its script and the dashboard's style sheet
    GET  /api/recording                       the video (size, frame rate, every frame's time),
                                              the stream's lanes in pixels, the board's keys
    GET  /api/recording/frames/{n}.jpg        frame n (0-based), decoded exactly
                                              (?size=reduced: half size, for fast playback)
    POST /api/manual-count                    {"entries": [...]}: written to --output as CSV

Only that one video is served: no request names a file. Changes (the POST) are accepted
from the page's own origin only and as JSON only, so another site open in the same browser
cannot overwrite the CSV; bound to loopback, requests must name a loopback host, so a site
cannot reach the server through a DNS name rebound to 127.0.0.1 either.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys

from aiohttp import web

from lanewatch.sinks.errors import LanewatchError, SourceError
from lanewatch.sinks.json_input import JSONInputError, parse
from lanewatch.stream.serve.frame_server import FrameServer
from lanewatch.stream.serve.manual_count import CountSession, EntryError

MAX_BODY_BYTES = 16 * 1024 * 1024  # MAX_ENTRIES entries of long names
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class CountApp:
    """The routes of one counting session."""

    def __init__(self, session: CountSession, static_dir, loopback_only: bool = True):
        self.session = session
        self.loopback_only = loopback_only
        self.frames = FrameServer(session.reader)
        self.static_dir = static_dir
        # Frames never change while this server runs; the token keeps a browser's cache
        # from showing another run's video at the same address.
        self.token = secrets.token_hex(4)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES,
                              middlewares=[self.guard])
        app.add_routes([
            web.get("/", self.index),
            web.static("/static", self.static_dir),
            web.get("/api/recording", self.recording),
            web.get("/api/recording/frames/{name}", self.frame),
            web.post("/api/manual-count", self.save),
        ])
        app.on_cleanup.append(self._close)
        return app

    @web.middleware
    async def guard(self, request: web.Request, handler):
        """Loopback host names only (when bound to loopback); changes: same origin, JSON."""
        if self.loopback_only and _hostname(request.host) not in LOOPBACK:
            return _error(421, "wrong_host",
                          f"this server answers to 127.0.0.1 or localhost, not "
                          f"{request.host[:80]}: open the address `lanewatch count` printed")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return _error(403, "forbidden_origin",
                              f"only this page ({request.host}) may save counts, not "
                              f"{origin[:80]}")
            if request.content_type != "application/json":
                return _error(415, "unsupported_media_type",
                              f"POST {request.path} takes JSON (Content-Type: "
                              f"application/json), got {request.content_type}")
        return await handler(request)

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.static_dir / "count.html",
                                headers={"Cache-Control": "no-cache"})

    async def recording(self, request: web.Request) -> web.Response:
        url = f"/api/recording/frames/{{n}}.jpg?v={self.token}"
        response = web.json_response(self.session.metadata(url))
        response.enable_compression()  # every frame's time: ~1 MB an hour of video, raw
        return response

    async def frame(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        last = len(self.frames) - 1
        digits = name.removesuffix(".jpg")
        if not name.endswith(".jpg") or not digits.isdigit() or not digits.isascii():
            return _error(404, "no_such_frame",
                          f"{name[:40]!r} is not a frame: ask for /api/recording/frames/N.jpg "
                          f"with N from 0 to {last}")
        index = int(digits)
        size = request.query.get("size", "full")
        if size not in ("full", "reduced"):
            return _error(400, "bad_size", f"size={size[:20]!r}: use full or reduced")
        try:
            frame = await self.frames.jpeg(index, reduced=size == "reduced")
        except IndexError:
            return _error(404, "no_such_frame",
                          f"frame {index} is past the end: the video has {last + 1} frames "
                          f"(0..{last})")
        except SourceError as err:
            return _error(500, "decode_failed", str(err))
        return web.Response(body=frame.jpeg, content_type="image/jpeg", headers={
            "Cache-Control": "private, max-age=86400",
            "X-Frame-Index": str(frame.index), "X-Frame-Time": f"{frame.time_s:.6f}",
            "X-Frame-Reduced": "1" if frame.reduced else "0"})

    async def save(self, request: web.Request) -> web.Response:
        try:
            entries = self.session.entries(parse(await request.read()))
            path = await asyncio.to_thread(self.session.save, entries)
        except (JSONInputError, EntryError) as err:
            return _error(400, "bad_entries", str(err))
        except OSError as err:
            return _error(500, "not_saved", f"cannot write {self.session.output}: {err}")
        return web.json_response({"saved": str(path), "rows": len(entries)})

    async def _close(self, app: web.Application) -> None:
        await asyncio.to_thread(self.frames.close)


def _hostname(host: str) -> str:
    """`127.0.0.1:8765` -> 127.0.0.1, `[::1]:8765` -> ::1."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _static_dir():
    from pathlib import Path

    from lanewatch import sinks
    return Path(sinks.__file__).resolve().parent / "static"


async def _serve(count: CountApp, host: str, port: int) -> None:
    runner = web.AppRunner(count.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise LanewatchError(f"cannot listen on {host}:{port}: {err.strerror or err}: pick "
                             "another --port (0: any free port)") from None
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    print(f"lanewatch count: http://{shown}:{bound}/ (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def run_count(session: CountSession, host: str, port: int) -> int:
    """Serve the counting page until Ctrl-C or SIGTERM; 0 then."""
    if host not in LOOPBACK:
        print(f"lanewatch: warning: listening on {host}: anyone who can reach it sees the "
              "video and can overwrite --output", file=sys.stderr)
    count = CountApp(session, _static_dir(), loopback_only=host in LOOPBACK)
    try:
        asyncio.run(_serve(count, host, port))
    finally:
        count.frames.close()  # a second close is harmless: the worker and file are released
    print("lanewatch count: stopped", file=sys.stderr)
    return 0
