"""The WebSocket hub on a real aiohttp server (loopback) with real `websockets` clients, fed
synthetic results: client limit, renditions per client, alerts and events."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from aiohttp import web
from test_live_video import result

from lanewatch.sinks.live_video import EncodedFrame
from lanewatch.sinks.websocket import WebSocketHub, parse_frame_message
from lanewatch.trackers.analytics.lane_analytics import CongestionEvent, CrossingEvent

from rtsp import free_port

pytestmark = pytest.mark.timeout(60)


async def serve(hub: WebSocketHub):
    app = web.Application()
    app.add_routes([web.get("/ws", hub.handle)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hub.loop = asyncio.get_running_loop()
    return runner, f"ws://127.0.0.1:{port}/ws"


async def connect(url, **subscribe):
    ws = await websockets.connect(url)
    assert json.loads(await ws.recv())["type"] == "hello"
    if subscribe:
        await ws.send(json.dumps({"type": "subscribe", "streams": ["cam"], **subscribe}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def drain(ws, seconds=0.5):
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            m = await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            break
        got.append(m if isinstance(m, bytes) else json.loads(m))
    return got


def test_client_limit_refuses_with_503_and_frees_the_slot():
    async def go():
        hub = WebSocketHub(["cam"], max_clients=2)
        runner, url = await serve(hub)
        try:
            a, b = await connect(url), await connect(url)
            with pytest.raises(websockets.InvalidStatus) as info:
                await websockets.connect(url)
            response = info.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert json.loads(response.body)["error"] == "too_many_clients"
            await a.close()
            for _ in range(50):
                if len(hub.clients) < 2:
                    break
                await asyncio.sleep(0.05)
            c = await connect(url)  # the slot is free again
            await b.close()
            await c.close()
        finally:
            await runner.cleanup()
    asyncio.run(go())


def test_each_client_gets_its_own_rendition_events_and_alerts():
    async def go():
        hub = WebSocketHub(["cam"])
        runner, url = await serve(hub)
        try:
            small = await connect(url, video=True, max_width=700, max_fps=30)
            large = await connect(url, video=True, max_width=4096, max_fps=30)
            blind = await connect(url, video=False)  # events only
            assert sorted(hub.video_requests("cam")) == [(30.0, 700), (30.0, 4096)]
            for rung in (640, 1280):
                hub.publish_frame(EncodedFrame("cam", rung, 1280, {"stream": "cam",
                                                                   "width": rung}, b"JPEG"))
            base = result(3)
            crossing = CrossingEvent("cam", "l1", 7, "car", "in", 0.1, 3)
            jam = CongestionEvent("cam", "l1", True, 5, 0.1, 3)
            hub.on_result(type(base)(base.frame, base.detections, base.tracks,
                                     type(base.analytics)(base.analytics.lanes,
                                                          (crossing,), (jam,)),
                                     base.timings))
            got = {name: await drain(ws) for name, ws in
                   (("small", small), ("large", large), ("blind", blind))}
            for ws in (small, large, blind):
                await ws.close()
        finally:
            await runner.cleanup()
        return got

    got = asyncio.run(go())
    widths = {name: [parse_frame_message(m)[0]["width"] for m in msgs if isinstance(m, bytes)]
              for name, msgs in got.items()}
    assert widths == {"small": [640], "large": [1280], "blind": []}
    for msgs in got.values():
        kinds = [m["type"] for m in msgs if isinstance(m, dict)]
        assert kinds == ["event", "alert"]
        alert = next(m for m in msgs if isinstance(m, dict) and m["type"] == "alert")
        assert alert["alert"] == {"type": "congestion", "stream": "cam", "time_s": 0.1,
                                  "frame": 3, "lane": "l1", "congested": True, "occupancy": 5}
