"""Credentials kept out of logs, API replies and the screen (issue 19, items 3 and 6b): `redact`
never raises, whatever the string, and never shows a URL's password, even one holding
unencoded `@`, `/`, `?` or `#` (the userinfo runs to the last `@`)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanewatch.sinks.database import redact_url
from lanewatch.stream.sources.live import redact


@pytest.mark.parametrize(
    "url, expected",
    [
        # item 3: a port out of range used to raise ValueError outside the error handling
        ("rtsp://u:pw@127.0.0.1:99999/s", "rtsp://u:***@127.0.0.1:99999/s"),
        ("rtsp://u:pw@host:port/s", "rtsp://u:***@host:port/s"),
        ("rtsp://u:pw@[::1/s", "rtsp://u:***@[::1/s"),  # an unclosed IPv6 bracket
        # item 6b: unencoded # / ? @ in the password
        ("rtsp://user:p#ss/w?rd@host:554/stream", "rtsp://user:***@host:554/stream"),
        ("rtsp://user:p@ss@host/stream", "rtsp://user:***@host/stream"),
        ("rtsp://user:a/b@host/stream", "rtsp://user:***@host/stream"),
        ("rtsp://user:a?b@host/stream", "rtsp://user:***@host/stream"),
        ("postgresql://counter:s#3/c?r@db:5432/lw", "postgresql://counter:***@db:5432/lw"),
        # a password given as a query parameter
        ("http://cam/snap.cgi?user=admin&password=hunter2&x=1",
         "http://cam/snap.cgi?user=admin&password=***&x=1"),
        # nothing to hide: unchanged
        ("rtsp://admin@cam/live", "rtsp://admin@cam/live"),
        ("rtsp://cam.local/live@2x", "rtsp://cam.local/live@2x"),
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
        ("", ""),
    ],
)
def test_redact_hides_every_password(url, expected):
    assert redact(url) == expected


def test_database_addresses_use_the_same_redaction():
    assert redact_url("postgresql://counter:s#3/c@r@db:5432/lw") == (
        "postgresql://counter:***@db:5432/lw")


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_redact_never_raises(text):
    assert isinstance(redact(text), str)


_password = st.text(st.characters(codec="utf-8"), min_size=1)


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["rtsp", "rtsps", "http", "https", "postgresql"]),
       user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
       password=_password,
       host=st.sampled_from(["10.0.0.5", "cam.local", "127.0.0.1:99999", "[::1]:554", "h:x"]),
       path=st.sampled_from(["", "/", "/live", "/s?channel=1", "/a#frag"]))
def test_redact_never_shows_the_password(scheme, user, password, host, path):
    url = f"{scheme}://{user}:{password}@{host}{path}"
    assert redact(url) == f"{scheme}://{user}:***@{host}{path}"


@pytest.mark.timeout(60)
def test_a_password_with_unencoded_characters_stays_out_of_the_log(caplog):
    from lanewatch.stream.sources.live import LiveSource, SourceSettings, StreamState

    url = "rtsp://viewer:p#ss/w?rd@127.0.0.1:9/stream"  # nothing listens on port 9
    settings = SourceSettings(reconnect_initial_s=0.05, reconnect_max_s=0.1, max_attempts=2,
                              open_timeout_s=2)
    caplog.set_level(logging.INFO, logger="lanewatch.stream.sources.live")
    source = LiveSource("cam", url, settings).start()
    try:
        deadline = time.monotonic() + 30
        while source.state is not StreamState.FAILED:
            assert time.monotonic() < deadline, source.state
            time.sleep(0.02)
    finally:
        source.stop()
    assert "viewer:***@127.0.0.1:9/stream" in caplog.text
    for secret in ("p#ss", "w?rd"):
        assert secret not in caplog.text and secret not in (source.last_error or "")


def test_a_password_with_unencoded_characters_stays_out_of_api_replies(tmp_path):
    from inprocess import served

    async def go():
        async with served(tmp_path) as (_service, client):
            body = {"id": "gate", "source": "rtsp://viewer:p#ss/w?rd@127.0.0.1:9/stream"}
            posted = await client.post("/api/streams", json=body)
            listed = await client.get("/api/streams")
            return posted.status, await posted.text(), await listed.text()

    status, posted, listed = asyncio.run(go())
    assert status in (201, 400), posted  # refused or accepted: never a 500
    for secret in ("p#ss", "w?rd"):
        assert secret not in posted and secret not in listed
