"""`lanewatch serve` on a real RTSP camera (GStreamer's RTSP server on loopback): frames and
counts reach a WebSocket client, the camera is killed and restarted and the stream recovers by
itself, an unreachable camera keeps retrying while the other stream runs, and a real
Prometheus server scrapes the service."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request

import pytest
import websockets

from rtsp import RtspServer, free_port
from serving import http_get, metric, start_serve, stop_serve, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture()
def camera(highway_video):
    server = RtspServer(highway_video).start()
    yield server
    server.kill()


@pytest.fixture()
def service(tmp_path, detector_model, camera):
    port = free_port()
    fast = ("{read_timeout_s: 2, stall_timeout_s: 3, open_timeout_s: 3, "
            "reconnect_initial_s: 0.2, reconnect_max_s: 1}")
    config = tmp_path / "serve.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, classes: [car, truck, bus, motorcycle]}}
        server: {{port: {port}}}
        store: {{path: {tmp_path / 'counts.db'}}}
        streams:
          - id: cam
            source: {camera.url}
            source_options: {fast}
            lanes:
              - {{name: lane3, line: [[654, 250], [790, 250]], direction: in}}
              - {{name: lane4, line: [[790, 250], [910, 250]], direction: in}}
          - id: dead
            source: rtsp://127.0.0.1:{free_port()}/nobody-home
            source_options: {fast}
    """))
    base, process = start_serve(config, port, tmp_path / "serve.log")
    yield base, process
    stop_serve(process)


def test_rtsp_stream_served_to_websocket_and_recovering_from_a_camera_restart(service, camera):
    base, _ = service
    ws_url = base.replace("http", "ws") + "/ws"

    async def watch(seconds):
        frames, kinds = 0, []
        async with websockets.connect(ws_url) as ws:
            await ws.recv()  # hello
            await ws.send(json.dumps({"type": "subscribe", "streams": ["cam"], "video": True,
                                      "max_fps": 5, "max_width": 320}))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    m = await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), .01))
                except TimeoutError:
                    break
                if isinstance(m, bytes):
                    frames += 1
                else:
                    kinds.append(json.loads(m)["type"])
        return frames, kinds

    frames, kinds = asyncio.run(watch(6))
    assert frames >= 5 and kinds.count("counts") >= 3
    metrics = http_get(base + "/metrics")
    assert metric(metrics, "lanewatch_stream_up", stream="cam") == 1
    assert metric(metrics, "lanewatch_stream_up", stream="dead") == 0
    assert metric(metrics, "lanewatch_reconnects_total", stream="dead") >= 2  # keeps retrying
    assert metric(metrics, "lanewatch_stream_state", stream="dead", state="reconnecting") == 1
    assert metric(metrics, "lanewatch_stream_state", stream="cam", state="running") == 1

    frames_before = metric(metrics, "lanewatch_frames_total", stream="cam")
    camera.kill()
    assert wait_for(lambda: metric(http_get(base + "/metrics"), "lanewatch_stream_up",
                                   stream="cam") == 0, 30)
    camera.start()
    assert wait_for(lambda: metric(http_get(base + "/metrics"), "lanewatch_stream_up",
                                   stream="cam") == 1, 60)
    metrics = http_get(base + "/metrics")
    assert metric(metrics, "lanewatch_reconnects_total", stream="cam") >= 1
    assert wait_for(lambda: metric(http_get(base + "/metrics"), "lanewatch_frames_total",
                                   stream="cam") > frames_before + 20, 30)
    streams = {s["id"]: s for s in json.loads(http_get(base + "/api/streams"))}
    assert streams["cam"]["state"] == "running"
    assert streams["dead"]["state"] == "reconnecting"


def test_real_prometheus_scrapes_the_lane_counters(service, tmp_path):
    base, _ = service
    prometheus = shutil.which("prometheus")
    assert prometheus, "Prometheus is not installed: run install.sh"
    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        scrape_configs:
          - job_name: lanewatch
            static_configs: [{{targets: ["{base.removeprefix('http://')}"]}}]
    """))
    process = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(expr):
            url = (f"http://127.0.0.1:{web_port}/api/v1/query?"
                   + urllib.parse.urlencode({"query": expr}))
            return json.loads(http_get(url))["data"]["result"]

        # The highway's first cars reach lane 3 and 4's line about 1.5 s into the stream.
        assert wait_for(lambda: query("lanewatch_lane_crossings_total"), 90, step=1)
        series = query("lanewatch_lane_crossings_total")
        assert {s["metric"]["lane"] for s in series} <= {"lane3", "lane4"}
        assert all(s["metric"]["stream"] == "cam" and s["metric"]["job"] == "lanewatch"
                   for s in series)
        up = {s["metric"]["stream"]: s["value"][1] for s in query("lanewatch_stream_up")}
        assert up == {"cam": "1", "dead": "0"}
    finally:
        process.terminate()
        process.wait(30)
