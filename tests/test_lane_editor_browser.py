"""The lane editor in a real browser (issue 22): Debian's Chromium, headless, driven by
Playwright, against a running `lanewatch serve` on highway.mp4 (looping) started from a copy of
configs/highway.yaml, comments and all.

A lane drawn in the editor is applied to the running stream (after its diff) and appears in
the next live video frames; a destructive edit is undone; drawing a new polygon keeps the old
one until it is finished; the downloaded config keeps every comment of the file.
LANEWATCH_SCREENSHOTS=docs/img keeps docs/img/lane-editor.png."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import cv2
import pytest
import yaml

from conftest import ASSETS, CONFIGS
from rtsp import free_port
from serving import http_get, start_serve, stop_serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# The new lane's line lies on the verge (grass and guard rail, no traffic) at the bottom left;
# CONTROL runs beside it, 60 px lower, where nothing is drawn.
EDGE_LINE = [(20, 560), (150, 560)]
CONTROL = [(20, 620), (120, 620)]


@pytest.fixture(scope="module")
def served(tmp_path_factory, detector_model, highway_video):
    """`lanewatch serve` on configs/highway.yaml as written, its paths made absolute."""
    folder = tmp_path_factory.mktemp("lane-editor")
    port = free_port()
    text = (CONFIGS / "highway.yaml").read_text()
    text = text.replace("${LANEWATCH_ASSETS:-../../shared}", str(ASSETS))
    text = text.replace("loop: ${LANEWATCH_LOOP:-false}", "loop: true")
    text += f"\nserver: {{port: {port}}}\nstore: {{path: counts.db}}\n"
    path = folder / "highway.yaml"
    path.write_text(text)
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


def open_editor(browser, base):
    page = browser.new_page(viewport={"width": 1400, "height": 1150})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base + "/")
    poll(page, "document.getElementById('stream-picker').value === 'highway'")
    page.click("#tab-editor")
    poll(page, "Number(document.getElementById('editor').dataset.lanes) >= 4")
    box = page.locator("#editor").bounding_box()
    scale = box["width"] / 1280  # the canvas shows the 1280x720 frame

    def click(x, y):
        page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)

    return page, errors, click


def exported(page) -> tuple[list[dict], str]:
    """Export: the lanes of the YAML block, and the whole config's text."""
    page.evaluate("document.getElementById('ed-yaml').value = ''")
    page.click("#ed-export")
    text = poll(page, "document.getElementById('ed-yaml').value")
    whole = page.evaluate("""async () => {
        const link = document.getElementById('ed-download');
        return link.hidden ? null : await (await fetch(link.href)).text(); }""")
    return yaml.safe_load(text)["lanes"], whole


# Mean difference between the live video frame and the raw snapshot along a line (of the
# 1280x720 frame), the largest of the three rows around it at each of 24 points.
LINE_CONTRAST = """async ([line, control]) => {
    const img = document.getElementById('video');
    const w = img.naturalWidth, h = img.naturalHeight, k = w / 1280;
    const pixels = (source) => {
        const c = document.createElement('canvas');
        c.width = w; c.height = h;
        const g = c.getContext('2d');
        g.drawImage(source, 0, 0, w, h);
        return g.getImageData(0, 0, w, h).data;
    };
    const video = pixels(img);
    const snap = await createImageBitmap(await (await fetch(
        '/api/streams/highway/snapshot.jpg', {cache: 'no-store'})).blob());
    const raw = pixels(snap);
    const along = ([[x1, y1], [x2, y2]]) => {
        let sum = 0;
        for (let i = 0; i < 24; i++) {
            const x = Math.round((x1 + (x2 - x1) * (i + 0.5) / 24) * k);
            const y0 = Math.round((y1 + (y2 - y1) * (i + 0.5) / 24) * k);
            let best = 0;
            for (let y = y0 - 1; y <= y0 + 1; y++) {
                const o = 4 * (y * w + x);
                best = Math.max(best, Math.abs(video[o] - raw[o]) +
                    Math.abs(video[o + 1] - raw[o + 1]) + Math.abs(video[o + 2] - raw[o + 2]));
            }
            sum += best;
        }
        return sum / 24;
    };
    return [along(line), along(control)];
}"""


def test_a_drawn_lane_is_applied_to_the_running_stream_and_drawn_in_its_video(
        served, browser, tmp_path):
    base, _ = served
    page, errors, click = open_editor(browser, base)
    page.click("#ed-new")
    page.fill("#ed-name", "verge")
    page.click("#ed-line")
    click(*EDGE_LINE[1])  # drawn right to left: "in" would be up the image...
    click(*EDGE_LINE[0])
    page.click("#ed-flip")  # ...flipped: left to right, "in" is down the image like lane1-4
    page.click("#ed-apply")
    poll(page, "!document.getElementById('ed-apply-panel').hidden")
    diff = page.locator("#ed-diff").inner_text()
    assert diff.strip() == "+ verge: new lane", diff  # nothing else changes
    shot = tmp_path / "lane-editor.png"
    page.screenshot(path=str(shot))  # the editor with its arrows and the diff to confirm
    image = cv2.imread(str(shot))
    assert image is not None and cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).std() > 20
    keep_screenshot(shot)
    # Before the confirmation, the stream is untouched.
    lanes = json.loads(http_get(base + "/api/streams/highway/lanes"))["lanes"]
    assert [lane["name"] for lane in lanes] == ["lane1", "lane2", "lane3", "lane4"]
    page.click("#ed-confirm")
    message = poll(page, "document.getElementById('ed-message').textContent.startsWith("
                         "'applied') && document.getElementById('ed-message').textContent", 60)
    assert message == "applied to highway: +verge", message
    lanes = json.loads(http_get(base + "/api/streams/highway/lanes"))["lanes"]
    verge = next(lane for lane in lanes if lane["name"] == "verge")
    (x1, y1), (x2, y2) = verge["line"]  # flipped back to left -> right (clicks: +-2 px)
    assert abs(x1 - 20) <= 2 and abs(x2 - 150) <= 2 and abs(y1 - 560) <= 2, verge["line"]
    assert page.evaluate("document.getElementById('editor').dataset.lanes") == "5"
    # The next frames of the live video show the new line; nothing is drawn beside it.
    page.click("#tab-live")
    seen = int(poll(page, "Number(document.getElementById('video').dataset.frames || 0) >= 1 "
                          "&& document.getElementById('video').dataset.frames"))
    poll(page, f"Number(document.getElementById('video').dataset.frames) > {seen + 3}")
    on_line, beside = page.evaluate(LINE_CONTRAST, [EDGE_LINE, CONTROL])
    print(f"live frame vs snapshot: {on_line:.0f} along the new line, {beside:.0f} beside it")
    assert on_line > 60 and on_line > 3 * beside, (on_line, beside)
    assert errors == []
    page.close()


def test_drawing_keeps_the_old_polygon_undo_restores_and_the_download_keeps_comments(
        served, browser):
    base, config_path = served
    page, errors, click = open_editor(browser, base)
    original, _ = exported(page)
    lane2 = next(lane for lane in original if lane["name"] == "lane2")
    page.locator("#ed-lanes li", has_text="lane2").click()
    # "Draw polygon" keeps lane2's polygon until the new one is finished: export still works
    # (it used to fail with "congestion needs a polygon"), and Escape drops the drawing.
    page.click("#ed-polygon")
    click(600, 300)
    assert page.evaluate("document.getElementById('editor').dataset.drawing") == "polygon"
    lanes, _ = exported(page)
    assert next(lane for lane in lanes if lane["name"] == "lane2") == lane2
    page.keyboard.press("Escape")
    assert page.evaluate("document.getElementById('editor').dataset.drawing") == ""
    # A finished polygon replaces it, and a delete removes the lane: both undone.
    page.click("#ed-polygon")
    for x, y in [(600, 300), (700, 300), (650, 500)]:
        click(x, y)
    page.click("#ed-finish")
    page.click("#ed-delete")
    assert page.evaluate("document.getElementById('editor').dataset.lanes") == "4"
    lanes, _ = exported(page)
    assert "lane2" not in [lane["name"] for lane in lanes]
    page.locator("#editor").focus()
    page.keyboard.press("Control+z")  # the delete
    assert page.evaluate("document.getElementById('editor').dataset.lanes") == "5"
    lanes, _ = exported(page)
    drawn = next(lane for lane in lanes if lane["name"] == "lane2")["polygon"]
    assert all(abs(a - b) <= 2 for p, q in zip(drawn, [[600, 300], [700, 300], [650, 500]])
               for a, b in zip(p, q)), drawn  # the clicks land within 2 px
    page.click("#ed-undo")  # the new polygon
    lanes, whole = exported(page)
    assert lanes == original
    # The whole config is the served file as written: every comment, the same text outside
    # the lanes (the other test's lane is applied, so only `lanes:` may differ).
    written = config_path.read_text()
    for comment in re.findall(r"#.*", written):
        assert comment in whole, comment
    assert whole.split("    lanes:\n")[0] == written.split("    lanes:\n")[0]
    assert whole.split("    lanes:\n")[1].split("\n      - name: lane4")[0] == \
        written.split("    lanes:\n")[1].split("\n      - name: lane4")[0]
    assert errors == []
    page.close()
