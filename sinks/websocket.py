"""WebSocket hub: fans stream results out to clients (protocol: docs/websocket.md).

Results arrive from the stream worker threads, annotated JPEG frames from the video threads
(`live_video.py`, only for what clients watch); the hub turns them into messages there and
hands them to the asyncio loop, which owns every socket. Each client has a bounded queue:
when it is full the oldest message is dropped and counted, and a client that keeps losing
messages is disconnected with a close reason. A malformed or oversized message gets an error
reply or a close code; nothing a client sends can stop the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from lanewatch.sinks import json_input
from lanewatch.sinks.live_video import EncodedFrame, RateLimiter, rendition_width
from lanewatch.sinks.reports import (
    congestion_record,
    crossing_record,
    dwell_record,
    movement_record,
    wrong_way_record,
)
from lanewatch.sinks.results import FrameResult

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CLOSE_TOO_SLOW = 4001  # application close codes (4000-4999)
CLOSE_SHUTDOWN = WSCloseCode.GOING_AWAY
# A send that cannot complete in this long means the client stopped reading (its TCP window is
# shut): waiting longer would hold its messages, and at shutdown the whole process, hostage.
SEND_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0  # a client that does not take a close frame in this long is dropped


def frame_message(header: dict[str, Any], jpeg: bytes) -> bytes:
    """Binary frame message: 4-byte big-endian header length, JSON header, JPEG bytes."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + jpeg


def parse_frame_message(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of `frame_message` (for clients and tests)."""
    (n,) = struct.unpack(">I", data[:4])
    return json.loads(data[4:4 + n]), data[4 + n:]


@dataclass(eq=False)  # identity semantics: clients live in a set
class Client:
    """One connected WebSocket client and what it subscribed to."""

    ws: web.WebSocketResponse
    transport: Any = None
    queue: deque = field(default_factory=deque)
    streams: set[str] = field(default_factory=set)
    video: bool = False
    max_fps: float = 5.0
    max_width: int = 960
    frame_limiters: dict[str, RateLimiter] = field(default_factory=dict)  # per stream
    dropped_in_a_row: int = 0
    cut_off: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class WebSocketHub:
    """All clients of the service and the stream messages they receive; a sink
    (sinks/sink.py) of every stream's results."""

    name = "websocket"

    def __init__(self, stream_ids: list[str], queue_size: int = 64,
                 slow_client_drops: int = 200, max_message_bytes: int = 65536,
                 metrics=None, max_clients: int = 100):
        self.stream_ids = stream_ids
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.slow_client_drops = slow_client_drops
        self.max_message_bytes = max_message_bytes
        self.metrics = metrics
        self.clients: set[Client] = set()
        # Stream worker threads read this immutable snapshot, never the set the loop mutates.
        self._snapshot: tuple[Client, ...] = ()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages_dropped = 0

    # -- called from stream worker threads ------------------------------------------------------
    def video_requests(self, stream: str) -> list[tuple[float, int]]:
        """(max_fps, max_width) of each client that watches this stream's video now."""
        return [(c.max_fps, c.max_width) for c in self._snapshot
                if c.video and not c.cut_off and stream in c.streams]

    def close(self) -> None:
        """Nothing: the hub outlives each stream (`close_all` closes its clients at the end)."""

    def on_result(self, result: FrameResult) -> None:
        """Queue a frame's events (crossings, movements) and alerts (congestion, wrong-way,
        long stays) for the clients."""
        if self.loop is None or not self._snapshot:
            return
        a = result.analytics
        events = [crossing_record(e) for e in a.crossings] + [
            movement_record(e) for e in a.movements]
        alerts = ([congestion_record(e) for e in a.congestion]
                  + [wrong_way_record(e) for e in a.wrong_way]
                  + [dwell_record(e) for e in a.dwell])
        if not (events or alerts):
            return
        stream = result.frame.stream_id
        ts = time.time()
        messages = [json.dumps({"type": "event", "stream": stream, "ts": ts, "event": e})
                    for e in events]
        messages += [json.dumps({"type": "alert", "stream": stream, "ts": ts, "alert": e})
                     for e in alerts]
        self.loop.call_soon_threadsafe(self._dispatch, stream, messages)

    def publish_frame(self, frame: EncodedFrame) -> None:
        """Queue an annotated frame for the clients watching its rendition."""
        if self.loop is not None and self._snapshot:
            self.loop.call_soon_threadsafe(self._dispatch_frame, frame)

    # -- on the event loop -------------------------------------------------------------------
    def broadcast_json(self, stream: str | None, payload: dict[str, Any]) -> None:
        """Queue a JSON message for the clients subscribed to `stream` (None: everyone)."""
        text = json.dumps(payload)
        for client in list(self.clients):
            if stream is None or stream in client.streams:
                self._enqueue(client, text)

    def _dispatch(self, stream: str, messages: list[str]) -> None:
        for client in list(self.clients):
            if stream in client.streams:
                for text in messages:
                    self._enqueue(client, text)

    def _dispatch_frame(self, frame: EncodedFrame) -> None:
        now = time.monotonic()
        message = None
        for client in list(self.clients):
            if not (client.video and frame.stream in client.streams) or rendition_width(
                    client.max_width, frame.source_width) != frame.rendition:
                continue
            limiter = client.frame_limiters.setdefault(frame.stream, RateLimiter())
            if limiter.allow(now, client.max_fps):
                message = message or frame_message(frame.header, frame.jpeg)
                self._enqueue(client, message)

    def _enqueue(self, client: Client, message) -> None:
        if client.cut_off:
            return
        if len(client.queue) >= self.queue_size:
            client.queue.popleft()
            client.dropped_in_a_row += 1
            self.messages_dropped += 1
            if self.metrics is not None:
                self.metrics.dropped.labels("-", "websocket").inc()
            if client.dropped_in_a_row >= self.slow_client_drops:
                client.cut_off = True
                client.queue.clear()
                asyncio.ensure_future(self._cut_off(client))
                return
        client.queue.append(message)
        client.wakeup.set()

    async def _cut_off(self, client: Client) -> None:
        """Disconnect a client that stays too far behind (its writer may be stuck in send)."""
        log.warning("websocket client too slow (%d messages lost): disconnecting",
                    client.dropped_in_a_row)
        await self._close_client(client, CLOSE_TOO_SLOW, "too slow: messages dropped",
                                 CLOSE_TIMEOUT_S)

    @staticmethod
    async def _close_client(client: Client, code: int, reason: str, timeout: float,
                            flush: bool = False) -> None:
        """Close one client with `code`, waiting at most `timeout` s in all (after sending
        what is queued for it, with `flush`): a client that stopped reading never takes the
        close frame (its buffers are full), so it is dropped."""
        deadline = time.monotonic() + timeout
        while flush and client.queue and not client.cut_off and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # its writer is sending the queue
        client.cut_off = True  # nothing more is queued or sent to it
        client.queue.clear()
        client.wakeup.set()  # its writer sees `cut_off` and ends
        try:
            await asyncio.wait_for(client.ws.close(code=code, message=reason.encode()),
                                   max(deadline - time.monotonic(), 0.1))
        except (TimeoutError, ConnectionError, RuntimeError):
            if client.transport is not None:
                client.transport.abort()  # close() would wait for the unsent bytes forever

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The /ws endpoint."""
        if len(self.clients) >= self.max_clients:
            return web.json_response(
                {"error": "too_many_clients",
                 "message": f"the server accepts {self.max_clients} WebSocket clients at once "
                            "(server.max_clients); retry later"}, status=503,
                headers={"Retry-After": "5"})
        # No permessage-deflate: JPEG does not compress, and deflating every frame for every
        # client cost the pipeline more than a tenth of its frame rate.
        ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes, heartbeat=20,
                                   compress=False)
        await ws.prepare(request)
        client = Client(ws, transport=request.transport)
        self.clients.add(client)
        self._count_clients()
        writer = asyncio.create_task(self._writer(client))
        await ws.send_str(json.dumps({"type": "hello", "version": PROTOCOL_VERSION,
                                      "streams": self.stream_ids, "ts": time.time()}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_message(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._error(client, "bad_message", "send JSON text messages")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(client)
            self._count_clients()
            writer.cancel()
            if ws.close_code is None and not ws.closed:
                await ws.close()
        return ws

    def _count_clients(self) -> None:
        self._snapshot = tuple(self.clients)
        if self.metrics is not None:
            self.metrics.ws_clients.set(len(self.clients))

    async def _error(self, client: Client, code: str, message: str) -> None:
        await client.ws.send_str(json.dumps({"type": "error", "code": code,
                                             "message": message}))

    async def _on_message(self, client: Client, text: str) -> None:
        """One text message: whatever it holds, the client gets a reply and stays connected."""
        try:
            await self._handle_message(client, text)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the connection is gone: nothing to reply to
        except Exception:  # noqa: BLE001 - a bug must not drop the client without a word
            log.exception("websocket: cannot handle a client message (%s)",
                          json_input.shorten(text))
            await self._error(client, "internal_error", "the server failed on this message; "
                              "it is logged, the connection stays open")

    async def _handle_message(self, client: Client, text: str) -> None:
        try:
            msg = json_input.parse(text)
        except json_input.JSONInputError as err:
            await self._error(client, "bad_json", f"message is not acceptable JSON: {err}")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            await self._error(client, "bad_message", 'expected an object with a "type"')
            return
        kind = msg["type"]
        if kind == "ping":
            await client.ws.send_str(json.dumps({"type": "pong", "ts": time.time()}))
        elif kind == "subscribe":
            await self._subscribe(client, msg)
        elif kind == "unsubscribe":
            streams = self._stream_list(msg.get("streams", []))
            if streams is None:
                await self._error(client, "bad_subscribe",
                                  '"streams" must be a list of stream ids or "*"')
                return
            client.streams -= set(streams)
            await client.ws.send_str(json.dumps({"type": "subscribed",
                                                 "streams": sorted(client.streams)}))
        else:
            await self._error(client, "unknown_type",
                              f"unknown message type {json_input.shorten(kind)!r} (expected "
                              "subscribe, unsubscribe or ping)")

    def _stream_list(self, streams: Any) -> list[str] | None:
        """A message's "streams": "*" for every stream, else a list of ids; None if neither."""
        if streams == "*":
            return list(self.stream_ids)
        if isinstance(streams, list) and all(isinstance(s, str) for s in streams):
            return streams
        return None

    async def _subscribe(self, client: Client, msg: dict) -> None:
        streams = self._stream_list(msg.get("streams", "*"))
        if streams is None:
            await self._error(client, "bad_subscribe", '"streams" must be a list of ids or "*"')
            return
        unknown = sorted(set(streams) - set(self.stream_ids))
        if unknown:
            await self._error(client, "unknown_stream",
                              f"no stream {json_input.shorten(', '.join(unknown))} (streams: "
                              f"{', '.join(self.stream_ids)})")
            return
        # Numbers only, and finite: 1e400 parses as infinity, which int() cannot convert.
        max_fps = json_input.finite_number(msg.get("max_fps", client.max_fps))
        max_width = json_input.finite_number(msg.get("max_width", client.max_width))
        video = msg.get("video", client.video)
        if max_fps is None or max_width is None or not isinstance(video, bool):
            await self._error(client, "bad_subscribe", "max_fps and max_width must be "
                              "numbers, video true or false")
            return
        if not (0 < max_fps <= 60 and 64 <= max_width <= 4096):
            await self._error(client, "bad_subscribe",
                              "max_fps must be in (0, 60], max_width in [64, 4096]")
            return
        max_width = int(max_width)
        client.streams |= set(streams)
        client.video = video
        client.max_fps, client.max_width = max_fps, max_width
        await client.ws.send_str(json.dumps({"type": "subscribed",
                                             "streams": sorted(client.streams),
                                             "video": client.video, "max_fps": max_fps,
                                             "max_width": max_width}))

    async def _writer(self, client: Client) -> None:
        """Send a client's queue; cut it off when it stays too far behind."""
        ws = client.ws
        try:
            while not ws.closed:
                await client.wakeup.wait()
                client.wakeup.clear()
                while client.queue and not ws.closed and not client.cut_off:
                    message = client.queue.popleft()
                    send = (ws.send_bytes(message) if isinstance(message, bytes)
                            else ws.send_str(message))
                    await asyncio.wait_for(send, SEND_TIMEOUT_S)
                    client.dropped_in_a_row = 0
        except TimeoutError:
            log.warning("websocket client took no data for %.0f s: disconnecting",
                        SEND_TIMEOUT_S)
            client.cut_off = True
            client.queue.clear()
            if client.transport is not None:
                client.transport.abort()  # a close frame could not get through either
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def close_all(self, message: str = "server shutting down",
                        timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Send every client what is queued for it, then close it with 1001 (going away): all
        at once, within about `timeout` seconds whatever they do; a client that does not take
        its messages and the close frame in that time is dropped."""
        results = await asyncio.gather(
            *(self._close_client(client, CLOSE_SHUTDOWN, message, timeout, flush=True)
              for client in list(self.clients)), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # already gone: nothing left to close
                log.debug("websocket client closed with an error: %r", result)
