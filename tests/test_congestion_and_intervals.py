"""Congestion debouncing and interval binning, as tables."""

import pytest
from pydantic import ValidationError

from lanewatch.trackers.analytics.congestion import CongestionMonitor
from lanewatch.trackers.analytics.counts import CountBook, CountKey
from lanewatch.trackers.analytics.lanes import CongestionSettings

# (settings, [(time_s, occupancy, max_dwell_s)], expected flag after each step)
CONGESTION_CASES = {
    "occupancy must hold for min_duration": (
        dict(min_occupancy=3, min_duration_s=2),
        [(0, 3, 0), (1, 4, 0), (2, 3, 0), (3, 3, 0)],
        [False, False, True, True],
    ),
    "a dip resets the timer": (
        dict(min_occupancy=3, min_duration_s=2),
        [(0, 3, 0), (1, 3, 0), (1.5, 1, 0), (2.5, 3, 0), (4, 3, 0), (4.5, 3, 0)],
        [False, False, False, False, False, True],
    ),
    "clearing needs clear_after_s of calm": (
        dict(min_occupancy=2, min_duration_s=0, clear_after_s=3),
        [(0, 2, 0), (1, 0, 0), (3, 0, 0), (4, 0, 0)],
        [True, True, True, False],
    ),
    "a brief calm does not clear": (
        dict(min_occupancy=2, min_duration_s=1),
        [(0, 2, 0), (1, 2, 0), (2, 0, 0), (2.5, 2, 0), (3, 0, 0), (3.5, 2, 0)],
        [False, True, True, True, True, True],
    ),
    "dwell alone triggers": (
        dict(min_dwell_s=30, min_duration_s=5),
        [(0, 1, 10), (10, 1, 31), (14, 1, 35), (15, 1, 36)],
        [False, False, False, True],
    ),
    "either condition": (
        dict(min_occupancy=5, min_dwell_s=30, min_duration_s=0),
        [(0, 1, 0), (1, 5, 0), (2, 1, 0), (3, 1, 40)],
        [False, True, False, True],
    ),
}


@pytest.mark.parametrize("name", list(CONGESTION_CASES))
def test_congestion(name):
    settings, steps, expected = CONGESTION_CASES[name]
    monitor = CongestionMonitor(CongestionSettings(**settings))
    flags = []
    for t, occ, dwell in steps:
        monitor.update(occ, dwell, t)
        flags.append(monitor.congested)
    assert flags == expected


def test_congestion_update_reports_changes_only():
    monitor = CongestionMonitor(CongestionSettings(min_occupancy=1, min_duration_s=0))
    assert [monitor.update(o, 0, t) for t, o in enumerate([1, 1, 0, 0, 1])] == [
        True, False, True, False, True]


def test_congestion_needs_a_threshold():
    with pytest.raises(ValidationError, match="min_occupancy, min_dwell_s, min_queue"):
        CongestionSettings(min_duration_s=3)


@pytest.mark.parametrize("occupancy, dwell, queue, congested", [
    (5, 0.0, 0, False),  # a full but moving lane is not a queue
    (5, 0.0, 3, True),
    (2, 0.0, 2, False),
])
def test_congestion_by_queue_length(occupancy, dwell, queue, congested):
    monitor = CongestionMonitor(CongestionSettings(min_queue=3, min_duration_s=0))
    assert monitor.condition(occupancy, dwell, queue) is congested


KEY_A = CountKey("A", "car", "in")
KEY_B = CountKey("B", "truck", "out")


@pytest.mark.parametrize(
    "interval, times, expected",
    [
        (60, [0, 59.9, 60, 125], {(0, KEY_A): 2, (60, KEY_A): 1, (120, KEY_A): 1}),
        (900, [0, 899, 900], {(0, KEY_A): 2, (900, KEY_A): 1}),
        (1, [0.5, 3.5], {(0, KEY_A): 1, (1, KEY_A): 0, (2, KEY_A): 0, (3, KEY_A): 1}),
    ],
)
def test_interval_binning_with_zero_rows(interval, times, expected):
    book = CountBook(interval)
    for t in times:
        book.add(KEY_A, t)
    rows = {(r.interval_start_s, CountKey(r.lane, r.class_name, r.direction)): r.count
            for r in book.interval_table([KEY_A])}
    assert rows == expected
    assert book.total() == len(times)


def test_interval_table_crosses_every_key_and_reaches_observed_time():
    book = CountBook(60)
    book.add(KEY_A, 10)
    book.observe_time(130)  # time went on without crossings
    rows = book.interval_table([KEY_A, KEY_B])
    assert len(rows) == 3 * 2
    assert sum(r.count for r in rows) == 1
    assert {r.interval_start_s for r in rows} == {0, 60, 120}


def test_interval_origin():
    book = CountBook(60, origin_s=1000)
    book.add(KEY_A, 1061)
    assert [(r.interval_start_s, r.count) for r in book.interval_table([])] == [
        (1000, 0), (1060, 1)]


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        CountBook(0)


def test_interval_history_in_memory_is_bounded_when_asked():
    """A live service keeps 2 intervals in memory (the store has the rest); totals are kept."""
    book = CountBook(interval_s=60, retain_intervals=2)
    key = CountKey("A", "car", "in")
    for minute in range(100):
        book.add(key, minute * 60 + 1)
    assert book.cumulative[key] == 100
    assert sorted({k for k, _ in book._intervals}) == [97, 98, 99]
    book.observe_time(200 * 60)
    assert not book._intervals
