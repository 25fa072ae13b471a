"""Issue 22, overlays and the dashboard's live view, against a real `lanewatch serve` on
highway.mp4 (looping) in Debian's Chromium: the flow chart starts at the service's start with
integer ticks and a partial current bin, lanes have the same colour in the chart and in the
video, health warnings, and a lane added by PUT shows in a subscribed client's video.

The stream's detections are 0.1 s apart (every 3rd frame) against a 0.05 s exactness limit, so
the "counts may be inexact" warning is deterministic, whatever the machine's speed. Drop-rate and
latency warnings are table-tested on the page's own module (sinks/static/health.js)."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import websockets
import yaml
from aiohttp import web
from overload import PacedDetector
from test_dashboard import assert_not_blank, keep_screenshot, poll

from lanewatch.stream.serve.service import Service

from conftest import CONFIGS
from rtsp import free_port
from serving import http_get, start_serve, stop_serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FIFTH = {"name": "shoulder", "line": [[900, 300], [1100, 300]], "direction": "in"}
FIFTH_BGR = (255, 139, 195)  # palette #c38bff, the fifth lane's


@pytest.fixture(scope="module")
def served(tmp_path_factory, detector_model, highway_video):
    folder = tmp_path_factory.mktemp("overlays")
    port = free_port()
    config = yaml.safe_load((CONFIGS / "highway.yaml").read_text())
    config["model"]["path"] = str(detector_model)
    config["server"] = {"port": port}
    config["store"] = {"path": "counts.db"}
    config["output"] = {"speed_labels": True}
    stream = config["streams"][0]
    stream["source"] = str(highway_video)
    stream["source_options"] = {"loop": True}
    stream["detection"] = {"every_nth_frame": 3, "max_gap_s": 0.05}
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.time()
    base, process = start_serve(path, port, folder / "serve.log")
    yield base, port, stream, started, folder / "serve.log"
    stop_serve(process)


def test_chart_from_service_start_integer_ticks_partial_bin_and_warnings(served, browser,
                                                                         tmp_path):
    base, _, _, started, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    poll(page, "Number(document.getElementById('video').dataset.frames || 0) >= 3", 60)
    flow = json.loads(http_get(base + "/api/streams/highway/flow?minutes=15&bin_s=30"))
    assert started - 1 <= flow["service_started_s"] <= time.time()
    assert flow["first_s"] == (flow["service_started_s"] // 30) * 30  # a fresh store
    first = flow["first_s"]
    chart = poll(page, f"""(() => {{ const d = document.getElementById('flow').dataset;
        return Number(d.first) === {first} && {{first: Number(d.first), bins: Number(d.bins),
            ticks: d.ticks, partial: Number(d.partial)}}; }})()""")
    # Not 30 bins of invented zeros: the bins since the service started, the last partial.
    assert chart["first"] == flow["first_s"] and 1 <= chart["bins"] <= 3, chart
    now = time.time()
    assert chart["partial"] in {(now // 30) * 30, (now // 30 - 1) * 30}, chart  # now's bin
    ticks = [float(t) for t in chart["ticks"].split(",")]
    assert ticks[0] == 0 and all(t == int(t) for t in ticks) and len(ticks) >= 2, ticks
    # The inexact-count warning, visible, in the warning style, with cadence and limit.
    text = poll(page, "!document.getElementById('h-warnings').hidden && "
                      "document.getElementById('h-warnings').innerText", 60)
    # (every 3rd frame or more: the governor may raise it on a busy machine)
    assert re.search(r"counts may be inexact: detection every \d+ frames", text), text
    assert "limit 0.05 s" in text
    assert page.evaluate("document.getElementById('health').closest('.card')"
                         ".classList.contains('warn')")
    # The chart's legend colours are the server's palette, lane by lane.
    legend = page.evaluate("""[...document.querySelectorAll('#flow-legend span')].map(
        (s) => [s.textContent, s.style.getPropertyValue('--c')])""")
    assert legend[:4] == [[n, c] for n, c in flow["colors"].items()][:4], legend
    # The counts table marks each lane with the same colour.
    marks = poll(page, """(() => { const cells = [...document.querySelectorAll(
        '#counts tbody tr td:first-child')];
        return cells.length === 4 && cells.map((c) => [c.textContent,
            getComputedStyle(c).borderLeftColor]); })()""")
    rgb = {n: "rgb({}, {}, {})".format(*(int(c[i:i + 2], 16) for i in (1, 3, 5)))
           for n, c in flow["colors"].items()}
    assert marks == [[n, rgb[n]] for n in ("lane1", "lane2", "lane3", "lane4")], marks
    # lane3's counting line in the video is drawn in lane3's chart colour.
    lanes = json.loads(http_get(base + "/api/streams/highway/lanes"))["lanes"]
    assert [lane["color"] for lane in lanes] == [flow["colors"][n] for n in
                                                 ("lane1", "lane2", "lane3", "lane4")]
    chart_rgb = [int(flow["colors"]["lane3"][i:i + 2], 16) for i in (1, 3, 5)]
    best = 0.0
    for _ in range(10):  # a vehicle may cover the line in one frame: the best of a few
        samples = page.evaluate(VIDEO_PIXELS, along(lanes[2]["line"], 1.0))
        hits = [min(np.abs(np.asarray(rgb, int) - chart_rgb).sum() for rgb in near) < 70
                for near in samples]
        best = max(best, float(np.mean(hits)))
        if best > 0.6:
            break
        page.wait_for_timeout(300)
    assert best > 0.6, best
    shot = tmp_path / "dashboard-warnings.png"
    page.screenshot(path=str(shot))
    assert_not_blank(shot)
    keep_screenshot(shot)
    assert errors == []
    page.close()


# The video's pixels as the page shows it at the given (x, y) of the camera frame: the image's
# natural width and, per point, the [r, g, b] of the rows just above, at and below it.
VIDEO_PIXELS = """(points) => {
    const img = document.getElementById('video');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const scale = c.width / 1280;
    const px = (x, y) => { const i = 4 * (y * c.width + x); return [d[i], d[i + 1], d[i + 2]]; };
    return points.map(([x, y]) => {
        const sx = Math.round(x * scale), sy = Math.round(y * scale);
        return [-1, 0, 1].map((dy) => px(sx, sy + dy)); }); }"""


def along(line, scale: float) -> list[tuple[int, int]]:
    """Pixels of a horizontal counting line, scaled, its middle third (the arrow) and its
    ends left out."""
    (x0, y), (x1, _) = (np.asarray(line) * scale).round().astype(int)
    return [(int(x), int(y)) for x in range(x0 + 4, x1 - 4)
            if abs(x - (x0 + x1) / 2) > (x1 - x0) / 6]


WARNING_CASES = [
    # (stats, previous, kinds expected)
    ({"frames_received": 100, "frames_dropped": 0, "latency_ms": {"p99": 80}}, None, []),
    ({"frames_received": 100, "frames_dropped": 10, "latency_ms": {"p99": 80}}, None,
     ["drops"]),
    # Recent drops count, not the stream's whole life: 1 of the last 100 frames.
    ({"frames_received": 200, "frames_dropped": 11}, {"frames_received": 100,
                                                       "frames_dropped": 10}, []),
    ({"frames_received": 100, "frames_dropped": 0, "latency_ms": {"p99": 2500}}, None,
     ["latency"]),
    ({"frames_received": 10, "frames_dropped": 5, "latency_ms": {"p99": 1500},
      "counting_reliable": False, "cadence": 4, "gap_limit_s": 0.1}, None,
     ["drops", "latency", "counting"]),
]


def test_health_warning_thresholds_in_the_browser(served, browser):
    base = served[0]
    page = browser.new_page()
    page.goto(base + "/")
    got = page.evaluate("""async (cases) => {
        const m = await import('/static/health.js');
        return cases.map(([s, p]) => m.healthWarnings(s, p).map((w) => [w.kind, w.text])); }""",
                        [[s, p] for s, p, _ in WARNING_CASES])
    for (_, _, kinds), warnings in zip(WARNING_CASES, got):
        assert [k for k, _ in warnings] == kinds, warnings
    assert "warns above 5 %" in got[1][0][1] and "warns above 1000 ms" in got[3][0][1]
    assert "detection every 4 frames" in got[4][2][1] and "limit 0.10 s" in got[4][2][1]
    page.close()


def line_pixels(image: np.ndarray, line, scale: float, color) -> float:
    """Share of the pixels along a line (its middle third left out: the arrow) within a JPEG's
    tolerance of `color`, looking one pixel either side."""
    hits = [min(np.abs(image[y + d, x].astype(int) - color).sum() for d in (-1, 0, 1)) < 70
            for x, y in along(line, scale)]
    return float(np.mean(hits))


async def _frames_after(port: int, seconds: float, put=None) -> list[np.ndarray]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "streams": ["highway"], "video": True,
                                  "max_fps": 5, "max_width": 800}))
        images, deadline = [], None
        while deadline is None or time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.recv(), 30)
            if isinstance(raw, str):
                continue
            n = struct.unpack(">I", raw[:4])[0]
            assert json.loads(raw[4:4 + n])["width"] == 800
            if deadline is None:  # the first frame: the client is watching now
                if put is not None:
                    await asyncio.to_thread(put)
                deadline = time.monotonic() + seconds
                continue
            images.append(cv2.imdecode(np.frombuffer(raw[4 + n:], np.uint8), cv2.IMREAD_COLOR))
        return images


def frames_after(port: int, seconds: float, put=None) -> list[np.ndarray]:
    """Video frames at 800 px for `seconds` from one client subscribed all along; `put` (a
    callable) runs once its first frame arrived: the frames after it returned. (In a thread
    of its own: Playwright's sync API holds this thread's event loop.)"""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _frames_after(port, seconds, put)).result(120)


def test_a_lane_put_while_watching_at_800_px_shows_in_the_video(served):
    base, port, stream, _, log = served
    scale = 800 / 1280
    before = (frames_after(port, 2.0))
    assert before and max(line_pixels(i, FIFTH["line"], scale, FIFTH_BGR) for i in before) < 0.2

    def put():
        body = json.dumps({**stream, "lanes": [*stream["lanes"], FIFTH]}).encode()
        request = urllib.request.Request(base + "/api/streams/highway", data=body,
                                         method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200

    after = (frames_after(port, 6.0, put))
    drawn = [line_pixels(i, FIFTH["line"], scale, FIFTH_BGR) for i in after]
    assert after and max(drawn) > 0.6, drawn  # the new lane, in its palette colour
    lanes = json.loads(http_get(base + "/api/streams/highway/lanes"))["lanes"]
    assert lanes[4]["name"] == "shoulder" and lanes[4]["color"] == "#c38bff"
    assert ("stream highway updated: 5 lane(s) (lane1, lane2, lane3, lane4, shoulder; added: "
            "shoulder, removed: none)") in log.read_text()


class InProcessService:
    """`Service.app()` on its own event loop in a thread, with a detector of our choosing."""

    def __init__(self, config, detector):
        self.port = config.server.port
        self.service = Service(config, detector=detector)
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        assert ready.wait(60), "the service did not start"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start():
            self._runner = web.AppRunner(self.service.app())
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def paced_service(tmp_path, detector_model, highway_video):
    """highway.mp4 paced like a camera (30 frames/s) against a box that detects 10 frames/s
    (PacedDetector) with the cadence fixed at every frame: the backlog fills, then frames are
    dropped (about two in three) and each waits its 2 s backlog: deterministic, whatever this
    machine's speed."""
    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.detect.factory import create_detector

    config = load_config(CONFIGS / "highway.yaml")
    stream = config.streams[0]
    stream = stream.model_copy(update={
        "source": str(highway_video),
        "source_options": stream.source_options.model_copy(update={"loop": True}),
        "detection": stream.detection.model_copy(update={"adaptive": False})})
    config = config.model_copy(update={
        "streams": [stream],
        "server": config.server.model_copy(update={"port": free_port()}),
        "store": config.store.model_copy(update={"path": str(tmp_path / "counts.db")})})
    detector = PacedDetector(create_detector(config.model), 3 / 29.97)
    served = InProcessService(config, detector)
    yield served.base
    served.stop()


def test_drop_rate_and_latency_warnings_of_a_box_over_capacity(paced_service, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(paced_service + "/")
    kinds = poll(page, "(document.getElementById('health').dataset.warnings || '')"
                       ".includes('drops') && document.getElementById('health')"
                       ".dataset.warnings", 60)
    assert "drops" in kinds.split(","), kinds
    text = page.locator("#h-warnings").inner_text()
    assert "high drop rate" in text and "warns above 5 %" in text, text
    assert page.evaluate("document.getElementById('h-drops').classList.contains('warn')")
    kinds = poll(page, "(document.getElementById('health').dataset.warnings || '')"
                       ".includes('latency') && document.getElementById('health')"
                       ".dataset.warnings", 60)
    assert "high latency" in page.locator("#h-warnings").inner_text()
    assert page.evaluate("document.getElementById('h-latency').classList.contains('warn')")
    assert errors == []
    page.close()
