"""Streams added through the API are stored without their password (issue 19, item 6c): a
`${ENV}` reference is stored as written and substituted again at start-up; a password written
literally is refused with a 400 that says how to reference it instead. Unit tests of the
registry, and the API of an in-process service (tests/inprocess.py)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.stream_registry import StreamRegistry, keep_source_as_written

from inprocess import STREAM, served

pytestmark = pytest.mark.timeout(60)

CAMERA = "rtsp://viewer:${LW_REG_PASSWORD}@127.0.0.1:9/stream1"  # nothing listens on port 9


def stored_rows(db) -> str:
    """Everything the registry's table holds, as text."""
    with sqlite3.connect(db) as conn:
        return repr(conn.execute("SELECT * FROM runtime_streams").fetchall())


def api(tmp_path, method: str, path: str, body: dict) -> tuple[int, dict]:
    async def go():
        async with served(tmp_path) as (_service, client):
            r = await client.request(method, path, json=body)
            return r.status, await r.json(content_type=None)
    return asyncio.run(go())


def test_a_referenced_password_is_stored_as_the_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_REG_PASSWORD", "hunter22")
    status, reply = api(tmp_path, "POST", "/api/streams", {"id": "gate", "source": CAMERA})
    assert status == 201, reply
    assert "hunter22" not in str(reply)
    rows = stored_rows(tmp_path / "counts.db")
    assert "hunter22" not in rows and "${LW_REG_PASSWORD}" in rows
    # at the next start the reference is substituted again, from the environment of that day
    monkeypatch.setenv("LW_REG_PASSWORD", "rotated-password")
    registry = StreamRegistry(tmp_path / "counts.db")
    [gate] = registry.apply([])
    registry.close()
    assert gate.source == "rtsp://viewer:rotated-password@127.0.0.1:9/stream1"


@pytest.mark.parametrize("method, path, stream_id", [
    ("POST", "/api/streams", "gate"),
    ("PUT", f"/api/streams/{STREAM}", STREAM),
])
@pytest.mark.parametrize("password", ["hunter22", "p@ss:w0rd"])
def test_a_literal_password_is_refused_and_not_stored(tmp_path, method, path, stream_id,
                                                       password):
    body = {"id": stream_id, "source": f"rtsp://viewer:{password}@127.0.0.1:9/stream1"}
    status, reply = api(tmp_path, method, path, body)
    assert status == 400, reply
    assert password not in str(reply)
    assert "${CAM_PASSWORD}" in reply["message"]  # how to write it instead
    assert "rtsp://viewer:${CAM_PASSWORD}@127.0.0.1:9/stream1" in reply["message"]
    assert password not in stored_rows(tmp_path / "counts.db")


def test_the_registry_never_stores_a_password_in_clear(tmp_path):
    registry = StreamRegistry(tmp_path / "r.db")
    stream = StreamConfig(id="a", source="rtsp://viewer:hunter22@cam/1")  # not from the API
    with pytest.raises(ConfigError, match="in clear"):
        registry.save(stream)
    registry.close()
    assert "hunter22" not in stored_rows(tmp_path / "r.db")


@pytest.mark.parametrize("written, expected", [
    ("rtsp://cam$${x}/1", "rtsp://cam${x}/1"),  # an escaped literal ${ stays literal
    ("rtsp://cam/1", "rtsp://cam/1"),
    ("${LW_REG_URL}", "rtsp://viewer:s3cret@cam/1"),  # a whole URL from the environment
])
def test_sources_come_back_as_they_were_posted(tmp_path, monkeypatch, written, expected):
    from lanewatch.stream.config.environment import interpolate_env

    monkeypatch.setenv("LW_REG_URL", "rtsp://viewer:s3cret@cam/1")
    stream = StreamConfig(id="a", source=interpolate_env(written))
    registry = StreamRegistry(tmp_path / "r.db")
    registry.save(keep_source_as_written(stream, written))
    assert [s.source for s in registry.apply([])] == [expected]
    registry.close()
    assert "s3cret" not in stored_rows(tmp_path / "r.db")


def test_a_stored_stream_whose_variable_is_gone_is_skipped_with_an_error(tmp_path, monkeypatch,
                                                                         caplog):
    monkeypatch.setenv("LW_REG_PASSWORD", "hunter22")
    registry = StreamRegistry(tmp_path / "r.db")
    stream = StreamConfig(id="gate", source="rtsp://viewer:hunter22@127.0.0.1:9/stream1")
    registry.save(keep_source_as_written(stream, CAMERA))
    monkeypatch.delenv("LW_REG_PASSWORD")
    kept = StreamConfig(id="kept", source="a.mp4")
    with caplog.at_level(logging.ERROR):
        assert [s.id for s in registry.apply([kept])] == ["kept"]
    registry.close()
    assert "gate" in caplog.text and "LW_REG_PASSWORD is not set" in caplog.text


def test_a_stored_stream_whose_variable_now_holds_a_broken_url_is_skipped(tmp_path, monkeypatch,
                                                                        caplog):
    monkeypatch.setenv("LW_REG_PASSWORD", "hunter22")
    registry = StreamRegistry(tmp_path / "r.db")
    written = "rtsp://viewer:${LW_REG_PASSWORD}@${LW_REG_HOST}/stream1"
    monkeypatch.setenv("LW_REG_HOST", "127.0.0.1:9")
    stream = StreamConfig(id="gate", source="rtsp://viewer:hunter22@127.0.0.1:9/stream1")
    registry.save(keep_source_as_written(stream, written))
    monkeypatch.setenv("LW_REG_HOST", "127.0.0.1:99999")  # changed since: the port is out of range
    with caplog.at_level(logging.ERROR):
        assert registry.apply([]) == []
    registry.close()
    assert "'gate'" in caplog.text and "port must be a number in 1-65535" in caplog.text
    assert "hunter22" not in caplog.text


def test_literal_password_check_looks_at_the_password_as_written():
    stream = StreamConfig(id="a", source="rtsp://viewer:hunter22@cam/1")
    with pytest.raises(ConfigError, match=r"\$\{CAM_PASSWORD\}"):
        keep_source_as_written(stream, "rtsp://viewer:hunter22@cam/1")
    with pytest.raises(ConfigError):  # an escape is no reference
        keep_source_as_written(StreamConfig(id="a", source="rtsp://v:a${b@cam/1"),
                               "rtsp://v:a$${b@cam/1")
    for written in ("rtsp://viewer:${PW}@cam/1", "rtsp://${USERINFO}@cam/1", "${URL}"):
        assert keep_source_as_written(stream, written).source == stream.source
