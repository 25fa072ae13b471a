"""SIGTERM on a real `lanewatch serve` while a WebSocket client has stopped reading: the
service still exits with code 0 within its documented shutdown time-out, and the clients that
do read get close code 1001 (going away). Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import websockets

from lanewatch.stream.serve.service import SHUTDOWN_TIMEOUT_S

from rtsp import free_port
from serving import (
    frames_total,
    stalled_client,
    start_serve,
    stop_serve,
    wait_for,
    write_serve_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXIT_SLACK_S = 3.0  # interpreter tear-down after the shutdown proper (OpenVINO, logging)


def write_config(tmp_path, detector_model, video, port) -> object:
    return write_serve_config(tmp_path, detector_model, port, f"""
        - id: highway
          source: {video}
          source_options: {{loop: true}}
          lanes: [{{name: lane3, line: [[654, 250], [790, 250]], direction: in}}]
    """)


def test_sigterm_with_a_client_that_never_reads(tmp_path, detector_model, highway_video):
    port = free_port()
    config = write_config(tmp_path, detector_model, highway_video, port)
    base, process = start_serve(config, port, tmp_path / "serve.log")
    stalled = None
    try:
        assert wait_for(lambda: frames_total(base) > 10, 90)
        video = {"type": "subscribe", "streams": "*", "video": True, "max_fps": 30,
                 "max_width": 4096}
        stalled = stalled_client(port, video)

        async def normal_client():
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps(video))
                frames = 0
                started = time.monotonic()
                # Read for a while: the stalled client's buffers fill meanwhile.
                while time.monotonic() - started < 8:
                    if isinstance(await asyncio.wait_for(ws.recv(), 10), bytes):
                        frames += 1
                assert frames > 0, "no video reached the reading client"
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), SHUTDOWN_TIMEOUT_S + 30)
                return closed.value.rcvd, signalled

        rcvd, signalled = asyncio.run(normal_client())
        closed_after = time.monotonic() - signalled
        assert rcvd is not None and rcvd.code == 1001, (
            f"the reading client got {rcvd} after {closed_after:.1f} s, not 1001")
        assert closed_after < SHUTDOWN_TIMEOUT_S, (
            f"the reading client was closed {closed_after:.1f} s after SIGTERM")
        try:
            code = process.wait(max(SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S
                                    - (time.monotonic() - signalled), 0.1))
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: report it plainly
            pytest.fail(f"still running {time.monotonic() - signalled:.0f} s after SIGTERM "
                        f"(documented shutdown time-out {SHUTDOWN_TIMEOUT_S} s)\n"
                        + (tmp_path / "serve.log").read_text()[-2000:])
        assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        if stalled is not None:
            stalled.close()
        stop_serve(process)
