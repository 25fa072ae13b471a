"""GET /api/streams/{id}/traffic: a live stream's flow rates, peak hour and headways, from the
count store's crossings, with the same code and figures as a review's flow.csv, headways.csv
and summary.json `traffic` (sinks/traffic_tables.py).

    ?since=&until=   Unix seconds (default: the last 24 hours); at most MAX_RANGE_S apart.
                     Intervals are 15 minutes of clock time: `since` is rounded down to one.
"""

from __future__ import annotations

import math
import time
from typing import Any

from lanewatch.sinks.traffic_tables import TrafficTables
from lanewatch.stream.config.schema import Config
from lanewatch.stream.pipeline.running_stream import RunningStream
from lanewatch.trackers.analytics.traffic_stats import QUARTER_S

MAX_RANGE_S = 7 * 86400  # a week of 15-minute rows per lane: a few thousand
MAX_CROSSINGS = 200_000  # more: ask for a shorter range (memory and time of one reply)


class TrafficQueryError(ValueError):
    """The query cannot be answered; the message says how to fix it."""


def time_range(query: dict[str, str], now: float | None = None) -> tuple[float, float]:
    """(since, until) of ?since=&until=, since rounded down to a quarter hour."""
    now = time.time() if now is None else now
    try:
        until = float(query.get("until", now))
        since = float(query.get("since", until - 86400))
    except ValueError:
        raise TrafficQueryError("since and until are Unix seconds") from None
    if not (math.isfinite(since) and math.isfinite(until)) or since >= until:
        raise TrafficQueryError("since and until must be finite Unix seconds, since < until")
    if until - since > MAX_RANGE_S:
        raise TrafficQueryError(f"at most {MAX_RANGE_S // 86400} days at once; ask for "
                                "consecutive ranges")
    return math.floor(since / QUARTER_S) * QUARTER_S, until


def traffic_figures(runner: RunningStream, config: Config, store, query: dict[str, str],
                    now: float | None = None) -> dict[str, Any]:
    """The reply's JSON: the range, flow per 15 minutes (every class and per report class),
    the peak hour and PHF when the range holds a full hour, headways per lane."""
    since, until = time_range(query, now)
    sid = runner.stream.id
    crossings = store.crossings(sid, since, until, MAX_CROSSINGS + 1)
    if len(crossings) > MAX_CROSSINGS:
        raise TrafficQueryError(f"more than {MAX_CROSSINGS} crossings in the range; ask for a "
                                "shorter one")
    lanes = runner.lanes or ()
    tables = TrafficTables.of(crossings, until - since,
                              [(lane.name, label) for lane in lanes for label in lane.labels()],
                              config.reports, origin_s=since)
    return {"stream": sid, "since": since, "until": until, **tables.summary()}
