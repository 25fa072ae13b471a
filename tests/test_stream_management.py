"""Streams added, updated and removed through the API of a running `lanewatch serve`: the other
stream keeps running without a gap, a removed stream's counts stay in the store, and the
changes survive a restart. Real service on loopback, every wait bounded."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

from lanewatch.sinks.store import CountStore

from rtsp import free_port
from serving import http_get, start_serve, stop_serve, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

TOKEN = "stream-admin-token"


def call(base: str, method: str, path: str, body=None, token: str | None = TOKEN):
    """(status, JSON reply) of an API call."""
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def frames(base: str, stream: str) -> float:
    m = re.search(rf'^lanewatch_frames_total{{stream="{stream}"}} (\S+)$',
                  http_get(base + "/metrics"), re.M)
    return float(m.group(1)) if m else 0.0


def stream_body(stream_id: str, video, lanes=(("lane3", 654, 790),)) -> dict:
    return {"id": stream_id, "source": str(video), "source_options": {"loop": True},
            "lanes": [{"name": name, "line": [[a, 250], [b, 250]], "direction": "in"}
                      for name, a, b in lanes]}


def status(base: str, stream: str) -> dict:
    return call(base, "GET", f"/api/streams/{stream}")[1]


def test_add_update_remove_while_another_stream_runs(tmp_path, detector_model, highway_video):
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, classes: [car, truck, bus, motorcycle]}}
        server: {{port: {port}, auth_token: {TOKEN}}}
        store: {{path: {tmp_path / 'counts.db'}}}
        streams:
          - id: a
            source: {highway_video}
            source_options: {{loop: true}}
            lanes: [{{name: lane3, line: [[654, 250], [790, 250]], direction: in}}]
    """))
    base, process = start_serve(config, port, tmp_path / "serve.log")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():  # stream a's frame counter, four times a second, all along
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), frames(base, "a")))
            except OSError:
                pass
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert wait_for(lambda: frames(base, "a") > 10, 60)
        sampler.start()

        # Bad requests change nothing.
        assert call(base, "POST", "/api/streams", stream_body("b", highway_video),
                    token=None)[0] == 401
        code, reply = call(base, "POST", "/api/streams", {"id": "b", "source": "x.mp4",
                                                          "lanes": [{"name": "l", "lin": []}]})
        assert code == 400 and any("lanes[0](l).lin: unknown key" in p
                                   for p in reply["problems"]), reply
        assert call(base, "POST", "/api/streams", b"{nope")[0] == 400
        assert call(base, "POST", "/api/streams", stream_body("a", highway_video))[0] == 409
        assert call(base, "PUT", "/api/streams/zz", stream_body("zz", highway_video))[0] == 404
        assert call(base, "PUT", "/api/streams/a", stream_body("b", highway_video))[0] == 400
        assert call(base, "DELETE", "/api/streams/zz")[0] == 404

        # Add b: it starts and counts; a goes on.
        added_at = time.monotonic()
        code, reply = call(base, "POST", "/api/streams", stream_body("b", highway_video))
        assert code == 201 and reply["id"] == "b"
        assert wait_for(lambda: status(base, "b")["state"] == "running"
                        and frames(base, "b") > 10, 60)

        # Update b's lanes: it restarts with them; its counts resume from the store.
        two_lanes = stream_body("b", highway_video, (("lane3", 654, 790), ("lane4", 790, 910)))
        code, reply = call(base, "PUT", "/api/streams/b", two_lanes)
        assert code == 200
        assert wait_for(lambda: [lane["name"] for lane in status(base, "b")["lanes"]]
                        == ["lane3", "lane4"], 60)

        def counted_b():
            rows = call(base, "GET", "/api/streams/b/counts")[1]["counts"]
            return sum(r["count"] for r in rows)
        assert wait_for(lambda: counted_b() >= 2, 90)

        # Remove b: it stops; its counts stay; a still runs.
        code, reply = call(base, "DELETE", "/api/streams/b")
        assert code == 200 and sum(r["count"] for r in reply["counts"]) >= 2
        removed_counts = sum(r["count"] for r in reply["counts"])
        assert [s["id"] for s in call(base, "GET", "/api/streams")[1]] == ["a"]
        assert call(base, "GET", "/api/streams/b")[0] == 404
        removed_at = time.monotonic()
        time.sleep(2)
    finally:
        stop.set()
        sampler.join(5)
        stop_serve(process)

    # Stream a never paused while b came and went.
    assert samples[0][0] < added_at and samples[-1][0] > removed_at + 1.5
    stalls = [t1 - t0 for (t0, f0), (t1, f1) in zip(samples, samples[1:]) if f1 <= f0]
    longest = max([0.0, *stalls])
    assert all(f1 >= f0 for (_, f0), (_, f1) in zip(samples, samples[1:]))
    assert longest < 1.0, f"stream a stalled for {longest:.2f} s"
    store = CountStore(tmp_path / "counts.db")
    assert sum(store.cumulative("b").values()) == removed_counts  # kept after removal
    store.close()

    # After a restart: b stays removed; a stream added at run time comes back.
    base, process = start_serve(config, port, tmp_path / "serve.log")
    try:
        assert [s["id"] for s in call(base, "GET", "/api/streams")[1]] == ["a"]
        assert call(base, "POST", "/api/streams", stream_body("c", highway_video))[0] == 201
    finally:
        stop_serve(process)
    base, process = start_serve(config, port, tmp_path / "serve.log")
    try:
        assert [s["id"] for s in call(base, "GET", "/api/streams")[1]] == ["a", "c"]
        assert wait_for(lambda: frames(base, "c") > 0, 60)
    finally:
        stop_serve(process)


def test_the_shared_model_is_told_how_many_streams_call_it(tmp_path, highway_video):
    """Adding or removing a stream at run time re-tunes the shared model (OpenVINO: latency
    for one stream, throughput for several)."""
    import asyncio

    from lanewatch.stream.config.loading import parse_config
    from lanewatch.stream.serve.service import Service

    from inprocess import StubDetector

    class CountingDetector(StubDetector):
        def __init__(self):
            self.callers: list[int] = []

        def set_callers(self, n: int) -> None:
            self.callers.append(n)

    config = parse_config({"model": {"path": "m.pt"}, "store": {"path": str(tmp_path / "c.db")},
                           "streams": [stream_body("a", highway_video)]})
    detector = CountingDetector()
    service = Service(config, detector=detector)
    service.add_stream(parse_config({"model": {"path": "m.pt"},
                                     "streams": [stream_body("b", highway_video)]}).streams[0])
    asyncio.run(service.remove_stream("b"))
    assert detector.callers == [2, 1]
