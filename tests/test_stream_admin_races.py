"""Stream mutations racing each other, and one bad stream among good ones, on the real
`Service` in-process (stub detector, generated video; tests/inprocess.py): every wait bounded.

- Concurrent PUTs of one stream leave exactly one runner (one pipeline and one source thread),
  and after DELETE none is left and its frame counter stops.
- A source URL that cannot be used (a port out of range, no host, an unknown scheme) is refused
  with 400 before anything is added.
- A stream whose status fails never stops the counts and stats of the others, and is logged
  once with its id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time

import pytest

from inprocess import STREAM, served
from videos import write_video

pytestmark = pytest.mark.timeout(120)


def stream_threads(stream_id: str) -> list[str]:
    """Names of the live threads that belong to one stream's runner."""
    return sorted(t.name for t in threading.enumerate()
                  if t.is_alive() and t.name in (f"pipeline-{stream_id}", f"source-{stream_id}"))


async def frames(client, stream_id: str) -> float:
    text = await (await client.get("/metrics")).text()
    m = re.search(rf'^lanewatch_frames_total{{stream="{stream_id}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def looping_stream(tmp_path, stream_id: str, max_fps: float = 2) -> dict:
    video = tmp_path / "loop.mp4"
    if not video.exists():
        write_video(video, frames=30, size=(320, 240))
    return {"id": stream_id, "source": str(video),
            "source_options": {"loop": True, "max_fps": max_fps},
            "lanes": [{"name": "l1", "line": [[10, 120], [310, 120]]}]}


async def rate(client, stream_id: str, seconds: float) -> float:
    before = await frames(client, stream_id)
    await asyncio.sleep(seconds)
    return (await frames(client, stream_id) - before) / seconds


def test_concurrent_puts_leave_one_runner_and_delete_stops_it(tmp_path):
    async def go():
        async with served(tmp_path) as (service, client):
            body = looping_stream(tmp_path, "x")
            reply = await client.post("/api/streams", json=body)
            assert reply.status == 201, await reply.text()
            puts = await asyncio.gather(*[client.put("/api/streams/x", json=body)
                                          for _ in range(3)])
            assert [r.status for r in puts] == [200, 200, 200]
            assert stream_threads("x") == ["pipeline-x", "source-x"], (
                f"runner threads after 3 concurrent PUTs: {stream_threads('x')}")
            deadline = time.monotonic() + 20
            while await frames(client, "x") < 2:
                assert time.monotonic() < deadline, "stream x never processed a frame"
                await asyncio.sleep(0.1)
            measured = await rate(client, "x", 3)
            assert measured <= 2.7, f"{measured:.1f} frames/s with max_fps 2: orphan runners"

            # A PUT racing a DELETE: whichever wins, nothing of x is left afterwards.
            replies = await asyncio.gather(client.put("/api/streams/x", json=body),
                                           client.delete("/api/streams/x"),
                                           client.put("/api/streams/x", json=body))
            statuses = [r.status for r in replies]
            assert statuses[1] == 200 and set(statuses) <= {200, 404}, [
                (r.status, await r.text()) for r in replies]
            assert "x" not in service.runners
            assert stream_threads("x") == [], f"left after DELETE: {stream_threads('x')}"
            assert await rate(client, "x", 2) == 0, "frames still counted after DELETE"
    asyncio.run(go())


@pytest.mark.parametrize("source, words", [
    ("rtsp://u:${LW_TEST_CAM_PASSWORD}@127.0.0.1:99999/s", "port"),
    ("rtsp://127.0.0.1:0/s", "port"),
    ("rtsp://u:${LW_TEST_CAM_PASSWORD}@127.0.0.1:http/s", "port"),
    ("rtsp:///s", "host"),
    ("gopher://camera/s", "scheme"),
    ("rtsp://[::1/s", "parse"),
])
def test_unusable_source_urls_are_refused_before_anything_is_added(tmp_path, monkeypatch,
                                                                  source, words):
    # The case: a credentialed URL (its password from the service's environment, as
    # API streams must have it) with a port out of range.
    monkeypatch.setenv("LW_TEST_CAM_PASSWORD", "pw-secret-19")

    async def go():
        async with served(tmp_path) as (service, client):
            reply = await client.post("/api/streams", json={"id": "bad", "source": source})
            body = await reply.text()
            assert reply.status == 400, f"{reply.status}: {body}"
            assert words in body and "pw-secret-19" not in body, body
            assert "bad" not in service.runners
            listing = await client.get("/api/streams")
            assert listing.status == 200 and "bad" not in await listing.text()
            put = await client.put(f"/api/streams/{STREAM}",
                                   json={"id": STREAM, "source": source})
            assert put.status == 400, await put.text()
    asyncio.run(go())


def test_a_failing_stream_never_stops_the_others(tmp_path, caplog):
    async def go():
        async with served(tmp_path, {"counts_interval_s": 0.1}) as (service, client):
            reply = await client.post("/api/streams", json=looping_stream(tmp_path, "b"))
            assert reply.status == 201, await reply.text()

            def broken():
                raise ValueError("status exploded")
            service.runners["b"].status = broken  # any bug in one stream's status path
            service.runners["b"].lane_snapshot = broken
            async with client.ws_connect("/ws") as ws:
                await ws.send_json({"type": "subscribe", "streams": "*"})
                stats = 0
                deadline = time.monotonic() + 5
                while stats < 5:
                    try:
                        msg = await ws.receive_json(timeout=max(deadline - time.monotonic(),
                                                                0.01))
                    except TimeoutError:
                        pytest.fail(f"only {stats} stats messages for {STREAM} in 5 s: the "
                                    "push stopped")
                    stats += msg["type"] == "stats" and msg["stream"] == STREAM
            listing = await client.get("/api/streams")
            assert listing.status == 200, await listing.text()
            states = {s["id"]: s for s in await listing.json()}
            assert states[STREAM]["state"] == "stopped" and states["b"]["state"] == "failed"
    with caplog.at_level(logging.ERROR):
        asyncio.run(go())
    logged = [r for r in caplog.records if "stream b" in r.getMessage()
              and r.levelno >= logging.ERROR]
    assert len(logged) == 1, [r.getMessage() for r in logged]
