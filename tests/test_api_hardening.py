"""Hostile input to a running service (issue 19, items 5 and 7): every bad request gets a 4xx
with a JSON reason, never a 500; every bad WebSocket message gets an `error` reply on a
connection that stays open; cross-site pages cannot change streams or open /ws; the bearer
scheme is case-insensitive. In-process service (tests/inprocess.py), every wait bounded."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from inprocess import STREAM, served

pytestmark = pytest.mark.timeout(60)

TOKEN = "hardening-token"
JSON = {"Content-Type": "application/json"}


def run(tmp_path, scenario, server=None):
    """Run `scenario(service, client)` against a fresh in-process service."""
    async def go():
        async with served(tmp_path, server) as (service, client):
            return await scenario(service, client)
    return asyncio.run(go())


def new_stream(tmp_path, stream_id="added") -> dict:
    return {"id": stream_id, "source": str(tmp_path / "cam.mp4"), "lanes": []}


# -- item 5: bad input reaching an unhandled exception --------------------------------------

def test_deeply_nested_body_is_a_400(tmp_path):
    async def scenario(service, client):
        r = await client.post("/api/streams", data="[" * 100_000, headers=JSON)
        return r.status, await r.json(content_type=None)
    status, reply = run(tmp_path, scenario)
    assert status == 400, reply
    assert reply["error"] == "bad_json" and "nest" in reply["message"]


@pytest.mark.parametrize("coordinate", ["1e400", "1" + "0" * 400, "-1e400", "NaN"],
                         ids=["1e400", "400_digits", "-1e400", "NaN"])
def test_huge_lane_coordinate_is_a_400(tmp_path, coordinate):
    body = '{"lanes": [{"name": "l1", "line": [[0, 10], [COORD, 10]]}]}'.replace(
        "COORD", coordinate)

    async def scenario(service, client):
        r = await client.post(f"/api/streams/{STREAM}/lanes/export", data=body, headers=JSON)
        return r.status, await r.json(content_type=None)
    status, reply = run(tmp_path, scenario)
    assert status == 400, reply
    assert reply["error"] == "invalid_lanes"
    assert "lane 'l1'" in reply["message"] and "finite" in reply["message"]


async def ws_reply(ws) -> dict:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


@pytest.mark.parametrize("text, code", [
    ('{"type":"subscribe","streams":"*","max_width":1e400}', "bad_subscribe"),
    ('{"type":"subscribe","streams":"*","max_fps":1e400}', "bad_subscribe"),
    ('{"type":"subscribe","streams":"*","max_width":' + "9" * 400 + "}", "bad_subscribe"),
    ('{"type":"subscribe","streams":"*","max_fps":NaN}', "bad_subscribe"),
    ('{"type":"unsubscribe","streams":[{}]}', "bad_subscribe"),
    ('{"type":"unsubscribe","streams":"cam"}', "bad_subscribe"),
    ("[" * 60_000, "bad_json"),
], ids=["max_width_1e400", "max_fps_1e400", "max_width_400_digits", "max_fps_NaN",
        "unsubscribe_object", "unsubscribe_string", "60000_brackets"])
def test_bad_websocket_message_gets_an_error_and_the_connection_stays(tmp_path, text, code):
    async def scenario(service, client):
        ws = await client.ws_connect("/ws")
        assert (await ws_reply(ws))["type"] == "hello"
        await ws.send_str(text)
        error = await ws_reply(ws)
        await ws.send_str('{"type": "ping"}')
        pong = await ws_reply(ws)
        await ws.close()
        return error, pong
    error, pong = run(tmp_path, scenario)
    assert error["type"] == "error" and error["code"] == code, error
    assert pong["type"] == "pong"


def test_overlong_stream_id_is_refused_with_the_rule(tmp_path):
    async def scenario(service, client):
        r = await client.post("/api/streams", json=new_stream(tmp_path, "x" * 5000))
        return r.status, await r.json(), list(service.runners)
    status, reply, streams = run(tmp_path, scenario)
    assert status == 400, reply
    assert streams == [STREAM]
    assert reply["problems"] == ["  - id: String should have at most 64 characters"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(tmp_path, scheme):
    async def scenario(service, client):
        ok = await client.get("/api/streams", headers={"Authorization": f"{scheme} {TOKEN}"})
        wrong = await client.get("/api/streams", headers={"Authorization": f"{scheme} nope!!!!"})
        return ok.status, wrong.status
    assert run(tmp_path, scenario, {"auth_token": TOKEN}) == (200, 401)


# -- item 7: cross-site requests --------------------------------------------------------------

def test_foreign_origin_cannot_change_streams(tmp_path):
    async def scenario(service, client):
        body = json.dumps(new_stream(tmp_path))
        foreign = {"Origin": "http://evil.example", **JSON}
        results = {
            "post": (await client.post("/api/streams", data=body, headers=foreign)).status,
            "put": (await client.put(f"/api/streams/{STREAM}", data=body,
                                     headers=foreign)).status,
            "delete": (await client.delete(f"/api/streams/{STREAM}", headers=foreign)).status,
            "null": (await client.post("/api/streams", data=body,
                                       headers={"Origin": "null", **JSON})).status,
        }
        reply = await (await client.post("/api/streams", data=body, headers=foreign)).json()
        return results, reply, list(service.runners)
    results, reply, streams = run(tmp_path, scenario)
    assert results == {"post": 403, "put": 403, "delete": 403, "null": 403}
    assert reply["error"] == "forbidden_origin"
    assert "server.allowed_origins" in reply["message"]
    assert streams == [STREAM]


def test_text_plain_post_is_refused_with_415(tmp_path):
    """The cross-site "simple request" of the campaign: text/plain needs no CORS preflight."""
    async def scenario(service, client):
        body = json.dumps(new_stream(tmp_path))
        plain = await client.post("/api/streams", data=body,
                                  headers={"Content-Type": "text/plain"})
        cross = await client.post("/api/streams", data=body,
                                  headers={"Content-Type": "text/plain",
                                           "Origin": "http://evil.example"})
        reply = await plain.json()
        return plain.status, cross.status, reply, list(service.runners)
    plain, cross, reply, streams = run(tmp_path, scenario)
    assert (plain, cross) == (415, 403)
    assert reply["error"] == "unsupported_media_type" and "application/json" in reply["message"]
    assert streams == [STREAM]


def test_own_and_allowed_origins_can_change_streams(tmp_path):
    async def scenario(service, client):
        own = f"http://{client.host}:{client.port}"
        codes = []
        for i, origin in enumerate([own, "https://dash.example.org", None]):
            headers = {} if origin is None else {"Origin": origin}
            r = await client.post("/api/streams", json=new_stream(tmp_path, f"s{i}"),
                                  headers=headers)
            codes.append(r.status)
        return codes
    assert run(tmp_path, scenario, {"allowed_origins": ["https://dash.example.org"]}) == [
        201, 201, 201]


def test_cross_origin_websocket_upgrade_is_refused(tmp_path):
    async def scenario(service, client):
        with pytest.raises(WSServerHandshakeError) as info:
            await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
        own = await client.ws_connect("/ws", origin=f"http://{client.host}:{client.port}")
        hello = await ws_reply(own)
        await own.close()
        return info.value.status, hello
    status, hello = run(tmp_path, scenario)
    assert status == 403
    assert hello["type"] == "hello"


@pytest.mark.parametrize("host, token, warns", [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
    ("0.0.0.0", None, True), ("192.168.1.20", None, True), ("::", None, True),
    ("0.0.0.0", TOKEN, False),
])
def test_exposure_warning_when_listening_beyond_loopback_without_token(host, token, warns):
    from lanewatch.stream.serve.api import exposure_warning

    message = exposure_warning(host, token)
    assert (message is not None) == warns
    if warns:
        assert "server.auth_token" in message and host in message


def test_token_from_the_environment(tmp_path, monkeypatch):
    """The compose stack passes a generated token as LANEWATCH_AUTH_TOKEN."""
    from lanewatch.sinks.errors import ConfigError
    from lanewatch.stream.config.schema import ServerConfig
    from lanewatch.stream.serve.api import auth_token

    monkeypatch.setenv("LANEWATCH_AUTH_TOKEN", TOKEN)

    async def scenario(service, client):
        bare = await client.get("/api/streams")
        given = await client.get("/api/streams", headers={"Authorization": f"Bearer {TOKEN}"})
        return bare.status, given.status
    assert run(tmp_path, scenario) == (401, 200)
    assert auth_token(ServerConfig(auth_token="from-the-config")) == "from-the-config"
    monkeypatch.setenv("LANEWATCH_AUTH_TOKEN", "short")
    with pytest.raises(ConfigError, match="LANEWATCH_AUTH_TOKEN is 5 characters long"):
        auth_token(ServerConfig())


def test_serve_logs_the_exposure_warning(tmp_path, caplog, monkeypatch):
    """`serve` itself warns (not only the helper): checked with web.run_app stubbed out."""
    from aiohttp import web

    from lanewatch.stream.config.loading import parse_config
    from lanewatch.stream.serve import service as service_module

    from inprocess import StubDetector, config_data

    monkeypatch.setattr(web, "run_app", lambda *a, **k: None)
    monkeypatch.setattr(service_module, "create_detector", lambda *a, **k: StubDetector())
    config = parse_config(config_data(tmp_path, {"host": "0.0.0.0"}))
    with caplog.at_level(logging.WARNING, "lanewatch.stream"):
        service_module.serve(config)
    assert any("server.auth_token" in r.getMessage() for r in caplog.records)
