"""The reconnect back-off starts over after a healthy session (issue 19, item 4): after the first
outage, a camera that then delivered frames for a long time must be retried at once again, not
after the delays the earlier outage had grown to."""

from __future__ import annotations

import logging
import re
import time

import pytest

import lanewatch.stream.sources.live as live
from lanewatch.stream.sources.live import LiveSource, SourceSettings, StreamState


class _Container:
    def close(self) -> None:
        pass


class _ScriptedSource(LiveSource):
    """A LiveSource whose connections follow a script instead of opening anything: each step is
    None (the open fails) or the seconds over which a connection delivers frames before it
    breaks. The last step stops the source once it has failed."""

    def __init__(self, script, settings):
        super().__init__("cam", "rtsp://u:pw@cam/live", settings)
        self.script = list(script)
        self.delivering = 0.0

    def _open(self):
        step = self.script.pop(0)
        if not self.script:
            self._stop.set()
        if step is None:
            raise ConnectionError("connection refused")
        self.delivering = step
        return _Container()

    def _read(self, container, index):
        self._publish(live.Frame(self.stream_id, index, 0.0, time.time(), None))
        time.sleep(self.delivering)
        self._publish(live.Frame(self.stream_id, index + 1, self.delivering, time.time(), None))
        raise ConnectionError("connection reset")


def _attempts(monkeypatch, script, settings):
    """The back-off attempt numbers the source used, in order, for a script of connections."""
    attempts = []

    def delay(attempt, initial, maximum, rng):
        attempts.append(attempt)
        return 0.001

    monkeypatch.setattr(live, "backoff_delay", delay)
    source = _ScriptedSource(script, settings)
    source._run()  # in this thread: the script's end stops it
    return attempts


def test_a_healthy_session_resets_the_backoff(monkeypatch):
    # reconnect_max_s 0.2 s: a connection that delivered frames for 0.3 s was healthy
    settings = SourceSettings(reconnect_initial_s=0.01, reconnect_max_s=0.2)
    script = [None, None,  # the camera is down: attempts 0 and 1
              0.3,  # back up, delivers for 0.3 s, breaks: the back-off starts over (0)
              None,  # down again (1)
              0.0,  # up for a single frame, breaks again: not healthy (2)
              None]  # (3)
    assert _attempts(monkeypatch, script, settings) == [0, 1, 0, 1, 2, 3]


def test_short_sessions_keep_backing_off(monkeypatch):
    settings = SourceSettings(reconnect_initial_s=0.01, reconnect_max_s=0.5)
    assert _attempts(monkeypatch, [0.05, 0.05, 0.05], settings) == [0, 1, 2]


def test_a_healthy_session_also_resets_max_attempts(monkeypatch):
    settings = SourceSettings(reconnect_initial_s=0.01, reconnect_max_s=0.2, max_attempts=3)
    monkeypatch.setattr(live, "backoff_delay", lambda *a: 0.001)
    source = _ScriptedSource([None, None, 0.3, None, 0.3, None], settings)
    source._run()
    assert source.state is StreamState.RECONNECTING  # not FAILED: never 3 failures in a row


def test_backoff_rule():
    """ReconnectBackoff on its own: deterministic, sessions given by their length."""
    import random

    from lanewatch.stream.sources.live import ReconnectBackoff

    backoff = ReconnectBackoff(SourceSettings(reconnect_initial_s=1, reconnect_max_s=8),
                               random.Random(0))
    ceilings = []
    for delivered_s in (None, None, None, 7.9, 8.0, None, 100.0, 0.0):
        if delivered_s is not None:
            backoff.session_ended(delivered_s)
        delay = backoff.failed()
        ceilings.append(next(c for c in (1, 2, 4, 8) if delay <= c))
    # three failed opens grow it; a 7.9 s session is not healthy (8: reconnect_max_s), 8.0 is
    assert ceilings == [1, 2, 4, 8, 1, 2, 1, 2]
    assert backoff.failures == 2


@pytest.mark.timeout(180)
def test_real_rtsp_camera_backoff_starts_over_after_a_healthy_session(highway_video, caplog):
    """Two outages of a real RTSP server: the second one's first retry is as quick as the
    first one's, although the first outage grew the back-off."""
    from rtsp import RtspServer

    caplog.set_level(logging.WARNING, logger="lanewatch.stream.sources.live")
    server = RtspServer(highway_video).start()
    settings = SourceSettings(read_timeout_s=1, stall_timeout_s=1, reconnect_initial_s=0.4,
                              reconnect_max_s=2)
    source = LiveSource("cam", server.url, settings).start()

    def delays() -> list[float]:
        return [float(d) for d in re.findall(r"reconnecting in ([\d.]+) s", caplog.text)]

    def wait_for(predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.02)
        return predicate()

    try:
        for outage in range(2):
            assert wait_for(lambda: source.state is StreamState.RUNNING, 40), source.last_error
            received = source.frames_received
            time.sleep(3.0)  # a healthy session: frames for longer than reconnect_max_s
            assert source.frames_received > received + 30
            before = len(delays())
            server.kill()
            if outage == 0:  # down long enough for several failed attempts: the delay grows
                assert wait_for(lambda n=before: len(delays()) >= n + 3, 30), delays()
                server.start()
            else:
                assert wait_for(lambda n=before: len(delays()) > n, 30)
                first_retry = delays()[before]
    finally:
        source.stop()
        server.kill()
    assert max(delays()[:3]) > 0.4  # the first outage grew the delay
    assert first_retry <= 0.4, delays()  # attempt 0 again: in [0.2, 0.4]
