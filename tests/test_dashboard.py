"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
a running `lanewatch serve` on highway.mp4 (paced like a camera, looping).

Set LANEWATCH_SCREENSHOTS to a folder to keep the screenshots (docs/img holds the ones in
the deployment guide)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import CONFIGS
from rtsp import free_port
from serving import start_serve, stop_serve

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
    # The flow chart draws a line per lane, with the crossings in it.
    assert poll(page, "Number(document.getElementById('flow').dataset.max) >= 1 && "
                      "Number(document.getElementById('flow').dataset.points) >= 4 * 30", 10)
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
    shot = tmp_path / "lane-editor.png"
    page.screenshot(path=str(shot))
    assert_not_blank(shot)
    keep_screenshot(shot)

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
