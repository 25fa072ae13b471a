"""Property-based fuzzing of the WebSocket protocol (issue 19, docs/websocket.md): random
messages, including deep nesting, huge numbers, wrong types and binary frames.

The property, for every message: the server answers with exactly one `subscribed`, `pong` or
`error` reply (error codes as documented), the connection stays open (a ping still gets its
pong), nothing is logged as a server error, and the service stays healthy with its counts
unchanged. In-process service (tests/inprocess.py)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import WSMsgType
from hypothesis import example, given
from hypothesis import strategies as st

from lanewatch.trackers.analytics.lane_analytics import CrossingEvent

from fuzzing import FUZZ, json_values, text_bodies, with_raw_number
from inprocess import STREAM, served

pytestmark = pytest.mark.timeout(180)

REPLIES = {"subscribed", "pong", "error"}
ERROR_CODES = {"bad_json", "bad_message", "unknown_type", "unknown_stream", "bad_subscribe"}
PUSHED = {"counts", "stats", "event", "alert", "streams"}  # may arrive at any time

stream_lists = st.one_of(st.just("*"), st.lists(st.sampled_from([STREAM, "nope", ""]),
                                                max_size=3), json_values)
messages = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["subscribe", "unsubscribe", "ping"]), json_values)},
    optional={"streams": stream_lists, "video": json_values,
              "max_fps": st.one_of(st.floats(), st.integers(), json_values),
              "max_width": st.one_of(st.floats(), st.integers(), json_values)})
shaped = st.one_of(
    messages.map(json.dumps),
    with_raw_number({"type": "subscribe", "streams": "*", "max_fps": 5, "max_width": 640}),
    st.just('{"type":"unsubscribe","streams":[{}]}'))


class Live:
    """The service, one WebSocket client and a log watcher, for the whole module."""

    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        # Room for 100,000 `[`: larger messages are closed with 1009, as documented.
        self._served = served(tmp_path, {"max_message_bytes": 131072})
        self.service, self.client = self.run(self._served.__aenter__())
        self.service.store.record([CrossingEvent(STREAM, "l1", 1, "car", "in", 1.0, 1)], [])
        self.counts = dict(self.service.store.cumulative(STREAM))
        self.ws = None
        self.connect()

    def connect(self):
        """A new connection: at the start, and after an example that lost the last one (that
        example fails; the next ones must not fail only because of it)."""
        self.ws = self.run(self.client.ws_connect("/ws"))
        assert self.run(self.reply())["type"] == "hello"

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def reply(self) -> dict:
        """The next message that answers the client (pushed counts and stats skipped)."""
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            assert msg.type == WSMsgType.TEXT, (
                f"dropped without an error reply: {msg.type.name} {msg.data} {msg.extra}")
            payload = json.loads(msg.data)
            if payload["type"] not in PUSHED:
                return payload

    def close(self):
        self.run(self.ws.close())
        self.run(self._served.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    live = Live(tmp_path_factory.mktemp("fuzz_ws"))
    yield live
    live.close()


def test_every_message_gets_one_reply_and_the_connection_stays(live, caplog):
    @FUZZ
    @given(text_bodies(shaped))
    @example('{"type":"subscribe","streams":"*","max_width":1e400}')  # the findings
    @example('{"type":"unsubscribe","streams":[{}]}')
    @example("[" * 60_000)
    def check(message):
        caplog.clear()
        if live.ws.closed:
            live.connect()
        with caplog.at_level(logging.ERROR):
            if isinstance(message, bytes):
                live.run(live.ws.send_bytes(message))
            else:
                live.run(live.ws.send_str(message))
            reply = live.run(live.reply())
            live.run(live.ws.send_str('{"type": "ping"}'))
            pong = live.run(live.reply())
        assert reply["type"] in REPLIES, reply
        if reply["type"] == "error":
            assert reply["code"] in ERROR_CODES and reply["message"], reply
        assert pong["type"] == "pong", pong
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, errors  # no server-side traceback behind a polite reply
        assert dict(live.service.store.cumulative(STREAM)) == live.counts

    check()
    assert not live.ws.closed
    assert live.run(live.client.get("/healthz")).status == 200
