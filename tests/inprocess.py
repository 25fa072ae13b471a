"""`lanewatch serve` in-process for fast API and WebSocket tests: the real `Service` and its
aiohttp application on a loopback test server, a stub detector (no model is loaded) and one
short generated video as the camera, which has ended (state `stopped`) by the time the tests
start, so nothing competes with them for the CPU."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from lanewatch.stream.config.loading import parse_config
from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.stream.serve.service import Service
from lanewatch.trackers.detections import Detections

from videos import write_video

STREAM = "cam"
FRAME_SIZE = (320, 240)


class StubDetector(DetectorDefaults):
    """Finds nothing, instantly: the routes under test never depend on detections."""

    class_names = {0: "car"}
    task = "detect"

    def detect(self, image, imgsz: int | None = None) -> Detections:
        return Detections.empty(self.class_names)

    def detect_batch(self, images, imgsz: int | None = None) -> list[Detections]:
        return [self.detect(image) for image in images]

    def check_input_size(self, imgsz: int) -> None:
        pass


def config_data(tmp_path: Path, server: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config tree: one stream `cam` on a 10-frame 320x240 video, one counting line."""
    video = tmp_path / "cam.mp4"
    if not video.exists():
        write_video(video, frames=10, size=FRAME_SIZE)
    return {"model": {"path": "stub.pt"},
            "server": server or {},
            "store": {"path": str(tmp_path / "counts.db")},
            "streams": [{"id": STREAM, "source": str(video),
                         "lanes": [{"name": "l1", "line": [[10, 120], [310, 120]]}]}]}


@contextlib.asynccontextmanager
async def served(tmp_path: Path, server: dict[str, Any] | None = None,
                 ) -> AsyncIterator[tuple[Service, TestClient]]:
    """A started service and an aiohttp test client for it; `cam` has its frame size."""
    config = parse_config(config_data(tmp_path, server))
    service = Service(config, detector=StubDetector())
    client = TestClient(TestServer(service.app()))
    await client.start_server()
    try:
        deadline = time.monotonic() + 30
        while service.runners[STREAM].frame_size is None:
            assert time.monotonic() < deadline, "the test video never reached the pipeline"
            await asyncio.sleep(0.05)
        yield service, client
    finally:
        await client.close()
