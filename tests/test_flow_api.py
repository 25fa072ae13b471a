"""GET /api/streams/{id}/flow's figures (stream/serve/flow_api.py): where the chart starts, the
partial bin, lane colours, and the query's bounds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lanewatch.sinks.overlay_layout import LANE_PALETTE
from lanewatch.stream.serve.flow_api import FlowQueryError, flow_figures

NOW = 10_000.0  # bins of 30 s: the current one starts at 9990


class Store:
    def __init__(self, found):
        self.found = found

    def flow(self, stream, since_s, bin_s):
        return self.found


def runner(lanes=("a", "b", "c"), without_line=()):
    return SimpleNamespace(stream=SimpleNamespace(id="cam", lanes=[
        SimpleNamespace(name=n, line=None if n in without_line else object()) for n in lanes]))


@pytest.mark.parametrize("started, found, first", [
    (9_950.0, {}, 9_930.0),  # the service's start, rounded down to its bin
    (1_000.0, {}, 9_120.0),  # started long ago: the window's start
    (9_950.0, {"a": {25: 1}}, 9_120.0 + 25 * 30),  # a stored crossing before the start
])
def test_the_chart_starts_at_the_service_start_or_earlier_data(started, found, first):
    reply = flow_figures(runner(), Store(found), {}, started, now=NOW)
    assert reply["start_s"] == 9_120.0  # 30 bins ending with the one holding now
    assert reply["first_s"] == first
    assert reply["partial_s"] == 9_990.0 and reply["service_started_s"] == started


def test_colours_follow_the_configured_lane_order_old_lanes_after():
    reply = flow_figures(runner(without_line=("b",)), Store({"gone": {0: 2}}), {}, NOW,
                         now=NOW)
    assert list(reply["lanes"]) == ["a", "c", "gone"]  # lanes with lines, then stored ones
    assert reply["colors"] == {"a": LANE_PALETTE[0], "c": LANE_PALETTE[2],
                               "gone": LANE_PALETTE[3]}
    assert reply["lanes"]["gone"][0] == 2 and len(reply["lanes"]["a"]) == 30


@pytest.mark.parametrize("query, message", [
    ({"minutes": "x"}, "numbers"),
    ({"minutes": "0"}, "minutes must be in"),
    ({"minutes": "1440", "bin_s": "1"}, "at most 2000 bins"),
])
def test_bad_queries_say_how_to_fix_them(query, message):
    with pytest.raises(FlowQueryError, match=message):
        flow_figures(runner(), Store({}), query, NOW, now=NOW)
