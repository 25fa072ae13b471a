"""Cluster mode on a local Ray instance (2 CPUs) with a real PostgreSQL store: two stream actors
behind an in-process gateway; one actor's process is killed, Ray restarts it, its counts resume
from PostgreSQL, and the gateway serves the other stream without a gap all along. Every wait is
bounded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time

import psutil
import pytest
from aiohttp import web
from websockets.sync.client import connect as ws_connect

from lanewatch.sinks.store import CountStore
from lanewatch.sinks.websocket import parse_frame_message
from lanewatch.stream.config.loading import parse_config
from lanewatch.stream.serve.service import Service

from rtsp import free_port
from serving import http_get, wait_for

CLASSES = ["car", "truck", "bus", "motorcycle"]
LANE = {"name": "lane3", "line": [[654, 250], [790, 250]], "direction": "in"}


def cluster_config(model, video, store_url: str, port: int, streams=("a", "b")):
    return parse_config({
        "model": {"path": str(model), "classes": CLASSES},
        "server": {"port": port}, "store": {"url": store_url}, "cluster": {"enabled": True},
        "streams": [{"id": s, "source": str(video), "source_options": {"loop": True},
                     "lanes": [LANE]} for s in streams]})


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_serve_cluster_local_from_the_command_line(postgres, detector_model, highway_video,
                                                  tmp_path):
    """`lanewatch serve --cluster local --store postgresql://...`: a Ray instance in the serve
    process, the stream as an actor; SIGTERM stops everything (exit 0, no actor left behind).
    Runs before this module's other Ray instance exists."""
    import subprocess
    import textwrap

    from serving import start_serve, stop_serve

    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, classes: [car, truck, bus, motorcycle]}}
        server: {{port: {port}}}
        streams:
          - id: a
            source: {highway_video}
            source_options: {{loop: true}}
            lanes: [{{name: lane3, line: [[654, 250], [790, 250]], direction: in}}]
    """))
    log = tmp_path / "serve.log"
    base, process = start_serve(config, port, log,
                                args=("--cluster", "local", "--store", postgres.new_database()))
    try:
        def status():
            return json.loads(http_get(base + "/api/streams/a"))
        assert wait_for(lambda: status()["state"] == "running"
                        and status()["frames_processed"] > 10, 180), log.read_text()[-3000:]
        assert status()["worker"]["pid"] != process.pid  # the pipeline is not in serve
    finally:
        code = stop_serve(process)
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    left = subprocess.run(["pgrep", "-f", "ray::StreamActor"], capture_output=True, text=True)
    assert wait_for(lambda: subprocess.run(["pgrep", "-f", "ray::StreamActor"],
                                           capture_output=True).returncode == 1, 30), left.stdout


class Gateway:
    """`Service.app()` served on its own event loop in a thread (the Ray driver is this test
    process, as `ray.init` must be inside the test)."""

    def __init__(self, model, video, store_url: str, streams=("a", "b")):
        self.port = port = free_port()
        self.store_url = store_url
        self.service = Service(cluster_config(model, video, store_url, port, streams))
        self.base = f"http://127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        assert ready.wait(60), "the gateway did not start"

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
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
        future.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def status(self, stream: str) -> dict:
        return json.loads(http_get(f"{self.base}/api/streams/{stream}"))

    def metric(self, name: str, stream: str) -> float:
        """The sum of a metric's series of one stream."""
        found = re.findall(rf'^{name}{{[^}}]*stream="{stream}"[^}}]*}} (\S+)$',
                           http_get(f"{self.base}/metrics"), re.M)
        return sum(map(float, found))


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_killed_stream_actor_is_restarted_and_resumes_its_counts_from_postgres(
        ray_instance, postgres, detector_model, highway_video):
    gateway = Gateway(detector_model, highway_video, postgres.new_database())
    port, store = gateway.port, CountStore(gateway.store_url)
    samples: list[tuple[float, float, float]] = []  # (time, b's frames, b up)
    messages: list[dict] = []
    stop = threading.Event()

    def sample():  # stream b, as Prometheus would see it, four times a second
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), gateway.metric("lanewatch_frames_total", "b"),
                                gateway.metric("lanewatch_stream_up", "b")))
            except OSError:
                pass
            stop.wait(0.25)

    def listen():  # a dashboard client of both streams, watching the video too
        with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, max_size=None) as ws:
            ws.send(json.dumps({"type": "subscribe", "streams": "*", "video": True,
                                "max_fps": 4, "max_width": 640}))
            while not stop.is_set():
                try:
                    data = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                if isinstance(data, bytes):  # an annotated frame, drawn on the gateway
                    header, jpeg = parse_frame_message(data)
                    messages.append({"type": "frame", "stream": header["stream"],
                                     "width": header["width"], "jpeg": jpeg[:2],
                                     "at": time.monotonic()})
                else:
                    messages.append({**json.loads(data), "at": time.monotonic()})

    threads = [threading.Thread(target=f, daemon=True) for f in (sample, listen)]

    def counted(stream: str) -> int:
        return sum(store.cumulative(stream).values())

    def exported(stream: str) -> float:
        return gateway.metric("lanewatch_lane_crossings_total", stream)

    try:
        assert wait_for(lambda: all(gateway.status(s)["state"] == "running"
                                    and gateway.status(s)["frames_processed"] > 10
                                    for s in "ab"), 180), [gateway.status(s) for s in "ab"]
        for t in threads:
            t.start()
        assert wait_for(lambda: counted("a") >= 2, 120), "stream a counted nothing"

        # Kill stream a's actor process, as the OOM killer or a lost node would.
        old = gateway.status("a")["worker"]
        pid = ray_instance.get(gateway.service.runners["a"].actor.pid.remote(), timeout=30)
        assert pid == old["pid"]
        stored_at_kill = counted("a")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        assert wait_for(lambda: gateway.status("a")["worker"]["restarts"] == 1
                        and gateway.status("a")["state"] == "running", 120), gateway.status("a")
        restarted = gateway.status("a")
        assert restarted["worker"]["pid"] != pid
        restarted_at = time.monotonic()
        print(f"\nstream a's actor back {restarted_at - killed_at:.1f} s after kill -9")

        # Counts resume from PostgreSQL: the restarted actor's all-time counts start from what
        # was stored, and grow with new crossings.
        def lane_total(stream: str) -> int:
            lanes = gateway.status(stream)["lanes"]
            return sum(n for lane in lanes for by_dir in lane["by_class"].values()
                       for n in by_dir.values())
        assert wait_for(lambda: counted("a") > stored_at_kill + 1, 120)
        assert wait_for(lambda: lane_total("a") == counted("a"), 30)
        assert lane_total("a") >= stored_at_kill
        # The gateway's counters equal the store (never behind for long, never ahead).
        for s in "ab":
            assert wait_for(lambda s=s: exported(s) == counted(s), 30), (s, exported(s),
                                                                         counted(s))
        # An actor holds one image, not one per result waiting for the gateway.
        rss_mb = psutil.Process(gateway.status("b")["worker"]["pid"]).memory_info().rss / 2**20
        print(f"stream b's actor: {rss_mb:.0f} MB resident")
        assert rss_mb < 700  # ~470 here; holding every waiting image took 1.2 GB
        events_after = [m for m in messages if m["type"] == "event" and m["stream"] == "a"
                        and m["at"] > restarted_at]
        assert wait_for(lambda: any(m["type"] == "event" and m["stream"] == "a"
                                    and m["at"] > restarted_at for m in list(messages)), 60), \
            events_after
    finally:
        stop.set()
        for t in threads:
            t.join(10) if t.is_alive() else None
        gateway.stop()
        store.close()

    # Stream b was served throughout: its frame counter kept rising, it never went down.
    window = [(t, f, up) for t, f, up in samples if killed_at - 2 <= t <= restarted_at + 5]
    assert len(window) > 10
    assert all(up == 1 for _, _, up in window), "stream b went down while a's actor restarted"
    rises = [t for (t, f, _), (_, g, _) in zip(window, window[1:]) if g > f]
    gaps = [b - a for a, b in zip([window[0][0], *rises], [*rises, window[-1][0]])]
    assert max(gaps) < 3.0, f"stream b stalled for {max(gaps):.1f} s during the restart"
    assert {m["stream"] for m in messages if m["type"] == "counts"} == {"a", "b"}
    frames = [m for m in messages if m["type"] == "frame"]
    assert {m["stream"] for m in frames} == {"a", "b"}
    assert all(m["jpeg"] == b"\xff\xd8" and m["width"] <= 640 for m in frames)
    frames_b = [m["at"] for m in frames if m["stream"] == "b"]
    rate = (len(frames_b) - 1) / (frames_b[-1] - frames_b[0])
    print(f"stream b's video at the client: {rate:.1f} frames/s (asked for 4)")
    assert rate <= 4.5


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_streams_added_and_removed_at_run_time_become_and_stop_being_actors(
        ray_instance, postgres, detector_model, highway_video):
    import urllib.request

    gateway = Gateway(detector_model, highway_video, postgres.new_database(), ("a",))

    def call(method: str, path: str, body: dict | None = None) -> int:
        request = urllib.request.Request(gateway.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status

    try:
        body = {"id": "c", "source": str(highway_video), "source_options": {"loop": True},
                "lanes": [LANE]}
        assert call("POST", "/api/streams", body) == 201
        assert wait_for(lambda: gateway.status("c")["state"] == "running"
                        and gateway.status("c")["frames_processed"] > 5, 120)
        actor = gateway.service.runners["c"].actor
        assert ray_instance.get(actor.pid.remote(), timeout=30) == \
            gateway.status("c")["worker"]["pid"]
        frames_a = gateway.status("a")["frames_processed"]
        assert call("DELETE", "/api/streams/c") == 200
        with pytest.raises(ray_instance.exceptions.RayActorError):
            ray_instance.get(actor.pid.remote(), timeout=30)  # the actor is gone for good
        assert wait_for(lambda: gateway.status("a")["frames_processed"] > frames_a + 10, 30)
        assert [s["id"] for s in json.loads(http_get(gateway.base + "/api/streams"))] == ["a"]
    finally:
        gateway.stop()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_stream_whose_actor_cannot_start_fails_alone_with_the_reason(
        ray_instance, postgres, tmp_path, highway_video):
    """The model is missing where the actor runs: the stream is `failed` with the actor's
    own error (Ray does not restart a constructor that raised); the gateway serves on."""
    missing = tmp_path / "nowhere_openvino_model"
    gateway = Gateway(missing, highway_video, postgres.new_database(), ("a",))
    try:
        assert wait_for(lambda: gateway.status("a")["state"] == "failed", 120), \
            gateway.status("a")
        error = gateway.status("a")["error"]
        assert str(missing) in error and "Traceback" not in error, error
        assert gateway.metric("lanewatch_stream_up", "a") == 0
        assert json.loads(http_get(gateway.base + "/healthz"))["status"] == "ok"
    finally:
        gateway.stop()
