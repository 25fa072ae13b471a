"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
a running `lanewatch serve` on highway.mp4 (paced like a camera, looping).

Set LANEWATCH_SCREENSHOTS to a folder to keep the screenshots (docs/img holds the ones in
the deployment guide)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import CONFIGS
from rtsp import free_port
from serving import http_get, start_serve, stop_serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

@pytest.fixture(scope="module")
def served(tmp_path_factory, detector_model, highway_video):
    folder = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    config = yaml.safe_load((CONFIGS / "highway.yaml").read_text())
    config["model"]["path"] = str(detector_model)
    config["server"] = {"port": port}
    config["store"] = {"path": "counts.db"}
    config["streams"][0]["source"] = str(highway_video)
    config["streams"][0]["source_options"] = {"loop": True}
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    base, process = start_serve(path, port, folder / "serve.log")
    yield base, path
    stop_serve(process)


def poll(page, expression, timeout_s=30.0):
    """Wait until a JavaScript expression is truthy in the page; returns its value."""
    page.wait_for_function(expression, timeout=timeout_s * 1000)
    return page.evaluate(expression)


def keep_screenshot(path: Path) -> None:
    folder = os.environ.get("LANEWATCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def assert_not_blank(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 600
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert gray.std() > 20, "the screenshot is (almost) one colour"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # video, text, chart lines


def test_live_dashboard_video_counts_chart_and_health(served, browser, tmp_path):
    base, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    # The video updates: frames keep arriving and the image has real pixels.
    first = int(poll(page, "Number(document.getElementById('video').dataset.frames || 0) >= 3"
                     " && document.getElementById('video').dataset.frames"))
    assert poll(page, f"Number(document.getElementById('video').dataset.frames) > {first + 5}")
    assert page.evaluate("document.getElementById('video').naturalWidth") > 300
    # Counts render, one row per lane, and grow as vehicles cross.
    assert page.locator("#counts tbody tr").count() == 4
    total = int(poll(page, "document.getElementById('counts').dataset.total"))
    assert poll(page, f"Number(document.getElementById('counts').dataset.total) > {total}", 60)
    assert "car towards" in page.locator("#counts tbody").inner_text()
    # The flow chart draws a line per lane, with the crossings in it (from the service's
    # start: a bin or two, not the whole window; tests/test_dashboard_overlays.py).
    assert poll(page, "Number(document.getElementById('flow').dataset.max) >= 1 && "
                      "Number(document.getElementById('flow').dataset.points) >= 4", 10)
    per_series = page.evaluate("""() => {
        const c = document.getElementById('flow');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colors = [[63, 167, 255], [255, 184, 77], [76, 208, 125], [255, 92, 92]];
        const n = colors.map(() => 0);  // pixels drawn in each lane's colour
        for (let i = 0; i < d.length; i += 4)
            colors.forEach(([r, g, b], k) => {
                if (Math.abs(d[i] - r) + Math.abs(d[i+1] - g) + Math.abs(d[i+2] - b) < 30) n[k]++;
            });
        return n; }""")
    # Lanes without crossings yet lie on the baseline, under the last one drawn.
    assert sum(n > 20 for n in per_series) >= 2, per_series
    # Stream health.
    assert poll(page, "document.getElementById('h-state').textContent === 'running'")
    assert "frames/s" in poll(page, "document.getElementById('h-fps').textContent.includes("
                                    "'frames/s') && document.getElementById('h-fps').textContent")
    assert "ms" in page.locator("#h-latency").inner_text()
    assert page.locator("#connection").inner_text() == "live"
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot))
    assert_not_blank(shot)
    keep_screenshot(shot)
    assert errors == []
    page.close()


def test_lane_editor_draws_a_lane_and_exports_yaml_that_check_config_accepts(
        served, browser, tmp_path):
    base, config_path = served
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    poll(page, "document.getElementById('stream-picker').value === 'highway'")
    page.click("#tab-editor")
    assert poll(page, "document.getElementById('editor').dataset.lanes === '4'")
    canvas = page.locator("#editor")
    box = canvas.bounding_box()
    scale = box["width"] / 1280  # the canvas shows the 1280x720 frame

    def click(x, y):
        page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)

    page.click("#ed-new")
    page.fill("#ed-name", "shoulder")
    page.click("#ed-polygon")
    for x, y in [(830, 130), (880, 130), (1240, 650), (1180, 700)]:
        click(x, y)
    page.click("#ed-finish")
    page.click("#ed-line")
    click(900, 300)
    click(960, 300)
    page.select_option("#ed-direction", "in")
    # Drag the polygon's last corner a little (editing, not only drawing).
    page.mouse.move(box["x"] + 1180 * scale, box["y"] + 700 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 1150 * scale, box["y"] + 690 * scale, steps=4)
    page.mouse.up()
    page.click("#ed-export")
    lanes_yaml = poll(page, "document.getElementById('ed-yaml').value.includes('shoulder')"
                            " && document.getElementById('ed-yaml').value")
    lanes = yaml.safe_load(lanes_yaml)["lanes"]
    shoulder = next(lane for lane in lanes if lane["name"] == "shoulder")
    assert shoulder["direction"] == "in" and len(shoulder["polygon"]) == 4
    assert abs(shoulder["polygon"][3][0] - 1150) <= 6 and abs(shoulder["line"][0][1] - 300) <= 6
    assert [lane["name"] for lane in lanes] == ["lane1", "lane2", "lane3", "lane4", "shoulder"]
    whole = page.evaluate("""async () => {
        const link = document.getElementById('ed-download');
        return link.hidden ? null : await (await fetch(link.href)).text(); }""")
    assert whole is not None
    exported = config_path.with_name("exported.yaml")  # beside the original: same relative paths
    exported.write_text(whole)
    check = subprocess.run([shutil.which("lanewatch"), "check-config", str(exported)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "shoulder" in check.stdout
    shot = tmp_path / "lane-editor-export.png"  # docs' lane-editor.png: test_lane_editor_browser
    page.screenshot(path=str(shot))
    assert_not_blank(shot)

    # An invalid lane (a line with both ends on one point) gets the server's clear message.
    page.click("#ed-new")
    page.click("#ed-line")
    click(100, 100)
    click(100, 100)
    page.click("#ed-export")
    message = poll(page, "document.getElementById('ed-message').className === 'error' && "
                         "document.getElementById('ed-message').textContent")
    assert "line needs two distinct points" in message
    assert errors == []
    page.close()


# -- counting reliability (issue 18) -------------------------------------------------------------
COUNTING = """() => {
    const box = document.getElementById('h-counting');
    const badge = document.getElementById('h-counting-badge');
    return {hidden: box.hidden, visible: box.checkVisibility(), reliable: box.dataset.reliable,
            badge: badge.innerText, reason: document.getElementById('h-counting-reason').innerText,
            title: box.title, color: getComputedStyle(badge).color,
            cadence: document.getElementById('h-cadence').innerText,
            rows: [...document.querySelectorAll('.counting-row')].map(e => e.checkVisibility())};
}"""
RED, GREEN = "rgb(255, 92, 92)", "rgb(76, 208, 125)"  # style.css --bad, --ok


def test_counting_badge_reads_exact_for_a_stream_that_keeps_up(served, browser):
    base, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    # The verdict on frames processed (before the first frame it is trivially exact).
    poll(page, "Number(document.getElementById('video').dataset.frames || 0) >= 3")
    poll(page, "/\\(([1-9]\\d*) frames\\)/.test(document.getElementById('h-cadence').innerText)")
    try:
        # Up to 100 s: a transient gap (start-up, an earlier test) leaves the 60 s window
        poll(page, "document.getElementById('h-counting').dataset.reliable === 'true'", 100)
    except PlaywrightTimeout:  # the page follows the server: say what the server says
        status = json.loads(http_get(base + "/api/streams/highway"))
        pytest.fail("the stream's counts are not exact on this box now (a box this busy "
                    f"cannot keep up with one camera): {status['counting_reason']}")
    shown = page.evaluate(COUNTING)
    assert shown["visible"] and shown["badge"] == "counting exact", shown
    assert shown["color"] == GREEN and "UNRELIABLE" not in shown["badge"]
    assert shown["reason"] == ""  # nothing to explain
    assert "limit 0.34 s" in shown["title"]  # detection.max_gap_s's default, in the tooltip
    assert shown["rows"] == [True, True]
    assert re.fullmatch(r"model on every (frame|\d+(st|nd|rd|th) frame) · \d+ % of frames seen "
                        r"\(last minute\) · largest gap \d+\.\d\d s \(\d+ frames\), limit "
                        r"0\.34 s", shown["cadence"]), shown["cadence"]
    status = json.loads(http_get(base + "/api/streams/highway"))
    assert status["counting_reliable"] is True and status["counting_reason"] is None
    assert errors == []
    page.close()


def test_counting_badge_is_hidden_when_the_server_does_not_say(served, browser):
    """An older server (or a cluster gateway) sends stats without the counting fields: the
    page shows neither a badge nor a guess. The real server's messages, with those fields cut
    out on the way to the page."""
    base, _ = served
    fields = ("counting_reliable", "counting_reason", "cadence", "processed_fraction",
              "largest_gap_s", "largest_gap_frames", "gap_limit_s")
    stats_seen = []

    def strip(message):
        if isinstance(message, str):
            data = json.loads(message)
            if data.get("type") == "stats":
                stats_seen.append(data)
                message = json.dumps({k: v for k, v in data.items() if k not in fields})
        return message

    def relay(ws):
        server = ws.connect_to_server()
        server.on_message(lambda message: ws.send(strip(message)))

    def old_detail(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={k: v for k, v in answer.json().items()
                                             if k not in fields})

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.route_web_socket(re.compile(r"/ws"), relay)
    page.route(re.compile(r"/api/streams/highway$"), old_detail)
    page.goto(base + "/")
    assert poll(page, "document.getElementById('h-state').textContent === 'running'")
    page.wait_for_function("document.getElementById('video').dataset.frames >= 3")
    deadline = time.monotonic() + 30
    while len(stats_seen) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    page.wait_for_timeout(500)  # the page has handled them
    assert stats_seen and "counting_reliable" in stats_seen[-1]  # the real server says it
    shown = page.evaluate(COUNTING)
    assert shown["hidden"] and not shown["visible"] and shown["reliable"] is None, shown
    assert shown["rows"] == [False, False]
    assert errors == []
    page.close()


@pytest.fixture
def overloaded(tmp_path, detector_model, highway_video):
    """A service whose stream's detections are further apart than its limit: the model on
    every 3rd frame (0.1 s) against an exactness limit of 0.05 s."""
    port = free_port()
    config = yaml.safe_load((CONFIGS / "highway.yaml").read_text())
    config["model"]["path"] = str(detector_model)
    config["server"] = {"port": port}
    config["store"] = {"path": "counts.db"}
    config["streams"][0]["source"] = str(highway_video)
    config["streams"][0]["source_options"] = {"loop": True}
    config["streams"][0]["detection"] = {"every_nth_frame": 3, "max_gap_s": 0.05}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    base, process = start_serve(path, port, tmp_path / "serve.log")
    yield base
    stop_serve(process)


def test_counting_badge_warns_when_detections_are_too_far_apart(overloaded, browser, tmp_path):
    base = overloaded
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    assert poll(page, "document.getElementById('h-counting').dataset.reliable === 'false'", 60)
    shown = page.evaluate(COUNTING)
    assert shown["visible"] and shown["badge"] == "counting UNRELIABLE", shown
    assert shown["color"] == RED
    # The reason, visible and as the tooltip: the server's own words, naming the limit.
    assert "exactness limit of 0.05 s" in shown["reason"], shown["reason"]
    assert shown["title"] == shown["reason"]
    status = json.loads(http_get(base + "/api/streams/highway"))
    assert status["counting_reliable"] is False and "0.05 s" in status["counting_reason"]
    assert status["cadence"] >= 3
    cadence = int(re.match(r"model on every (\d+)(st|nd|rd|th) frame · ", shown["cadence"])[1])
    assert cadence >= 3, shown["cadence"]
    assert re.search(r"· \d+ % of frames seen \(last minute\) · largest gap \d+\.\d\d s "
                     r"\(\d+ frames\), limit 0\.05 s$", shown["cadence"]), shown["cadence"]
    shot = tmp_path / "counting-unreliable.png"
    page.locator(".side .card").first.screenshot(path=str(shot))
    keep_screenshot(shot)
    assert errors == []
    page.close()
