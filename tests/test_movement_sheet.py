"""The turning-movement count sheet (sinks/movement_sheet.py), computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from lanewatch.sinks.movement_sheet import movement_sheet
from lanewatch.trackers.analytics.events import MovementEvent
from lanewatch.trackers.analytics.traffic_stats import ReportSettings

MOVEMENTS = [("n-left", "north", "east"), ("n-through", "north", "south"),
             ("e-right", "east", "south")]


def move(t, name, cls="car"):
    origin = next(o for n, o, _ in MOVEMENTS if n == name)
    return MovementEvent("s", name, origin, "x", 1, cls, t, 0)


# per 15-minute interval: (n-left cars, n-through cars, n-through trucks, e-right cars)
QUARTERS = [(1, 4, 0, 2), (2, 6, 1, 3), (0, 5, 1, 1), (1, 8, 0, 4), (3, 1, 0, 0)]


def events():
    out = []
    for q, (left, through, trucks, right) in enumerate(QUARTERS):
        t = q * 900 + 10
        out += [move(t + i, "n-left") for i in range(left)]
        out += [move(t + i, "n-through") for i in range(through)]
        out += [move(t + i, "n-through", "truck") for i in range(trucks)]
        out += [move(t + i, "e-right") for i in range(right)]
    return out


def test_sheet_rows_totals_and_peak_hour_by_hand():
    sheet = movement_sheet(events(), MOVEMENTS, ["car", "truck"], duration_s=4200,
                           start_time=datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    rows = sheet.csv_rows()
    assert rows[0] == ["interval", "interval_start_s", "partial",
                       "north/n-left/car", "north/n-left/truck", "north/n-through/car",
                       "north/n-through/truck", "east/e-right/car", "east/e-right/truck",
                       "north/total", "east/total", "total"]
    assert rows[1] == ["07:00-07:15", "0", 0, 1, 0, 4, 0, 2, 0, 5, 2, 7]
    assert rows[2] == ["07:15-07:30", "900", 0, 2, 0, 6, 1, 3, 0, 9, 3, 12]
    assert rows[5] == ["08:00-08:10", "3600", 1, 3, 0, 1, 0, 0, 0, 4, 0, 4]  # partial
    assert rows[6] == ["total", "", "", 7, 0, 24, 2, 10, 0, 33, 10, 43]
    # only one full hour (4 full quarters): 07:00-08:00, 7 + 12 + 7 + 13 = 39
    assert rows[7] == ["peak hour from 07:00", "0", "", 4, 0, 23, 2, 10, 0, 29, 10, 39]
    # PHF: north 29 / (4 x 9) = 0.806, east 10 / (4 x 4) = 0.625, all 39 / (4 x 13) = 0.75
    assert rows[8][-3:] == [0.806, 0.625, 0.75]


def test_a_class_scheme_and_an_unnamed_movement():
    settings = ReportSettings(class_scheme={"light": ["car"], "heavy": ["truck", "bus"]})
    extra = MovementEvent("s", "south->west", "south", "west", 2, "bus", 5, 0)
    sheet = movement_sheet([*events()[:3], extra], MOVEMENTS, ["car", "truck", "bus"],
                           duration_s=600, settings=settings)
    header = sheet.csv_rows()[0]
    assert "north/n-left/light" in header and "north/n-left/heavy" in header
    assert "south/south->west/heavy" in header and "south/total" in header
    assert sheet.peak_start_s is None and sheet.phf() == [None] * 4  # 10 minutes of video
    assert sheet.label(0) == "0-10 min"
    assert [r[0] for r in sheet.csv_rows()] == ["interval", "0-10 min", "total"]
