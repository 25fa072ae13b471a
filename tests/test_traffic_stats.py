"""Traffic-engineering figures (trackers/analytics/traffic_stats.py) against values computed
by hand on synthetic crossings."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime

import pytest

from lanewatch.sinks.traffic_tables import TrafficTables
from lanewatch.trackers.analytics.events import CrossingEvent
from lanewatch.trackers.analytics.traffic_stats import (
    MIN_SAMPLE,
    ReportSettings,
    flow_bins,
    headway_stats,
    pcu_of,
    peak_hours,
)


def crossing(t, lane="l1", direction="in", cls="car"):
    return CrossingEvent("s", lane, 0, cls, direction, t, int(t * 30))


def at(times, **kw):
    return [crossing(t, **kw) for t in times]


# 15-minute counts per quarter -> (peak hour's first quarter, volume, busiest quarter, PHF)
PEAK_CASES = [
    # even flow: every hour the same, the earliest wins; PHF 1
    ([10, 10, 10, 10, 10], 0, 40, 10, 1.0),
    # 10+20+30+40 = 100 and 20+30+40+10 = 100: equally busy, the earlier hour is the peak
    ([10, 20, 30, 40, 10], 0, 100, 40, 0.625),
    # 5+30+40+25 = 100 beats 10+5+30+40 = 85 and ties 30+40+25+5 = 100 (later)
    ([10, 5, 30, 40, 25, 5], 1, 100, 40, 0.625),
    # everything in one quarter: the lowest possible PHF
    ([0, 0, 48, 0], 0, 48, 48, 0.25),
]


@pytest.mark.parametrize("quarters, first, volume, busiest, phf", PEAK_CASES)
def test_peak_hour_and_phf(quarters, first, volume, busiest, phf):
    events = [crossing(q * 900 + 1 + i * (890 / max(n, 1))) for q, n in enumerate(quarters)
              for i in range(n)]
    peaks = peak_hours(events, duration_s=len(quarters) * 900)
    lane, overall = peaks
    assert lane.lane == "l1" and overall.lane is None
    for p in (lane, overall):
        assert (p.start_s, p.end_s) == (first * 900, first * 900 + 3600)
        assert (p.vehicles, p.busiest_quarter, p.phf) == (volume, busiest, phf)


def test_no_peak_hour_under_an_hour_of_video():
    assert peak_hours(at([10, 20]), duration_s=3599) == []


def test_an_empty_hour_has_no_phf():
    (overall,) = peak_hours([], duration_s=3600)
    assert (overall.vehicles, overall.phf) == (0, None)


def test_flow_bins_rates_pcu_and_partial_intervals():
    events = (at([10, 20, 899.9], cls="car") + at([300], cls="truck")
              + at([950], cls="motorcycle") + at([100], lane="l2", direction="out"))
    bins = flow_bins(events, duration_s=1200, lanes=[("l3", "in")])
    table = {(b.lane, b.direction, b.class_name, b.start_s): b for b in bins}
    first = table[("l1", "in", "all", 0.0)]
    assert (first.end_s, first.vehicles, first.pcu, first.partial, first.per_hour) == \
        (900.0, 4, 5.0, False, 16.0)  # 3 cars + a truck (2 PCU); 4 per 15 min = 16 per hour
    assert (table[("l1", "in", "car", 0.0)].vehicles, table[("l1", "in", "truck", 0.0)].pcu) \
        == (3, 2.0)
    second = table[("l1", "in", "all", 900.0)]
    # the video ends at 1200 s: 300 s of the interval, one motorcycle -> 12 per hour
    assert (second.end_s, second.vehicles, second.pcu, second.partial, second.per_hour) == \
        (1200.0, 1, 0.4, True, 12.0)
    assert table[("l2", "out", "all", 0.0)].vehicles == 1
    assert [b.vehicles for b in bins if b.lane == "l3"] == [0, 0]  # a zero, not a gap
    # l1: car, motorcycle, truck and all; l2: car and all; l3: all; two intervals each
    assert len(bins) == 2 * (4 + 2 + 1)
    assert [b.class_name for b in bins if b.lane == "l1" and b.start_s == 0] == \
        ["car", "motorcycle", "truck", "all"]


def test_a_class_scheme_groups_classes_and_weighs_them():
    settings = ReportSettings(class_scheme={"light": ["car", "motorcycle"],
                                            "heavy": ["truck", "bus"]}, pcu={"truck": 2.5})
    events = at([1, 2], cls="car") + at([3], cls="motorcycle") + at([4], cls="truck") + \
        at([5], cls="bus") + at([6], cls="bicycle")
    got = {b.class_name: (b.vehicles, b.pcu) for b in flow_bins(events, 60, settings=settings)}
    # light: 2 cars + a motorcycle = 2.4 PCU; heavy: truck 2.5 (overridden) + bus 2
    assert got == {"light": (3, 2.4), "heavy": (2, 4.5), "bicycle": (1, 0.2), "all": (6, 7.1)}


@pytest.mark.parametrize("settings, message", [
    ({"class_scheme": {"light": ["car"], "heavy": ["car", "truck"]}},
     "'car' is in both light and heavy"),
    ({"class_scheme": {"heavy": []}}, "class_scheme.heavy: lists no model class"),
    ({"class_scheme": {"all": ["car"]}}, "'all' cannot name a report class"),
    ({"pcu": {"truck": -1}}, "pcu.truck: -1.0 is not a passenger-car equivalent"),
    ({"pcus": {"truck": 2}}, "Extra inputs are not permitted"),
])
def test_report_settings_refuse_what_cannot_be_reported(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReportSettings(**settings)


def test_flow_bins_reject_a_zero_interval():
    with pytest.raises(ValueError, match="bin_s > 0"):
        flow_bins([], duration_s=10, bin_s=0)


def test_headways_by_hand():
    # crossings at 0, 2, 5, 9, 14, 20 s: headways 2, 3, 4, 5, 6
    (h,) = headway_stats(at([5, 0, 14, 2, 20, 9]))
    assert (h.vehicles, h.headways, h.small_sample) == (6, 5, False)
    assert (h.mean_s, h.median_s, h.min_s) == (4.0, 4.0, 2.0)
    # linear interpolation: rank 0.15 * 4 = 0.6 -> 2 + 0.6 = 2.6; 0.85 * 4 = 3.4 -> 5.4
    assert (h.p15_s, h.p85_s) == (2.6, 5.4)


def test_headways_are_per_lane_and_direction():
    events = at([0, 10], lane="a") + at([1, 2], lane="b") + at([3, 4], lane="a", direction="out")
    got = {(h.lane, h.direction): h.headways for h in headway_stats(events)}
    assert got == {("a", "in"): 1, ("a", "out"): 1, ("b", "in"): 1}


@pytest.mark.parametrize("vehicles", [1, 2, MIN_SAMPLE])
def test_no_percentiles_of_a_small_sample(vehicles):
    (h,) = headway_stats(at(range(vehicles)))
    assert h.small_sample and h.headways == vehicles - 1
    assert (h.mean_s, h.median_s, h.p15_s, h.p85_s, h.min_s) == (None,) * 5


@pytest.mark.parametrize("cls, weights, expected", [
    ("car", None, 1.0), ("truck", None, 2.0), ("bus", None, 2.0), ("motorcycle", None, 0.4),
    ("tractor", None, 1.0), ("truck", {"truck": 2.5}, 2.5), ("car", {"truck": 2.5}, 1.0),
])
def test_pcu_weights(cls, weights, expected):
    assert pcu_of(cls, weights) == expected


def test_tables_csv_rows_and_summary_agree():
    # 70 minutes of lane l1: 4 cars in the first quarter, 8 in the second, 2 trucks in the
    # third, 6 cars in the fourth, 1 car in the last 10 minutes (a partial interval)
    events = (at([60 * i + 5 for i in range(4)]) + at([900 + 60 * i for i in range(8)])
              + at([1800 + 5, 1810], cls="truck") + at([2700 + 10 * i for i in range(6)])
              + at([3700]))
    t = TrafficTables.of(events, duration_s=4200, lanes=[("l1", "in"), ("l2", "in")])
    rows = {(r[2], r[4], r[0]): r for r in t.flow_rows()}
    assert rows[("l1", "all", "0")][5:10] == [4, 4.0, 16.0, 16.0, 0]
    assert rows[("l1", "all", "1800")][5:10] == [2, 4.0, 8.0, 16.0, 0]  # 2 trucks = 4 PCU
    assert rows[("l1", "truck", "1800")][5:10] == [2, 4.0, 8.0, 16.0, 0]
    assert rows[("l1", "all", "3600")][1] == "4200"
    assert rows[("l1", "all", "3600")][5:10] == [1, 1.0, 6.0, 6.0, 1]
    assert rows[("l2", "all", "0")][5:10] == [0, 0.0, 0.0, 0.0, 0]
    s = t.summary()
    # quarters 4, 8, 2, 6: the only full hour is the first, 20 vehicles, PHF 20 / (4 x 8)
    assert s["peak_hour"] == {"start_s": 0.0, "end_s": 3600.0, "vehicles": 20,
                              "busiest_15_min": 8, "phf": 0.625}
    assert s["peak_hour_by_lane"]["l1/in"]["phf"] == 0.625
    assert s["flow"]["l1/in"][-1] == {"start_s": 3600.0, "end_s": 4200.0, "vehicles": 1,
                                      "pcu": 1.0, "vehicles_per_hour": 6.0, "partial": True,
                                      "by_class": {"car": 1, "truck": 0}}
    assert s["headways"]["l1/in"]["vehicles"] == 21
    assert "l2/in" not in s["headways"]  # no vehicle, no headway


def test_a_short_video_says_why_it_has_no_peak_hour():
    s = TrafficTables.of(at([1, 2]), duration_s=11.2, lanes=[("l1", "in")]).summary()
    assert s["peak_hour"] is None
    assert s["peak_hour_note"] == "no peak hour: 0.2 minutes of video, a peak hour needs 60"


@pytest.mark.integration
def test_highway_review_writes_flow_and_headways(highway_run):
    out, _ = highway_run
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "flow.csv", newline="") as f:
        flow = list(csv.DictReader(f))
    assert {r["lane"]: int(r["vehicles"]) for r in flow if r["class"] == "all"} == {
        lane: v["total"] for lane, v in summary["lanes"].items()}
    assert {r["class"] for r in flow} == {"car", "all"}
    assert all(r["partial"] == "1" and r["interval_end_s"] == "11.178" for r in flow)
    # lane3's 5 cars in 11.178 s: 1610 an hour (a rate over the part the video covers)
    assert float(next(r for r in flow if r["lane"] == "lane3")["vehicles_per_hour"]) == \
        pytest.approx(5 * 3600 / 11.178, abs=0.1)
    with open(out / "headways.csv", newline="") as f:
        headways = {r["lane"]: r for r in csv.DictReader(f)}
    assert headways["lane3"]["small_sample"] == "1" and headways["lane3"]["p85_s"] == ""
    page = (out / "report.html").read_text()
    assert "Flow, peak hour, occupancy and headways" in page and "No peak hour: 0.2 minutes" in page


@pytest.mark.integration
def test_highway_review_writes_line_occupancy(highway_run):
    out, _ = highway_run
    with open(out / "occupancy.csv", newline="") as f:
        rows = {r["lane"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"lane1", "lane2", "lane3", "lane4"}
    for r in rows.values():
        assert (r["interval_start_s"], r["interval_end_s"], r["observed_s"]) == \
            ("0", "11.178", "11.178")
        assert float(r["occupied_s"]) == pytest.approx(
            float(r["occupancy_pct"]) * 11.178 / 100, abs=0.01)
    # lane3 carried 5 cars, lane1 one: a car is over the line for a few frames each
    assert 0 < float(rows["lane1"]["occupancy_pct"]) < float(rows["lane3"]["occupancy_pct"]) < 50
    summary = json.loads((out / "summary.json").read_text())
    lane3 = float(rows["lane3"]["occupancy_pct"])
    assert summary["traffic"]["line_occupancy_pct"]["lane3"] == lane3


def test_the_config_refuses_report_classes_it_does_not_count(tmp_path):
    import yaml

    from lanewatch.sinks.errors import ConfigError
    from lanewatch.stream.config.loading import load_config

    from conftest import CONFIGS

    config = yaml.safe_load((CONFIGS / "highway.yaml").read_text())
    config["reports"] = {"class_scheme": {"heavy": ["truck", "tractor"]}, "pcu": {"bus": 2.5}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="reports: tractor not among the counted classes"):
        load_config(path)
    config["reports"]["class_scheme"]["heavy"] = ["truck", "bus"]
    path.write_text(yaml.safe_dump(config))
    assert load_config(path).reports.report_class("bus") == "heavy"


def test_clock_times_from_the_start_of_the_recording():
    start = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
    t = TrafficTables.of(at([10, 950]), duration_s=1200, lanes=[("l1", "in")], start_time=start)
    rows = [r for r in t.flow_rows() if r[4] == "all"]
    assert [r[-1] for r in rows] == ["2026-03-02T07:30:00+00:00", "2026-03-02T07:45:00+00:00"]
    assert t.summary()["start_time"] == "2026-03-02T07:30:00+00:00"
    assert {r[-1] for r in TrafficTables.of(at([10]), 60, [("l1", "in")]).flow_rows()} == {""}


@pytest.mark.parametrize("text, expected", [
    ("2026-03-02T07:30:00+01:00", datetime(2026, 3, 2, 6, 30, tzinfo=UTC)),
    ("2026-03-02T07:30:00Z", datetime(2026, 3, 2, 7, 30, tzinfo=UTC)),
])
def test_start_time_argument(text, expected):
    from lanewatch.stream.config.arguments import clock_time

    assert clock_time(text) == expected


def test_a_bad_start_time_says_what_is_expected():
    import argparse

    from lanewatch.stream.config.arguments import clock_time

    with pytest.raises(argparse.ArgumentTypeError, match="expected a date and time such as"):
        clock_time("7:30")


@pytest.mark.integration
def test_highway_report_uses_the_videos_creation_time(highway_run):
    out, _ = highway_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start_time"] == "2019-09-27T11:22:16+00:00"
    assert summary["start_time_source"] == "the video's creation_time"
    page = (out / "report.html").read_text()
    assert "Clock times from 2019-09-27 11:22:16 UTC" in page
    assert "11:22:16-11:22:27" in page  # the one partial 15-minute interval, in clock time


@pytest.mark.parametrize("classes, noun", [
    (["car", "truck"], "vehicles"), (["bicycle"], "vehicles"), (["person"], "objects"),
    (["car", "person"], "objects"), ([], "vehicles"),
])
def test_reports_call_people_objects_not_vehicles(classes, noun):
    from lanewatch.trackers.analytics.traffic_stats import object_noun

    assert object_noun(classes) == noun


def test_gap_statistics_by_hand():
    from lanewatch.trackers.analytics.traffic_stats import gap_stats

    (a, b) = gap_stats({"a": [4.0, 0.5, 2.0, 3.0, 1.5], "b": [1.0]})
    assert (a.gaps, a.mean_s, a.median_s, a.min_s, a.small_sample) == (5, 2.2, 2.0, 0.5, False)
    # ranks 0.15 x 4 = 0.6 -> 0.5 + 0.6 x 1.0 = 1.1; 0.85 x 4 = 3.4 -> 3.0 + 0.4 x 1.0 = 3.4
    assert (a.p15_s, a.p85_s) == (1.1, 3.4)
    assert (b.gaps, b.mean_s, b.small_sample) == (1, None, True)
    rows = TrafficTables.of([], 60, [], gaps={"a": [4.0, 0.5, 2.0, 3.0, 1.5]}).gap_rows()
    assert rows == [["a", 5, 2.2, 2.0, 1.1, 3.4, 0.5, 0]]


@pytest.mark.integration
def test_highway_review_writes_gaps(highway_run):
    out, _ = highway_run
    with open(out / "gaps.csv", newline="") as f:
        gaps = {r["lane"]: r for r in csv.DictReader(f)}
    assert set(gaps) == {"lane1", "lane2", "lane3", "lane4"}
    for r in gaps.values():  # statistics only from 5 gaps on
        assert (r["small_sample"] == "1") == (int(r["gaps"]) < 5) == (r["p85_s"] == "")
    assert int(gaps["lane3"]["gaps"]) >= 4  # lane3's 5 cars leave at least 4 gaps between them
    assert "Gaps at the counting lines" in (out / "report.html").read_text()
