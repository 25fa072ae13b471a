"""GET /api/streams/{id}/traffic's figures (stream/serve/traffic_api.py) from a real count
store (SQLite), computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lanewatch.sinks.store import CountStore
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.serve import traffic_api
from lanewatch.stream.serve.traffic_api import TrafficQueryError, time_range, traffic_figures
from lanewatch.trackers.analytics.events import CrossingEvent

from conftest import CONFIGS

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a quarter-hour boundary


@dataclass
class _Runner:  # the two members traffic_figures reads of a RunningStream
    stream: object
    lanes: tuple = ()


@pytest.mark.parametrize("query, expected", [
    ({"since": str(T0 + 100), "until": str(T0 + 4000)}, (T0, T0 + 4000)),
    ({"until": str(T0 + 86400)}, (T0, T0 + 86400)),
    ({}, (T0 + 86400 - 900, T0 + 2 * 86400 - 100)),  # now = T0 + 2 days - 100 s
])
def test_time_range(query, expected):
    assert time_range(query, now=T0 + 2 * 86400 - 100) == expected


@pytest.mark.parametrize("query, message", [
    ({"since": "x"}, "since and until are Unix seconds"),
    ({"since": "nan", "until": "5"}, "finite Unix seconds, since < until"),
    ({"since": "10", "until": "1e400"}, "finite Unix seconds"),
    ({"since": "10", "until": "5"}, "since < until"),
    ({"since": "0", "until": str(8 * 86400)}, "at most 7 days"),
])
def test_bad_ranges_say_how_to_fix_them(query, message):
    with pytest.raises(TrafficQueryError, match=message):
        time_range(query, now=T0)


def test_figures_from_the_store(tmp_path, monkeypatch):
    config = load_config(CONFIGS / "highway.yaml")
    store = CountStore(tmp_path / "counts.db", interval_s=60)
    times = [T0 + 60 * i for i in range(10)] + [T0 + 900 + 30]
    store.record([CrossingEvent("highway", "lane1", i, "car", "towards", t, i)
                  for i, t in enumerate(times)])
    runner = _Runner(config.streams[0])
    reply = traffic_figures(runner, config, store, {"since": str(T0), "until": str(T0 + 1800)})
    (bins,) = reply["flow"].values()
    assert [(b["start_s"], b["vehicles"], b["vehicles_per_hour"]) for b in bins] == [
        (T0, 10, 40.0), (T0 + 900, 1, 4.0)]
    assert reply["headways"]["lane1/towards"]["median_s"] == 60.0
    monkeypatch.setattr(traffic_api, "MAX_CROSSINGS", 5)
    with pytest.raises(TrafficQueryError, match="more than 5 crossings in the range"):
        traffic_figures(runner, config, store, {"since": str(T0), "until": str(T0 + 1800)})
    store.close()
