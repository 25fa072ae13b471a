"""Time occupancy at the counting lines (trackers/analytics/time_occupancy.py), computed by
hand."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.trackers.analytics.time_occupancy import LineOccupancy, boxes_touch_segment

HORIZONTAL = np.array([[100.0, 250.0], [300.0, 250.0]])
DIAGONAL = np.array([[0.0, 0.0], [100.0, 100.0]])


@pytest.mark.parametrize("segment, box, touches", [
    (HORIZONTAL, (150, 200, 180, 260), True),  # straddles the line
    (HORIZONTAL, (150, 200, 180, 249), False),  # ends just above it
    (HORIZONTAL, (150, 250, 180, 300), True),  # its top edge on the line
    (HORIZONTAL, (50, 200, 99, 300), False),  # beside the line's start (another lane)
    (HORIZONTAL, (290, 240, 400, 260), True),  # over the line's end
    (HORIZONTAL, (120, 240, 130, 260), True),  # a small box in the middle
    (DIAGONAL, (60, 0, 100, 30), False),  # in the segment's bounding box, off the diagonal
    (DIAGONAL, (40, 40, 60, 60), True),
    (DIAGONAL, (-10, -10, 1, 1), True),  # holds the start point
    (np.array([[50.0, 0.0], [50.0, 100.0]]), (49, 200, 51, 300), False),  # vertical, beyond
    (np.array([[50.0, 0.0], [50.0, 100.0]]), (49, 90, 51, 300), True),
])
def test_box_and_segment(segment, box, touches):
    got = boxes_touch_segment(np.array([box], float), segment)
    assert got.tolist() == [touches]


def test_no_boxes():
    assert boxes_touch_segment(np.zeros((0, 4)), HORIZONTAL).shape == (0,)


ON = np.array([[150.0, 200.0, 180.0, 260.0]])
OFF = np.zeros((0, 4))


def test_occupancy_by_hand_with_a_split_at_an_interval_bound():
    occ = LineOccupancy({"a": HORIZONTAL, "b": HORIZONTAL + [400, 0]}, interval_s=10)
    # frames at 0, 4, 8, 12, 16 s; lane a occupied at 4 and 8 s -> held [4, 12): 6 s in the
    # first interval (4-10), 2 s in the second (10-12); the video ends at 18 s
    for t, boxes in [(0, OFF), (4, ON), (8, ON), (12, OFF), (16, OFF)]:
        occ.update(boxes, t)
    rows = {(r.interval_start_s, r.lane): r for r in occ.table(end_s=18)}
    first, second = rows[(0, "a")], rows[(10, "a")]
    assert (first.interval_end_s, first.occupied_s, first.observed_s, first.occupancy_pct) == \
        (10, 6.0, 10.0, 60.0)
    assert (second.interval_end_s, second.occupied_s, second.observed_s, second.occupancy_pct) \
        == (18, 2.0, 8.0, 25.0)
    assert rows[(0, "b")].occupied_s == 0 and rows[(10, "b")].occupancy_pct == 0.0


def test_one_interval_for_the_whole_video():
    occ = LineOccupancy({"a": HORIZONTAL}, interval_s=float("inf"))
    for t, boxes in [(0, ON), (1, OFF), (3, ON)]:
        occ.update(boxes, t)
    (row,) = occ.table(end_s=4)
    assert (row.interval_start_s, row.interval_end_s, row.occupied_s, row.occupancy_pct) == \
        (0, 4, 2.0, 50.0)


def test_nothing_observed_gives_no_rows():
    assert LineOccupancy({"a": HORIZONTAL}, 60).table(end_s=10) == []


def test_a_live_service_keeps_only_the_latest_intervals():
    occ = LineOccupancy({"a": HORIZONTAL}, interval_s=10, retain_intervals=2)
    for t in range(0, 60, 5):
        occ.update(ON, t)
    assert [r.interval_start_s for r in occ.table(end_s=60)] == [40, 50]


def test_gaps_are_the_vacant_times_between_objects():
    occ = LineOccupancy({"a": HORIZONTAL}, interval_s=60)
    # vacant until 1 s (not a gap: nothing left before), occupied 1-3, vacant 3-7 (gap 4),
    # occupied 7-8, vacant 8-8.5 (gap 0.5), occupied 8.5-9, vacant to the end (not a gap)
    for t, boxes in [(0, OFF), (1, ON), (2, ON), (3, OFF), (5, OFF), (7, ON), (8, OFF),
                     (8.5, ON), (9, OFF), (12, OFF)]:
        occ.update(boxes, t)
    assert occ.gaps == {"a": [4.0, 0.5]}
