"""Live sources: real-time pacing, latest-frame-wins with counted drops, loop, reconnect with
back-off, giving up, and credentials kept out of logs. Every wait is bounded."""

from __future__ import annotations

import logging
import random
import time

import pytest

from lanewatch.stream.sources.live import (
    LiveSource,
    SourceSettings,
    StreamState,
    backoff_delay,
    is_device,
    is_file_source,
    redact,
)

from videos import write_video


def wait_for(predicate, timeout=20.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.mark.parametrize(
    "url, expected",
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("rtsp://cam.local/live", "rtsp://cam.local/live"),
        ("http://user:p%40ss@host/x.m3u8", "http://user:***@host/x.m3u8"),
        ("/videos/a.mp4", "/videos/a.mp4"),
    ],
)
def test_redact(url, expected):
    assert redact(url) == expected


@pytest.mark.parametrize(
    "url, file, device",
    [
        ("/videos/a.mp4", True, False),
        ("file:///videos/a.mp4", True, False),
        ("/dev/video0", False, True),
        ("v4l2:///dev/video2", False, True),
        ("rtsp://cam/live", False, False),
        ("https://example.org/live.m3u8", False, False),
    ],
)
def test_source_kinds(url, file, device):
    assert (is_file_source(url), is_device(url)) == (file, device)


def test_missing_webcam_keeps_retrying_with_a_clear_error():
    settings = SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.1, max_attempts=2)
    source = LiveSource("webcam", "/dev/video99", settings).start()
    try:
        assert wait_for(lambda: source.state is StreamState.FAILED, timeout=20)
    finally:
        source.stop()
    assert "cannot open" in source.last_error


@pytest.mark.parametrize(
    "attempt, initial, maximum, low, high",
    [(0, 0.5, 30, 0.25, 0.5), (3, 0.5, 30, 2.0, 4.0), (10, 0.5, 30, 15, 30), (50, 1, 8, 4, 8)],
)
def test_backoff_grows_exponentially_with_jitter_and_a_cap(attempt, initial, maximum, low, high):
    rng = random.Random(1)
    delays = [backoff_delay(attempt, initial, maximum, rng) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1  # jittered


@pytest.mark.timeout(60)
def test_file_is_paced_in_real_time(highway_video):
    source = LiveSource("cam", str(highway_video)).start()
    try:
        assert wait_for(lambda: source.state is StreamState.RUNNING)
        time.sleep(1.0)
        received = source.frames_received
    finally:
        source.stop()
    assert 15 <= received <= 45  # ~30 frames in a second, not the whole 335-frame file
    assert source.frame_size == (1280, 720)
    assert source.state is StreamState.STOPPED


@pytest.mark.timeout(60)
def test_every_frame_in_order_and_a_full_queue_drops_the_oldest(highway_video):
    """A slow consumer takes every frame in order while the queue holds them; once it is
    `max_backlog_s` behind, the oldest waiting frames are dropped and counted."""
    source = LiveSource("cam", str(highway_video), SourceSettings(max_backlog_s=0.5)).start()
    try:
        assert wait_for(lambda: source.state is StreamState.RUNNING)
        assert source.capacity() == 300  # starting: 10 s, the pipeline compiles its model
        source.pipeline_ready()  # what queued while starting, plus 0.5 s of 29.97 frames/s
        assert source.capacity() - source.backlog in (15, 16)  # (one may have arrived)
        first = [source.next_frame(timeout=5).index for _ in range(5)]
        assert first == list(range(5))  # nothing skipped while the queue had room
        time.sleep(1.5)  # ~45 frames arrive; the queue keeps the newest 15
        assert source.backlog == 15
        taken = [source.next_frame(timeout=5).index for _ in range(15)]
        assert taken == list(range(taken[0], taken[0] + 15))  # in order, no gaps
        assert source.frames_dropped == taken[0] - 5 > 0
        received, dropped = source.frames_received, source.frames_dropped
        assert received - dropped - 20 - source.backlog in (0, 1)  # one may be arriving
    finally:
        source.stop()


@pytest.mark.timeout(60)
def test_file_without_loop_stops_at_its_end(tmp_path):
    video = write_video(tmp_path / "short.mp4", frames=15)
    source = LiveSource("cam", str(video)).start()
    try:
        assert wait_for(lambda: source.state is StreamState.STOPPED, timeout=10)
        assert source.frames_received == 15
        assert source.next_frame(timeout=0.1) is None or source.frames_received == 15
    finally:
        source.stop()


@pytest.mark.timeout(60)
def test_file_with_loop_keeps_going(tmp_path):
    video = write_video(tmp_path / "short.mp4", frames=10)
    source = LiveSource("cam", str(video), SourceSettings(loop=True)).start()
    try:
        assert wait_for(lambda: source.frames_received > 25, timeout=10)
        assert source.state is StreamState.RUNNING
        indices = [source.next_frame(timeout=2).index for _ in range(25)]
        assert indices == list(range(25))  # indices keep increasing across loops
    finally:
        source.stop()


@pytest.mark.timeout(60)
def test_unreachable_url_retries_with_backoff_then_fails(caplog):
    settings = SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.2, max_attempts=4,
                              open_timeout_s=2)
    states = []
    url = "rtsp://viewer:topsecret@127.0.0.1:9/nothing-listens-here"
    caplog.set_level(logging.INFO, logger="lanewatch.stream.sources.live")
    source = LiveSource("cam", url, settings, on_state=lambda _, s: states.append(s)).start()
    try:
        assert wait_for(lambda: source.state is StreamState.FAILED, timeout=30)
    finally:
        source.stop()
    assert StreamState.RECONNECTING in states and states[-2:] == [StreamState.FAILED,
                                                                  StreamState.STOPPED]
    assert source.reconnects == 3
    assert source.next_frame(timeout=0.1) is None
    assert "topsecret" not in caplog.text and "viewer:***@127.0.0.1:9" in caplog.text
    assert "topsecret" not in (source.last_error or "")


@pytest.mark.timeout(60)
def test_missing_file_keeps_retrying_until_stopped(tmp_path):
    settings = SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.1)
    source = LiveSource("cam", str(tmp_path / "later.mp4"), settings).start()
    try:
        assert wait_for(lambda: source.reconnects >= 3, timeout=10)
        assert source.state is StreamState.RECONNECTING
        assert "file not found" in source.last_error
        write_video(tmp_path / "later.mp4", frames=20)  # the file appears: the source recovers
        assert wait_for(lambda: source.frames_received > 0, timeout=10)
    finally:
        source.stop(timeout=5)
    assert source.state is StreamState.STOPPED


def test_settings_validation():
    with pytest.raises(ValueError, match="reconnect_initial_s"):
        SourceSettings(reconnect_initial_s=10, reconnect_max_s=1)
    with pytest.raises(ValueError):
        SourceSettings(rtsp_transport="http")


@pytest.mark.timeout(120)
def test_rtsp_camera_killed_and_restarted_reconnects_by_itself(highway_video):
    from rtsp import RtspServer

    server = RtspServer(highway_video).start()
    settings = SourceSettings(read_timeout_s=2, stall_timeout_s=2, reconnect_initial_s=0.2,
                              reconnect_max_s=1)
    states = []
    source = LiveSource("cam", server.url, settings,
                        on_state=lambda _, s: states.append(s)).start()
    try:
        assert wait_for(lambda: source.frames_received > 20, timeout=30), source.last_error
        assert source.frame_size == (1280, 720)
        server.kill()
        assert wait_for(lambda: source.state is StreamState.RECONNECTING, timeout=20)
        before = source.frames_received
        time.sleep(1.0)
        assert source.frames_received == before  # nothing arrives while the camera is down
        server.start()
        assert wait_for(lambda: source.state is StreamState.RUNNING
                        and source.frames_received > before + 20, timeout=40), source.last_error
    finally:
        source.stop()
        server.kill()
    assert states[:2] == [StreamState.RUNNING, StreamState.RECONNECTING]
    assert StreamState.RUNNING in states[2:]
    assert source.reconnects >= 1
