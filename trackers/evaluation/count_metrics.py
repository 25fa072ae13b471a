"""How well automatic counts agree with a manual count: per-group precision and recall, class
confusions, per-interval errors and the AI City Challenge effectiveness score.

The input is a `CountMatching` (count_matching.py). A group is a (lane, direction, class), the
class `None` standing for all classes, and the lane and direction `None` for all of them.
In every row:

    manual    = matched + confused + missed
    matched   pairs whose two classes agree (and are the row's class, in a class row)
    confused  pairs whose manual event is in the row but whose automatic class differs
    missed    manual events with no automatic partner (under-count)
    extra     automatic events with no manual partner (over-count)
    precision = matched / automatic, recall = matched / manual (vacuously 1 when the
                denominator is 0: nothing counted cannot be wrong, nothing to find cannot be
                missed), f1 their harmonic mean

so a class confusion costs precision and recall but is neither a miss nor an extra.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from lanewatch.trackers.evaluation.count_matching import CountEvent, CountMatching

DEFAULT_INTERVAL_S = 900.0  # the 15 minutes traffic counts are reported in
AIC_SEGMENTS = 10  # the AI City Challenge splits each video into 10 segments
NO_MATCH = "(none)"  # the confusion table's row / column for missed and extra events

Key = tuple[str | None, str | None, str | None]  # (lane, direction, class); None = all


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


@dataclass(frozen=True)
class CountRow:
    """Agreement of one group (see the module's docstring for the fields)."""

    lane: str | None
    direction: str | None
    class_name: str | None
    manual: int
    automatic: int
    matched: int
    confused: int
    missed: int
    extra: int

    @property
    def precision(self) -> float:
        return _ratio(self.matched, self.automatic)

    @property
    def recall(self) -> float:
        return _ratio(self.matched, self.manual)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class IntervalRow:
    """Counts of one group in one interval [start_s, end_s), compared as totals (no matching:
    this is the figure a procurement spec such as "95% per movement per 15 min" checks)."""

    start_s: float
    end_s: float
    lane: str | None
    direction: str | None
    class_name: str | None
    manual: int
    automatic: int

    @property
    def abs_error(self) -> int:
        return abs(self.automatic - self.manual)

    @property
    def pct_error(self) -> float | None:
        """Absolute error in % of the manual count; None when the manual count is 0."""
        return 100.0 * self.abs_error / self.manual if self.manual else None


@dataclass(frozen=True)
class WrmseRow:
    """The AI City Challenge figures of one (lane, direction, class) "movement"."""

    lane: str
    direction: str
    class_name: str
    manual: int  # the ground-truth vehicle count, also the group's weight in the score
    automatic: int
    wrmse: float
    nwrmse: float


@dataclass(frozen=True)
class CountValidation:
    """Everything `lanewatch validate` reports."""

    matching: CountMatching
    interval_s: float
    duration_s: float
    rows: tuple[CountRow, ...]  # per (lane, direction, class), per (lane, direction), overall
    confusion: tuple[tuple[str, str, int], ...]  # (manual class, automatic class, pairs)
    intervals: tuple[IntervalRow, ...]
    wrmse: tuple[WrmseRow, ...]
    effectiveness: float | None  # None when the manual count is empty

    @property
    def overall(self) -> CountRow:
        return self.rows[-1]


def _in(key: Key, e: CountEvent) -> bool:
    lane, direction, cls = key
    return ((lane is None or e.lane == lane) and (direction is None or e.direction == direction)
            and (cls is None or e.class_name == cls))


def _keys(events: Iterable[CountEvent]) -> list[Key]:
    """Every (lane, direction, class), then every (lane, direction), then the overall key."""
    events = list(events)
    groups = sorted({(e.lane, e.direction, e.class_name) for e in events})
    pairs = sorted({(e.lane, e.direction) for e in events})
    return [*groups, *((lane, d, None) for lane, d in pairs), (None, None, None)]


def count_row(matching: CountMatching, key: Key) -> CountRow:
    """The agreement of one group."""
    pairs = [p for p in matching.pairs if _in(key, p.manual)]
    return CountRow(
        *key,
        manual=sum(_in(key, e) for e in matching.manual),
        automatic=sum(_in(key, e) for e in matching.automatic),
        matched=sum(p.same_class for p in pairs),
        confused=sum(not p.same_class for p in pairs),
        missed=sum(_in(key, e) for e in matching.missed),
        extra=sum(_in(key, e) for e in matching.extra),
    )


def _confusion(matching: CountMatching) -> tuple[tuple[str, str, int], ...]:
    n = Counter((p.manual.class_name, p.automatic.class_name) for p in matching.pairs)
    n.update((e.class_name, NO_MATCH) for e in matching.missed)
    n.update((NO_MATCH, e.class_name) for e in matching.extra)
    return tuple((m, a, c) for (m, a), c in sorted(n.items()))


def _intervals(matching: CountMatching, keys: list[Key], interval_s: float,
               duration_s: float) -> tuple[IntervalRow, ...]:
    manual, automatic = matching.manual, matching.automatic
    last = max([duration_s, *(e.time_s for e in manual + automatic)])
    n_intervals = max(1, math.ceil(last / interval_s - 1e-9))

    def tally(events: list[CountEvent]) -> Counter:
        """Counts by (interval, key), in one pass: short intervals over hours stay cheap."""
        n: Counter = Counter()
        for e in events:
            # the last interval keeps the events at or past the video's end
            k = min(int(e.time_s // interval_s), n_intervals - 1)
            for key in ((e.lane, e.direction, e.class_name), (e.lane, e.direction, None),
                        (None, None, None)):
                n[k, key] += 1
        return n

    by_manual, by_auto = tally(manual), tally(automatic)
    rows = []
    for k in range(n_intervals):
        start, end = k * interval_s, (k + 1) * interval_s
        if k == n_intervals - 1:
            end = min(end, max(duration_s, start))
        rows += [IntervalRow(start, end, *key, by_manual[k, key], by_auto[k, key])
                 for key in keys]
    return tuple(rows)


def weighted_rmse(manual_times: list[float], automatic_times: list[float], duration_s: float,
                  segments: int = AIC_SEGMENTS) -> tuple[float, float]:
    """(wRMSE, nwRMSE) of one movement and class, as the AI City Challenge scores vehicle counts.

    Definition: Naphade et al., "The 4th AI City Challenge", CVPR Workshops 2020, Track 1
    evaluation (the 5th challenge, 2021, kept it). The video is split into k = 10 equal
    segments; x_i and x^_i are the true and predicted cumulative counts from the start of the
    video to the end of segment i; with linearly growing weights w_i = i / (k (k + 1) / 2),

        wRMSE = sqrt(sum_i w_i (x^_i - x_i)^2)
        nwRMSE = 0 if wRMSE > vc else 1 - wRMSE / vc

    where vc is the true count of the movement and class. The effectiveness score is the mean
    of nwRMSE over all movements and classes weighted by vc (`effectiveness`). Choices where
    the paper is silent: segments are equal spans of time (the challenge's videos were cut in
    frames; the two agree at a constant frame rate); an event exactly at a segment's end counts
    in that segment; a group with vc = 0 gets nwRMSE 0 and weight 0, as in the challenge's
    weighting, so over-counts where nothing passed leave the score unchanged (they show in
    the extra counts instead).
    """
    weights = [i / (segments * (segments + 1) / 2) for i in range(1, segments + 1)]
    ends = [duration_s * i / segments for i in range(1, segments + 1)]
    squares = []
    for i, end in enumerate(ends):
        final = i == segments - 1
        x = sum(final or t <= end for t in manual_times)
        x_hat = sum(final or t <= end for t in automatic_times)
        squares.append((x_hat - x) ** 2)
    wrmse = math.sqrt(sum(w * s for w, s in zip(weights, squares)))
    vc = len(manual_times)
    nwrmse = 0.0 if vc == 0 or wrmse > vc else 1.0 - wrmse / vc
    return wrmse, nwrmse


def effectiveness(rows: Iterable[WrmseRow]) -> float | None:
    """The challenge's effectiveness: nwRMSE averaged with the true counts as weights."""
    rows = list(rows)
    total = sum(r.manual for r in rows)
    return sum(r.manual * r.nwrmse for r in rows) / total if total else None


def _wrmse_rows(matching: CountMatching, keys: list[Key], duration_s: float,
                segments: int) -> tuple[WrmseRow, ...]:
    rows = []
    for lane, direction, cls in keys:
        if lane is None or direction is None or cls is None:
            continue  # the challenge scores each movement and class on its own

        def times(events, key=(lane, direction, cls)) -> list[float]:
            return [e.time_s for e in events if _in(key, e)]

        m, a = times(matching.manual), times(matching.automatic)
        rows.append(WrmseRow(lane, direction, cls, len(m), len(a),
                             *weighted_rmse(m, a, duration_s, segments)))
    return tuple(rows)


def validate_counts(matching: CountMatching, duration_s: float | None = None,
                    interval_s: float = DEFAULT_INTERVAL_S,
                    segments: int = AIC_SEGMENTS) -> CountValidation:
    """All the figures of a matching. `duration_s` is the video's length (the last event's time
    when unknown): it bounds the intervals and the challenge's segments."""
    if interval_s <= 0:
        raise ValueError(f"interval must be > 0 s, got {interval_s}")
    events = matching.manual + matching.automatic
    if not duration_s or duration_s <= 0:
        duration_s = max((e.time_s for e in events), default=0.0)
    keys = _keys(events)
    wrmse = _wrmse_rows(matching, keys, duration_s, segments)
    return CountValidation(
        matching=matching, interval_s=interval_s, duration_s=duration_s,
        rows=tuple(count_row(matching, k) for k in keys),
        confusion=_confusion(matching),
        intervals=_intervals(matching, keys, interval_s, duration_s),
        wrmse=wrmse, effectiveness=effectiveness(wrmse))
