"""One verb for every consumer of results, and one place where a consumer's failure is handled.

A `Sink` takes each frame's `FrameResult` (`on_result`) and is told when no more will come
(`close`): the reports, the annotated video, the count store, the metrics, the WebSocket hub
and the live video alike. A `FanOut` hands each result to its sinks in order; `lanewatch
process` and `lanewatch serve` both use it, so what a failing consumer costs is decided here
once: that sink misses that result (logged, and reported to the fan-out's owner, who counts
or records it), the sinks after it still get it, and the stream goes on. A sink that cannot go
on at all (an encoder that died) raises `SinkFailed` and gets no more results; one that raises
anything else is tried again with the next result (a store write while its database restarts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from lanewatch.sinks.results import FrameResult

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A sink lost this result, with `lost` items of it (1: the frame; the store: the
    crossings and movements it could not write); it takes the next result as usual."""

    def __init__(self, message: str, lost: int = 1):
        super().__init__(message)
        self.lost = lost


class SinkFailed(SinkError):
    """The sink cannot go on (its output is broken for good): the fan-out gives it no more
    results, and still closes it at the end (its threads and files are released)."""


class Sink(Protocol):
    """A consumer of a stream's results."""

    name: str  # the sink in logs and in lanewatch_frames_dropped_total{stage}

    def on_result(self, result: FrameResult) -> None:
        """Take one frame's result. Called on the producer's thread, in frame order: return
        quickly (slow work belongs on the sink's own thread)."""
        ...

    def close(self) -> None:
        """No more results come: finish and release what the sink holds for this producer
        (a sink shared by several streams, or owned by someone else, releases nothing)."""
        ...


class Listener:
    """A plain function of results as a sink (tests, the benchmark, the cluster actor)."""

    name = "listener"

    def __init__(self, function: Callable[[FrameResult], None]):
        self.function = function

    def on_result(self, result: FrameResult) -> None:
        """Call the function with the result."""
        self.function(result)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class SinkFailure:
    """One failure of one sink, as reported to the fan-out's owner."""

    stream: str
    sink: str  # the sink's name
    error: Exception
    lost: int  # items of the result the sink lost (0 when `close` raised)
    dropped: bool  # the sink gets no more results
    closing: bool  # raised by `close`, not by `on_result`


@dataclass
class _Entry:
    sink: Sink
    failures: int = 0  # in a row; logged at the first, and when the sink works again
    dropped: bool = False


class FanOut:
    """Hands each result to its sinks, in order, each failure isolated.

    Order matters: in `serve` the store comes first, so a crossing is committed before the
    metrics, the API and the WebSocket clients see it. `on_failure` hears of every failure
    (serve counts it in the metrics, process records its message); it may raise to end the
    run (process does when its reports fail), which the sinks after the failing one then miss.
    Not thread-safe: one producer thread calls `on_result` and then `close`.
    """

    def __init__(self, stream: str, sinks: Iterable[Sink],
                 on_failure: Callable[[SinkFailure], None] | None = None):
        self.stream = stream
        self._entries = [_Entry(sink) for sink in sinks]
        self._on_failure = on_failure
        self._closed = False

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks that still take results (those that raised `SinkFailed` are left out)."""
        return tuple(e.sink for e in self._entries if not e.dropped)

    def on_result(self, result: FrameResult) -> None:
        """Hand `result` to every sink still taking results."""
        for entry in self._entries:
            if entry.dropped:
                continue
            try:
                entry.sink.on_result(result)
            except Exception as err:  # noqa: BLE001 - a sink's failure is not the stream's
                self._failed(entry, err, closing=False)
            else:
                if entry.failures:
                    log.warning("stream %s: the %s output works again after %d failed "
                                "results", self.stream, entry.sink.name, entry.failures)
                    entry.failures = 0

    def close(self) -> None:
        """Close every sink, the dropped ones too, even when one's `close` raises; once."""
        if self._closed:
            return
        self._closed = True
        for entry in self._entries:
            try:
                entry.sink.close()
            except Exception as err:  # noqa: BLE001 - the others are closed all the same
                if entry.dropped:  # the same broken output, reported when it was dropped
                    log.debug("stream %s: closing the dropped %s output: %s", self.stream,
                              entry.sink.name, err)
                else:
                    self._failed(entry, err, closing=True)

    def _failed(self, entry: _Entry, err: Exception, closing: bool) -> None:
        """Log the failure (the first of a run of them, and a sink's end) and report it."""
        name = entry.sink.name
        entry.dropped = entry.dropped or isinstance(err, SinkFailed)
        entry.failures += 1
        traceback = not isinstance(err, SinkError)  # a SinkError's message says it all
        if closing:
            log.error("stream %s: closing the %s output failed: %s", self.stream, name, err,
                      exc_info=traceback)
        elif entry.dropped:
            log.error("stream %s: the %s output failed: %s; the other outputs go on without "
                      "it", self.stream, name, err, exc_info=traceback)
        elif entry.failures == 1:
            log.error("stream %s: the %s output failed: %s; it is tried again with each "
                      "result (further failures are counted, not logged)", self.stream, name,
                      err, exc_info=traceback)
        lost = 0 if closing else err.lost if isinstance(err, SinkError) else 1
        if self._on_failure is not None:
            self._on_failure(SinkFailure(self.stream, name, err, lost, entry.dropped,
                                         closing))
