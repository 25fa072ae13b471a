"""Prometheus exposition of the service metrics."""

from prometheus_client.parser import text_string_to_metric_families

from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.trackers.analytics.counts import CountKey
from lanewatch.trackers.analytics.lane_analytics import (
    AnalyticsUpdate,
    CrossingEvent,
    DwellEvent,
    LaneState,
    MovementEvent,
    WrongWayEvent,
)


def samples(metrics):
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_names_labels_and_values():
    m = ServiceMetrics()
    m.frames.labels("cam").inc(3)
    m.dropped.labels("cam", "source").inc()
    m.stage_seconds.labels("cam", "detect").observe(0.03)
    m.latency.labels("cam").observe(0.08)
    m.stream_up.labels("cam").set(1)
    m.reconnects.labels("cam").inc()
    m.observe_crossings((CrossingEvent("cam", "lane1", 7, "car", "in", 1.0, 30),))
    m.observe_lanes("cam", (LaneState("lane1", 4, True, 2.5, {"in": 1}),))
    m.ws_clients.set(2)
    m.set_state("cam", "reconnecting", ["starting", "running", "reconnecting"])
    s = samples(m)
    assert s[("lanewatch_stream_state", (("state", "reconnecting"), ("stream", "cam")))] == 1
    assert s[("lanewatch_stream_state", (("state", "running"), ("stream", "cam")))] == 0
    assert s[("lanewatch_frames_total", (("stream", "cam"),))] == 3
    assert s[("lanewatch_frames_dropped_total", (("stage", "source"), ("stream", "cam")))] == 1
    assert s[("lanewatch_stage_seconds_count", (("stage", "detect"), ("stream", "cam")))] == 1
    assert s[("lanewatch_latency_seconds_bucket", (("le", "0.1"), ("stream", "cam")))] == 1
    assert s[("lanewatch_stream_up", (("stream", "cam"),))] == 0  # set_state: reconnecting
    assert s[("lanewatch_reconnects_total", (("stream", "cam"),))] == 1
    key = (("class", "car"), ("direction", "in"), ("lane", "lane1"), ("stream", "cam"))
    assert s[("lanewatch_lane_crossings_total", key)] == 1
    assert s[("lanewatch_lane_occupancy", (("lane", "lane1"), ("stream", "cam")))] == 4
    assert s[("lanewatch_lane_congested", (("lane", "lane1"), ("stream", "cam")))] == 1
    assert s[("lanewatch_websocket_clients", ())] == 2
    assert not any("track" in name or any(k == "track_id" for k, _ in labels)
                   for name, labels in s)


def test_restored_counters_and_separate_registries():
    a, b = ServiceMetrics(), ServiceMetrics()
    a.restore_crossings("cam", {CountKey("lane1", "car", "in"): 41})
    a.observe_crossings((CrossingEvent("cam", "lane1", 7, "car", "in", 1.0, 30),))
    key = (("class", "car"), ("direction", "in"), ("lane", "lane1"), ("stream", "cam"))
    assert samples(a)[("lanewatch_lane_crossings_total", key)] == 42
    assert ("lanewatch_lane_crossings_total", key) not in samples(b)


def test_traffic_analytics_metrics():
    m = ServiceMetrics()
    update = AnalyticsUpdate(
        lanes=(LaneState("lane1", 5, False, 2.0, {"in": 2}, queue=3),),
        crossings=(CrossingEvent("cam", "lane1", 1, "car", "in", 1.0, 30, speed_kmh=87.0),
                   CrossingEvent("cam", "lane1", 2, "car", "in", 1.5, 45, None, True)),
        congestion=(),
        movements=(MovementEvent("cam", "sb-left", "north", "east", 3, "bus", 2.0, 60),),
        wrong_way=(WrongWayEvent("cam", "lane1", 4, "car", 9.0, "m", 2.0, 60),),
        dwell=(DwellEvent("cam", "north", 5, "car", 300.0, 2.0, 60),))
    m.observe_update("cam", update)
    m.restore_movements("cam", [("sb-left", "north", "east", "bus", 4)])
    s = samples(m)
    lane = (("lane", "lane1"), ("stream", "cam"))
    assert s[("lanewatch_lane_queue", lane)] == 3
    assert s[("lanewatch_speed_kmh_count", lane)] == 1
    assert s[("lanewatch_speed_kmh_bucket", (("lane", "lane1"), ("le", "90.0"),
                                             ("stream", "cam")))] == 1
    assert s[("lanewatch_speeds_rejected_total", lane)] == 1
    assert s[("lanewatch_lane_crossings_total", (("class", "car"), ("direction", "in"),
                                                 ("lane", "lane1"), ("stream", "cam")))] == 2
    assert s[("lanewatch_movements_total", (("class", "bus"), ("movement", "sb-left"),
                                            ("stream", "cam")))] == 5
    assert s[("lanewatch_wrong_way_total", lane)] == 1
    assert s[("lanewatch_dwell_alerts_total", (("area", "north"), ("stream", "cam")))] == 1
