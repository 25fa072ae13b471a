"""Helpers for tests that run `lanewatch serve` as a real process on loopback."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import yaml

# Stream settings for highway.mp4 services: speeds from configs/highway.yaml's calibration,
# and one turning movement, from the far end of the carriageway to its near end (YAML, indented
# to follow a stream's keys).
_HIGHWAY_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "highway.yaml"
_HIGHWAY = yaml.safe_load(_HIGHWAY_CONFIG.read_text())["streams"][0]
TRAFFIC = textwrap.indent(yaml.safe_dump({
    "calibration": _HIGHWAY["calibration"],
    "turning": {"zones": [{"name": "far", "polygon": [[470, 100], [850, 100], [880, 200],
                                                      [440, 200]]},
                          {"name": "near", "polygon": [[200, 350], [1100, 350], [1250, 700],
                                                       [50, 700]]}],
                "movements": [{"name": "southbound", "from": "far", "to": "near"}]},
}, default_flow_style=None), "    ")


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (connection errors count false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False


def http_get(url: str, timeout: float = 10, token: str | None = None) -> str:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels) -> float | None:
    """Value of one sample in a Prometheus exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def frames_total(base: str) -> float:
    """Frames processed by all streams together."""
    found = re.findall(r'^lanewatch_frames_total\{stream="[^"]+"\} (\S+)$',
                       http_get(base + "/metrics"), re.M)
    return sum(float(v) for v in found)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def write_serve_config(tmp_path: Path, model: Path, port: int, streams: str) -> Path:
    """A `serve` config in tmp_path: the model counting vehicles, the server on `port`, the
    store beside it, and `streams` (the YAML of the streams list's items, dedented)."""
    config = tmp_path / "serve.yaml"
    config.write_text(textwrap.dedent(f"""\
        model: {{path: {model}, classes: [car, truck, bus, motorcycle]}}
        server: {{port: {port}}}
        store: {{path: {tmp_path / 'counts.db'}}}
        streams:
    """) + textwrap.indent(textwrap.dedent(streams).strip("\n"), "  ") + "\n")
    return config


def start_serve(config: Path, port: int, log: Path, token: str | None = None,
                args: tuple[str, ...] = ()) -> tuple[str, subprocess.Popen]:
    """Start `lanewatch serve -c config [args]` (listening on `port`); returns (base URL,
    process) once /healthz answers (with `token` when health checks are protected), failing
    with the server's log if it does not come up."""
    out = open(log, "a")
    process = subprocess.Popen([shutil.which("lanewatch"), "serve", "-c", str(config), *args],
                               stdout=out, stderr=subprocess.STDOUT)
    out.close()  # the child keeps its own handle
    base = f"http://127.0.0.1:{port}"
    up = wait_for(lambda: process.poll() is None
                  and http_get(base + "/healthz", token=token) is not None, timeout=120)
    assert up and process.poll() is None, log.read_text()[-3000:]
    return base, process


def stop_serve(process: subprocess.Popen) -> int | None:
    """SIGTERM (graceful), then SIGKILL after 30 s; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def start_prometheus(folder: Path, target: str, rule_files: list[Path] = ()
                     ) -> tuple[str, subprocess.Popen]:
    """A real Prometheus (Debian's package) scraping `target` (host:port) every second, with
    its data in `folder`; returns (base URL, process)."""
    exe = shutil.which("prometheus")
    assert exe, "Prometheus is not installed: run install.sh"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{', '.join(str(f) for f in rule_files)}]\n"
        "scrape_configs:\n"
        f"  - {{job_name: lanewatch, static_configs: [{{targets: ['{target}']}}]}}\n")
    process = subprocess.Popen(
        [exe, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"http://127.0.0.1:{port}", process


# -- a WebSocket client that misbehaves on purpose: it subscribes and then never reads, with a
# tiny receive buffer, so the server's sends to it block (a stalled phone on a dead network).
def masked_text_frame(text: str) -> bytes:
    """One masked (client-to-server) WebSocket text frame, FIN set."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def stalled_client(port: int, subscribe: dict, token: str | None = None) -> socket.socket:
    """Connect to ws://127.0.0.1:port/ws, send `subscribe`, and return the socket, which the
    caller must never read (close it at the end of the test)."""
    sock = socket.socket()
    # Set before connect so that the TCP window stays small: the server's buffers fill fast.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(1024)
        assert chunk, "the server closed the connection during the handshake"
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 101"), reply[:200]
    sock.sendall(masked_text_frame(json.dumps(subscribe)))
    return sock
