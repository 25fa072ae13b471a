"""The one sink protocol (sinks/sink.py): `FanOut` hands every result to its sinks in order,
isolates a failing sink, drops one that cannot go on (reported once), and closes them all even
when one's close raises; the serve publisher counts each failure under the sink's name, and
the adapters (store, annotated video) say what a failure cost."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import pytest

from lanewatch.sinks.live_video import LiveVideo
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.reports import ReportWriter
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.sink import FanOut, Listener, SinkError, SinkFailed, SinkFailure
from lanewatch.sinks.store import StoreSink
from lanewatch.sinks.video import AnnotatedVideo, VideoWriteError
from lanewatch.sinks.websocket import WebSocketHub
from lanewatch.stream.cluster.remote import RemoteStream
from lanewatch.stream.config.loading import parse_config
from lanewatch.trackers.analytics.lane_analytics import AnalyticsUpdate, CrossingEvent

CLOSE = "close"


@dataclass
class FakeSink:
    """Records each call in the shared `calls`; raises what `fails` says for a result (an
    int, or a FrameResult by its frame index), and `close_error` from close."""

    name: str
    calls: list
    fails: dict = field(default_factory=dict)  # result or frame index -> exception
    close_error: Exception | None = None

    def on_result(self, result) -> None:
        index = result.frame.index if isinstance(result, FrameResult) else result
        self.calls.append((self.name, index))
        if index in self.fails:
            raise self.fails[index]

    def close(self) -> None:
        self.calls.append((self.name, CLOSE))
        if self.close_error is not None:
            raise self.close_error


def _every(results, names, skip=()):
    return [(n, r) for r in results for n in names if (n, r) not in skip]


# (case, per sink name: (fails, close_error), expected calls for results 0, 1, 2 and close,
#  expected failures as (sink, lost, dropped, closing))
CASES = [
    ("all succeed, in order", {"a": ({}, None), "b": ({}, None), "c": ({}, None)},
     _every(range(3), "abc") + [("a", CLOSE), ("b", CLOSE), ("c", CLOSE)], []),
    ("a failing sink misses that result only, the others still get it",
     {"a": ({}, None), "b": ({1: ValueError("boom")}, None), "c": ({}, None)},
     _every(range(3), "abc") + [("a", CLOSE), ("b", CLOSE), ("c", CLOSE)],
     [("b", 1, False, False)]),
    ("a sink that lost several items says how many (the store's events)",
     {"a": ({0: SinkError("db down", lost=3), 2: SinkError("db down", lost=1)}, None),
      "b": ({}, None)},
     _every(range(3), "ab") + [("a", CLOSE), ("b", CLOSE)],
     [("a", 3, False, False), ("a", 1, False, False)]),
    ("a sink that cannot go on is dropped, reported once, and still closed",
     {"a": ({}, None), "b": ({1: SinkFailed("encoder died"), 2: SinkFailed("again")}, None),
      "c": ({}, None)},
     _every(range(3), "abc", skip={("b", 2)}) + [("a", CLOSE), ("b", CLOSE), ("c", CLOSE)],
     [("b", 1, True, False)]),
    ("close closes every sink even when one raises",
     {"a": ({}, OSError("disk full")), "b": ({}, RuntimeError("bug")), "c": ({}, None)},
     _every(range(3), "abc") + [("a", CLOSE), ("b", CLOSE), ("c", CLOSE)],
     [("a", 0, False, True), ("b", 0, False, True)]),
    ("a dropped sink's close error is the same failure: not reported again",
     {"a": ({0: SinkFailed("encoder died")}, SinkFailed("encoder died")), "b": ({}, None)},
     [("a", 0), ("b", 0), ("b", 1), ("b", 2), ("a", CLOSE), ("b", CLOSE)],
     [("a", 1, True, False)]),
]


@pytest.mark.parametrize("case, sinks, calls, failures", CASES, ids=[c[0] for c in CASES])
def test_fan_out(case, sinks, calls, failures):
    seen: list = []
    reported: list[SinkFailure] = []
    fan_out = FanOut("cam", [FakeSink(name, seen, fails, close_error)
                             for name, (fails, close_error) in sinks.items()], reported.append)
    for result in range(3):
        fan_out.on_result(result)
    fan_out.close()
    fan_out.close()  # once only
    assert seen == calls
    assert [(f.sink, f.lost, f.dropped, f.closing) for f in reported] == failures
    assert all(f.stream == "cam" for f in reported)
    dropped = {f.sink for f in reported if f.dropped}
    assert [s.name for s in fan_out.sinks] == [n for n in sinks if n not in dropped]


def test_a_run_of_failures_is_logged_once_with_the_stream_and_its_end_too(caplog):
    calls: list = []
    flaky = FakeSink("store", calls, {0: SinkError("db down"), 1: SinkError("db down")})
    fan_out = FanOut("cam", [flaky])
    with caplog.at_level(logging.DEBUG, logger="lanewatch.sinks.sink"):
        for result in range(3):
            fan_out.on_result(result)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "stream cam" in errors[0] and "db down" in errors[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["stream cam: the store output works again after 2 failed results"]


def test_the_owner_may_end_the_run_from_its_failure_callback():
    """`lanewatch process` does when its reports fail: the loop ends as on any error."""
    def stop(failure: SinkFailure) -> None:
        raise failure.error

    calls: list = []
    fan_out = FanOut("cam", [FakeSink("reports", calls, {0: OSError("disk full")}),
                             FakeSink("video", calls)], stop)
    with pytest.raises(OSError, match="disk full"):
        fan_out.on_result(0)
    fan_out.close()
    assert calls == [("reports", 0), ("reports", CLOSE), ("video", CLOSE)]


def test_serve_counts_a_failing_sink_under_its_name_and_goes_on():
    from test_live_video import result

    config = parse_config({"model": {"path": "m.pt"}, "streams": [
        {"id": "cam", "source": "a.mp4",
         "lanes": [{"name": "l1", "line": [[0, 10], [100, 10]]}]}]})
    metrics, calls, heard = ServiceMetrics(), [], []
    stream = RemoteStream(config.streams[0], config, metrics, on_result=heard.append,
                          sinks=[FakeSink("websocket", calls, {0: ValueError("bug")}),
                                 FakeSink("live_video", calls)])
    for index in range(2):
        stream._publish(result(index))
    assert calls == [("websocket", 0), ("live_video", 0), ("websocket", 1), ("live_video", 1)]
    assert len(heard) == 2 and stream.frames_processed == 2  # the listener is last
    assert metrics.dropped.labels("cam", "websocket")._value.get() == 1
    assert metrics.frames.labels("cam")._value.get() == 2  # the metrics are a sink too


def test_store_sink_counts_the_events_a_failed_write_lost():
    from test_live_video import result

    class DownStore:
        def record(self, crossings, movements):
            raise OSError("database is restarting")

    base = result(0)
    crossing = CrossingEvent("cam", "l1", 7, "car", "in", 0.1, 0)
    with_crossings = type(base)(base.frame, base.detections, base.tracks,
                                AnalyticsUpdate(base.analytics.lanes, (crossing, crossing), ()),
                                base.timings)
    sink = StoreSink(DownStore())
    sink.on_result(base)  # nothing to store: the store is not asked
    with pytest.raises(SinkError, match="cannot store 2 crossings and 0 movements") as err:
        sink.on_result(with_crossings)
    assert err.value.lost == 2 and not isinstance(err.value, SinkFailed)


def test_a_frame_the_annotated_video_cannot_draw_ends_the_video():
    from test_live_video import result

    class Broken:
        def annotate(self, result):
            raise ValueError("bad polygon")

    writer = type("W", (), {"path": "annotated.mp4"})()
    with pytest.raises(VideoWriteError, match="cannot draw frame 4 of annotated.mp4"):
        AnnotatedVideo(Broken(), writer).on_result(result(4))
    assert issubclass(VideoWriteError, SinkFailed)


@pytest.mark.parametrize("consumer, name", [
    (ReportWriter, "reports"), (AnnotatedVideo, "video"), (StoreSink, "store"),
    (ServiceMetrics, "metrics"), (WebSocketHub, "websocket"), (LiveVideo, "live_video"),
    (Listener, "listener")])
def test_every_consumer_of_results_takes_the_one_verb(consumer, name):
    assert consumer.name == name
    for verb, arguments in (("on_result", ["self", "result"]), ("close", ["self"])):
        assert list(inspect.signature(getattr(consumer, verb)).parameters) == arguments


def test_a_function_is_a_sink():
    heard: list = []
    listener = Listener(heard.append)
    listener.on_result(1)
    listener.close()
    assert heard == [1] and listener.name == "listener"
