"""Start and stop the real RTSP server of rtsp_server.py from tests (loopback only)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gi (install.sh installs it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """A GStreamer RTSP server process serving one file at rtsp://127.0.0.1:PORT/stream."""

    def __init__(self, video: Path, port: int | None = None, once: bool = False):
        self.video, self.port = video, port or free_port()
        self.once = once  # exit after playing the file to its end once
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self, timeout: float = 20) -> RtspServer:
        if not Path(SYSTEM_PYTHON).exists():
            pytest.fail("Debian's python3 with python3-gi is needed: run install.sh")
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.video), str(self.port)]
            + (["--once"] if self.once else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()  # "ready" once listening
        if line.strip() != "ready" or time.monotonic() > deadline:
            err = self.process.stderr.read() if self.process.poll() is not None else ""
            self.kill()
            pytest.fail(f"RTSP server did not start: {line!r} {err[-1500:]} "
                        "(are gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins installed?)")
        return self

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing its sessions, like a crashed camera."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
