"""Every alert in one list (sinks/alert_list.py)."""

from __future__ import annotations

from lanewatch.sinks.alert_list import alerts_of
from lanewatch.trackers.analytics.events import (
    AnalyticsUpdate,
    CongestionEvent,
    DwellEvent,
    WrongWayEvent,
)


def test_each_kind_of_alert_becomes_a_row():
    update = AnalyticsUpdate(
        lanes=(), crossings=(),
        congestion=(CongestionEvent("s", "l1", True, 6, 12.5, 375),
                    CongestionEvent("s", "l2", False, 1, 12.5, 375)),
        movements=(),
        wrong_way=(WrongWayEvent("s", "l3", 7, "car", 12.0, "m", 12.5, 375),),
        dwell=(DwellEvent("s", "bay", 9, "truck", 301.5, 12.5, 375),))
    rows = [a.row() for a in alerts_of(update)]
    assert rows == [
        ["12.500", "congestion", "l1", "", "", "6 in the lane"],
        ["12.500", "congestion_cleared", "l2", "", "", "1 in the lane"],
        ["12.500", "wrong_way", "l3", 7, "car", "12 m against the lane's direction"],
        ["12.500", "dwell", "bay", 9, "truck", "stayed 301.5 s"],
    ]
