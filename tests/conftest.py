"""Shared fixtures: where the real models and footage live (../shared or $LANEWATCH_ASSETS)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("LANEWATCH_ASSETS", REPO.parent / "shared")).resolve()
CONFIGS = REPO / "configs"


def asset(relative: str) -> Path:
    """Path of a shared asset; fails (never skips) when it is missing."""
    path = ASSETS / relative
    if not path.exists():
        pytest.fail(f"missing test asset {path}: set LANEWATCH_ASSETS to the shared folder")
    return path


@pytest.fixture(scope="session")
def detector_model() -> Path:
    return asset("models/yolo11n_int8_openvino_model")


@pytest.fixture(scope="session")
def segment_model() -> Path:
    return asset("models/yolo11n-seg_int8_openvino_model")


@pytest.fixture(scope="session")
def highway_video() -> Path:
    return asset("media/highway.mp4")


@pytest.fixture(scope="session")
def pedestrians_video() -> Path:
    return asset("media/pedestrians.mp4")


@pytest.fixture(scope="session")
def highway_run(tmp_path_factory, highway_video):
    """The README's main job on highway.mp4, run once through the installed console script:
    (output folder, completed process)."""
    exe = shutil.which("lanewatch")
    assert exe, "the `lanewatch` console script is not installed (pip install -e .)"
    out = tmp_path_factory.mktemp("highway")
    proc = subprocess.run(
        [exe, "process", str(highway_video), "-c", str(CONFIGS / "highway.yaml"), "-o", str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc


@pytest.fixture(scope="session")
def pedestrians_run(tmp_path_factory, pedestrians_video):
    """configs/pedestrians.yaml's review of pedestrians.mp4, run once in-process:
    (output folder, ReviewResult)."""
    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.pipeline.review import review_video

    out = tmp_path_factory.mktemp("pedestrians")
    config = load_config(CONFIGS / "pedestrians.yaml")
    return out, review_video(pedestrians_video, config, out, progress=False)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download). Module scope:
    while Playwright's sync API runs, it owns an event loop on the main thread, and the other
    modules' asyncio.run() would fail."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed: run install.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's package) for the session, on a loopback port."""
    from postgres import start_postgres
    from rtsp import free_port

    server = start_postgres(free_port())
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a count store lives: a SQLite file, or a fresh database on the real PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "c.db"
    return request.getfixturevalue("postgres").new_database()
