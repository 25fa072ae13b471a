"""Traffic-engineering figures from counted crossings: flow rates, the peak hour and its
peak-hour factor, headways, passenger-car units.

Pure functions of the crossing events (and the span of video they came from), so the review's
report, the API and counts.csv can give the same figures. Definitions follow the Highway
Capacity Manual (HCM 7th ed., ch. 4):

- flow rate: vehicles in an interval expressed per hour (15-minute count x 4);
- peak hour: the 60 consecutive minutes, starting on a 15-minute boundary, with the most
  vehicles; its peak-hour factor PHF = hourly volume / (4 x the busiest 15 minutes in it), 1.0
  for perfectly even flow, 0.25 when the whole hour came in one quarter;
- headway: the time between successive vehicles passing the same point (here a lane's
  counting line, per direction), front to front.

An interval that the video covers only in part is `partial`: its count is real but its rate is
not an hourly flow, and a peak hour is only given for a full hour of video. Percentiles of a
handful of vehicles mean nothing, so statistics of fewer than `MIN_SAMPLE` headways are left
out (None) and flagged `small_sample`. Percentiles interpolate linearly between the closest
ranks (NumPy's default).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanewatch.trackers.analytics.events import CrossingEvent

QUARTER_S = 900.0
HOUR_S = 3600.0
MIN_SAMPLE = 5  # headways: fewer and no percentile is given (an 85th of 2 values is noise)

ALL_CLASSES = "all"  # the class of flow rows that sum every class

# Passenger-car equivalents of the COCO classes a traffic camera counts (UK DMRB TA 79/99 and
# HCM values rounded: a bus or a lorry takes about two car spaces, a motorcycle less than half
# a car's). A class not listed weighs 1.0; the config can override any of them.
DEFAULT_PCU = {"car": 1.0, "truck": 2.0, "bus": 2.0, "motorcycle": 0.4, "bicycle": 0.2,
               "person": 0.0}


class ReportSettings(BaseModel):
    """How reports group and weigh classes (the `reports:` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_scheme: dict[str, list[str]] | None = Field(
        None, description="report classes and the model classes each one groups, e.g. "
        "{light: [car, motorcycle], heavy: [truck, bus]}; a class not listed is reported "
        "under its own name; default: the model's classes")
    pcu: dict[str, float] = Field(
        default_factory=dict, description="passenger-car units of model classes, overriding "
        "the defaults (car 1, motorcycle 0.4, bus 2, truck 2, bicycle 0.2, person 0)")

    @model_validator(mode="after")
    def _one_group_each(self) -> ReportSettings:
        seen: dict[str, str] = {}
        for group, members in (self.class_scheme or {}).items():
            if not group.strip() or group == ALL_CLASSES:
                raise ValueError(f"class_scheme: '{group}' cannot name a report class "
                                 f"('{ALL_CLASSES}' is the total of every class)")
            if not members:
                raise ValueError(f"class_scheme.{group}: lists no model class")
            for member in members:
                if member in seen:
                    raise ValueError(f"class_scheme: '{member}' is in both {seen[member]} and "
                                     f"{group}; a model class belongs to one report class")
                seen[member] = group
        for name, weight in self.pcu.items():
            if not 0 <= weight <= 10:
                raise ValueError(f"pcu.{name}: {weight} is not a passenger-car equivalent "
                                 "(0 to 10; a car is 1, an articulated lorry about 2.5)")
        return self

    def report_class(self, model_class: str) -> str:
        """The report class a model class is counted in."""
        for group, members in (self.class_scheme or {}).items():
            if model_class in members:
                return group
        return model_class

    def model_classes(self) -> set[str]:
        """Every model class the settings name (to check against the counted classes)."""
        return {c for members in (self.class_scheme or {}).values() for c in members} | set(
            self.pcu)


@dataclass(frozen=True)
class FlowBin:
    """Vehicles of one lane, direction and report class (or ALL_CLASSES) in one interval.

    Attributes:
        start_s, end_s: the interval in video seconds (end_s is where the video ended when the
            interval is partial).
        lane, direction, class_name: where and what.
        vehicles: crossings counted.
        pcu: the same in passenger-car units.
        partial: the video covers less than the whole interval.
        per_hour: vehicles per hour over the covered span (None for an empty span).
    """

    start_s: float
    end_s: float
    lane: str
    direction: str
    class_name: str
    vehicles: int
    pcu: float
    partial: bool
    per_hour: float | None


@dataclass(frozen=True)
class PeakHour:
    """The busiest hour of a lane and direction (or of all lanes: lane is None).

    Attributes:
        start_s, end_s: the hour, on 15-minute boundaries from the video's start.
        vehicles: the hour's volume.
        busiest_quarter: the most vehicles in one of its four 15-minute intervals.
        phf: the peak-hour factor, vehicles / (4 x busiest_quarter); None for an empty hour.
    """

    lane: str | None
    direction: str | None
    start_s: float
    end_s: float
    vehicles: int
    busiest_quarter: int
    phf: float | None


@dataclass(frozen=True)
class HeadwayStats:
    """Time headways of one lane and direction, in seconds.

    `mean_s`, `median_s`, `p15_s`, `p85_s` and `min_s` are None when there are fewer than
    MIN_SAMPLE headways (`small_sample`); `headways` is always the count.
    """

    lane: str
    direction: str
    vehicles: int
    headways: int
    mean_s: float | None
    median_s: float | None
    p15_s: float | None
    p85_s: float | None
    min_s: float | None
    small_sample: bool


VEHICLE_CLASSES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle", "train"})


def object_noun(class_names: Iterable[str]) -> str:
    """What reports call the things counted: "vehicles" when every class is a vehicle,
    else "objects" (people are not vehicles)."""
    return "vehicles" if set(class_names) <= VEHICLE_CLASSES else "objects"


def pcu_of(class_name: str, weights: Mapping[str, float] | None = None) -> float:
    """A class's passenger-car units: the given weights, else DEFAULT_PCU, else 1."""
    if weights is not None and class_name in weights:
        return float(weights[class_name])
    return DEFAULT_PCU.get(class_name, 1.0)


def _groups(events: Iterable[CrossingEvent]) -> dict[tuple[str, str], list[CrossingEvent]]:
    groups: dict[tuple[str, str], list[CrossingEvent]] = defaultdict(list)
    for e in events:
        groups[(e.lane, e.direction)].append(e)
    return groups


def flow_bins(events: Iterable[CrossingEvent], duration_s: float, bin_s: float = QUARTER_S,
              origin_s: float = 0.0, lanes: Iterable[tuple[str, str]] = (),
              settings: ReportSettings | None = None) -> list[FlowBin]:
    """Counts per lane, direction, report class (and ALL_CLASSES) and interval of `bin_s`
    from `origin_s` over `duration_s` of video, with hourly rates; `lanes` adds (lane,
    direction) pairs that counted nothing (an empty lane is a zero, not a missing row)."""
    if bin_s <= 0 or duration_s < 0:
        raise ValueError(f"need bin_s > 0 and duration_s >= 0, got {bin_s}, {duration_s}")
    settings = settings or ReportSettings()
    end = origin_s + duration_s
    n_bins = max(1, math.ceil(duration_s / bin_s - 1e-9))
    tallies: dict[tuple[str, str, str], list[list[float]]] = {}

    def tally(key: tuple[str, str, str]) -> list[list[float]]:
        return tallies.setdefault(key, [[0] * n_bins, [0.0] * n_bins])

    for lane, direction in lanes:
        tally((lane, direction, ALL_CLASSES))
    for e in events:
        k = min(n_bins - 1, max(0, int((e.time_s - origin_s) // bin_s)))
        units = pcu_of(e.class_name, settings.pcu)
        for cls in (settings.report_class(e.class_name), ALL_CLASSES):
            vehicles, pcu = tally((e.lane, e.direction, cls))
            vehicles[k] += 1
            pcu[k] += units
    out = []
    for (lane, direction, cls), (vehicles, pcu) in sorted(
            tallies.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] == ALL_CLASSES,
                                             kv[0][2])):
        for k in range(n_bins):
            start = origin_s + k * bin_s
            span = min(start + bin_s, end) - start
            out.append(FlowBin(start, start + span, lane, direction, cls, int(vehicles[k]),
                               round(pcu[k], 3), span < bin_s - 1e-6,
                               vehicles[k] * HOUR_S / span if span > 0 else None))
    return out


def peak_hours(events: Iterable[CrossingEvent], duration_s: float,
               origin_s: float = 0.0) -> list[PeakHour]:
    """The peak hour of each lane and direction, then of all of them together (lane None):
    none at all when the video is shorter than an hour (a partial hour has no PHF)."""
    events = list(events)
    quarters = int((duration_s + 1e-6) // QUARTER_S)
    if quarters < 4:
        return []
    groups = {**_groups(events), (None, None): events}
    out = []
    for (lane, direction), group in groups.items():
        counts = np.zeros(quarters, int)
        for e in group:
            k = int((e.time_s - origin_s) // QUARTER_S)
            if 0 <= k < quarters:
                counts[k] += 1
        hourly = np.convolve(counts, np.ones(4, int), mode="valid")
        best = int(np.argmax(hourly))  # the earliest of equally busy hours
        volume, busiest = int(hourly[best]), int(counts[best:best + 4].max())
        start = origin_s + best * QUARTER_S
        out.append(PeakHour(lane, direction, start, start + HOUR_S, volume, busiest,
                            round(volume / (4 * busiest), 3) if busiest else None))
    return out


def headway_stats(events: Iterable[CrossingEvent]) -> list[HeadwayStats]:
    """Headways per lane and direction: the gaps between successive crossing times."""
    out = []
    for (lane, direction), group in sorted(_groups(events).items()):
        times = np.sort([e.time_s for e in group])
        gaps = np.diff(times)
        out.append(HeadwayStats(lane, direction, len(times), len(gaps), *_figures(gaps),
                                len(gaps) < MIN_SAMPLE))
    return out


@dataclass(frozen=True)
class GapStats:
    """Gaps at one lane's counting line, in seconds: the vacant time between objects (see
    time_occupancy.py); the figures are None under MIN_SAMPLE gaps (`small_sample`)."""

    lane: str
    gaps: int
    mean_s: float | None
    median_s: float | None
    p15_s: float | None
    p85_s: float | None
    min_s: float | None
    small_sample: bool


def gap_stats(gaps: Mapping[str, list[float]]) -> list[GapStats]:
    """Statistics of each lane's gaps (LineOccupancy.gaps)."""
    return [GapStats(lane, len(values), *_figures(np.asarray(values, float)),
                     len(values) < MIN_SAMPLE) for lane, values in gaps.items()]


def _figures(values: np.ndarray) -> list[float | None]:
    """Mean, median, 15th and 85th percentile and minimum; None each under MIN_SAMPLE."""
    if len(values) < MIN_SAMPLE:
        return [None] * 5
    return [round(float(v), 3) for v in (values.mean(), np.median(values),
                                         np.percentile(values, 15), np.percentile(values, 85),
                                         values.min())]
