"""`lanewatch count` in a real browser (Debian's Chromium, headless, Playwright), keyboard only:
the hand count of highway.mp4 (tests/data/highway_manual.csv) made again on the page, saved
(download and --output), and checked with `lanewatch validate` against the review."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
from collections import Counter

import pytest

from lanewatch.sinks.manual_count_csv import ManualEntry, manual_count_csv

from conftest import CONFIGS, REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MANUAL = REPO / "tests" / "data" / "highway_manual.csv"
LANE_KEYS = {"lane1": "1", "lane2": "2", "lane3": "3", "lane4": "4"}  # the board's order


def rows(text: str) -> list[list[str]]:
    """The CSV's rows after the header, comments left out."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [r for r in csv.reader(lines)][1:]


@pytest.fixture(scope="module")
def counting(tmp_path_factory, highway_video):
    """`lanewatch count` on highway.mp4 with --output, on a free loopback port: (URL, CSV).
    Stopped with SIGTERM at the end, which must exit 0."""
    folder = tmp_path_factory.mktemp("count")
    output = folder / "saved.csv"
    process = subprocess.Popen(
        [shutil.which("lanewatch"), "count", str(highway_video), "-c",
         str(CONFIGS / "highway.yaml"), "--output", str(output), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = process.stdout.readline()  # printed once listening (flushed)
        assert line.startswith("lanewatch count: http://127.0.0.1:"), (
            line + process.stderr.read() if process.poll() is not None else line)
        yield line.split()[2], output
        process.terminate()
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def status(page) -> dict:
    return page.evaluate("({...document.getElementById('status').dataset})")


def wait_shown(page, frame: int) -> None:
    page.wait_for_function(
        f"document.getElementById('status').dataset.frame === '{frame}'", timeout=15000)


def step_to(page, current: int, frame: int) -> None:
    """From `current` to `frame` with the arrow keys: Shift for tens, then single frames."""
    delta = frame - current
    key = "ArrowRight" if delta > 0 else "ArrowLeft"
    for _ in range(abs(delta) // 10):
        page.keyboard.press(f"Shift+{key}")
    for _ in range(abs(delta) % 10):
        page.keyboard.press(key)
    wait_shown(page, frame)


def test_count_highway_by_keyboard_save_and_validate(counting, browser, highway_run, tmp_path):
    base, output = counting
    expected = rows(MANUAL.read_text())
    page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base)
    wait_shown(page, 0)
    assert page.locator("#keymap tbody tr").count() == 4
    assert page.evaluate("document.getElementById('classes').dataset.current") == "car"

    current = 0
    for i, (time_s, frame, lane, _, cls) in enumerate(expected):
        step_to(page, current, int(frame))
        current = int(frame)
        assert status(page)["target"] == frame
        assert f"frame {frame} / 334 · {time_s} s" in page.locator("#status").inner_text()
        if i == 0:  # a wrong lane, undone
            page.keyboard.press("1")
            assert page.evaluate("document.getElementById('tally').dataset.total") == "1"
            page.keyboard.press("Backspace")
        if i == 3:  # another wrong one, undone with Ctrl+Z
            page.keyboard.press("2")
            page.keyboard.press("Control+z")
        if i == 5:  # a class switch and back
            page.keyboard.press("t")
            assert page.evaluate("document.getElementById('classes').dataset.current") == \
                "truck"
            page.keyboard.press("c")
        assert page.evaluate("document.getElementById('classes').dataset.current") == cls
        page.keyboard.press(LANE_KEYS[lane])
    # The tally: per lane, direction and class, and the total.
    assert page.evaluate("document.getElementById('tally').dataset.total") == str(len(expected))
    tally = page.evaluate("""Object.fromEntries(
        [...document.querySelectorAll('#tally td[data-key]')]
        .map((td) => [td.dataset.key, Number(td.dataset.n)]))""")
    by_key = Counter(f"{lane}|{direction}|{cls}" for _, _, lane, direction, cls in expected)
    assert {k: v for k, v in tally.items() if v} == dict(by_key)
    assert page.locator("#entries li").count() == len(expected)

    # Save with the keyboard: the browser downloads the CSV and the server writes --output.
    with page.expect_download(timeout=10000) as download:
        page.keyboard.press("Control+s")
    downloaded = tmp_path / "downloaded.csv"
    download.value.save_as(downloaded)
    page.wait_for_function(
        f"document.getElementById('save-status').dataset.saved === '{len(expected)}'",
        timeout=10000)
    assert rows(downloaded.read_text()) == expected
    assert output.read_text() == downloaded.read_text()  # the same text, comments included
    assert downloaded.read_text().startswith("# counted by hand with lanewatch count on ")

    # An entry in the list seeks to its frame.
    page.locator("#entries li", has_text="236 ·").click()
    wait_shown(page, 236)
    assert errors == []
    page.close()

    # Another browser (nothing in its storage) goes on from the --output file.
    other = browser.new_page()
    other.goto(base)
    other.wait_for_function(
        f"document.getElementById('tally').dataset.total === '{len(expected)}'", timeout=10000)
    assert "read from" in other.locator("#message").inner_text()
    other.close()

    # `lanewatch validate` on the review of the same clip: every vehicle matched.
    run_dir, _ = highway_run
    result = tmp_path / "validation.json"
    proc = subprocess.run(
        [shutil.which("lanewatch"), "validate", str(run_dir), str(output), "--json", str(result),
         "--html", str(tmp_path / "validation.html"), "--thumbnails", "0", "--min-recall", "1",
         "--min-precision", "1"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(result.read_text())["overall"]
    assert (figures["manual"], figures["automatic"], figures["matched"]) == (11, 11, 11)
    assert figures["precision"] == 1.0 and figures["recall"] == 1.0


def test_play_at_four_times_then_pause(counting, browser):
    base, _ = counting
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base)
    wait_shown(page, 0)
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.locator("#speed").input_value() == "4"
    page.keyboard.press("Space")
    page.wait_for_function("document.getElementById('status').dataset.playing === 'true'",
                           timeout=5000)
    # Frames advance one by one while playing (how fast depends on the box: not asserted),
    # half size while playing fast.
    page.wait_for_function("Number(document.getElementById('status').dataset.frame) >= 15 "
                           "&& document.getElementById('status').dataset.reduced === 'true'",
                           timeout=20000)
    page.keyboard.press("Space")
    page.wait_for_function("document.getElementById('status').dataset.playing === 'false'",
                           timeout=5000)
    paused = int(status(page)["frame"])
    # The frame paused on is shown full size.
    page.wait_for_function("document.getElementById('status').dataset.reduced === 'false'",
                           timeout=10000)
    assert 15 <= paused <= 334
    time.sleep(0.5)
    assert int(status(page)["frame"]) == paused  # paused: stays (full size, same frame)
    assert status(page)["target"] == str(paused)
    # Stepping after the pause goes on from the frame shown.
    page.keyboard.press("ArrowLeft")
    wait_shown(page, paused - 1)
    # A count key held down (auto-repeat) counts once.
    total = int(page.evaluate("document.getElementById('tally').dataset.total"))
    page.keyboard.down("2")
    page.keyboard.down("2")  # repeat
    page.keyboard.up("2")
    assert int(page.evaluate("document.getElementById('tally').dataset.total")) == total + 1
    assert errors == []
    page.close()


def test_page_csv_is_the_servers_text_for_odd_names(counting, browser):
    """The download is written by count_csv.js, the --output file by manual_count_csv: the same
    text, also for names a CSV must quote, and rows in frame order, then counting order."""
    base, _ = counting
    meta = {"comments": ["on a.mp4\nsecond line"], "times": ["0.000", "0.033", "0.067"]}
    entries = [(2, "lane,odd", "in", 'say "car"'), (0, " padded", "out", "car"),
               (2, "lane2", "in", "car"), (1, "lane3", "in", "bus")]
    page = browser.new_page()
    page.goto(base)
    text = page.evaluate("""async ([meta, entries]) => {
        const { csvText } = await import('/static/count_csv.js');
        return csvText(meta, entries.map(([frame, lane, direction, cls]) =>
                                         ({ frame, lane, direction, class: cls })));
    }""", [meta, entries])
    page.close()
    expected = manual_count_csv(
        [ManualEntry(f, meta["times"][f], lane, d, c) for f, lane, d, c in entries],
        meta["comments"])
    assert text == expected
    assert rows(text)[0] == ["0.000", "0", " padded", "out", "car"]
