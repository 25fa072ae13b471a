"""Cumulative and per-interval crossing counts, keyed by lane, class and direction."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class CountKey:
    """What a count is broken down by."""

    lane: str
    class_name: str
    direction: str


@dataclass(frozen=True)
class IntervalCount:
    """One row of the interval table."""

    interval_start_s: float
    interval_end_s: float
    lane: str
    class_name: str
    direction: str
    count: int


class CountBook:
    """Counts per key, cumulative and binned into fixed intervals of `interval_s` seconds.

    Interval k covers [origin + k*interval_s, origin + (k+1)*interval_s). With
    `retain_intervals`, bins older than that many intervals are dropped as time moves on (a
    live service keeps its history in the store; its memory must not grow with uptime).
    """

    def __init__(self, interval_s: float = 60.0, origin_s: float = 0.0,
                 retain_intervals: int | None = None):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.origin_s = origin_s
        self.retain_intervals = retain_intervals
        self.cumulative: Counter[CountKey] = Counter()
        self._intervals: Counter[tuple[int, CountKey]] = Counter()
        self._last_interval = -1

    def interval_of(self, time_s: float) -> int:
        """Index of the interval holding `time_s`."""
        return math.floor((time_s - self.origin_s) / self.interval_s)

    def add(self, key: CountKey, time_s: float, n: int = 1) -> None:
        """Record n crossings at `time_s`."""
        k = self.interval_of(time_s)
        self.cumulative[key] += n
        self._intervals[(k, key)] += n
        self._reach(k)

    def restore(self, cumulative: Counter[CountKey]) -> None:
        """Start from counts kept elsewhere (a store, after a restart): cumulative totals are
        added; interval bins start empty."""
        self.cumulative.update(cumulative)

    def observe_time(self, time_s: float) -> None:
        """Note that time has reached `time_s` (so empty trailing intervals are reported)."""
        self._reach(self.interval_of(time_s))

    def _reach(self, k: int) -> None:
        if k <= self._last_interval:
            return
        self._last_interval = k
        if self.retain_intervals is not None:
            oldest = k - self.retain_intervals
            for old in [b for b in self._intervals if b[0] < oldest]:
                del self._intervals[old]

    def total(self, lane: str | None = None, direction: str | None = None,
              class_name: str | None = None) -> int:
        """Sum of cumulative counts matching the given filters."""
        return sum(
            n for key, n in self.cumulative.items()
            if (lane is None or key.lane == lane)
            and (direction is None or key.direction == direction)
            and (class_name is None or key.class_name == class_name)
        )

    def interval_table(self, keys: list[CountKey]) -> list[IntervalCount]:
        """Every interval from the first to the last seen, crossed with `keys` and any key
        that was counted, zeros included (a full grid is what traffic reports expect)."""
        all_keys = sorted(set(keys) | set(self.cumulative))
        rows = []
        for k in range(0, self._last_interval + 1):
            start = self.origin_s + k * self.interval_s
            for key in all_keys:
                rows.append(IntervalCount(
                    interval_start_s=start,
                    interval_end_s=start + self.interval_s,
                    lane=key.lane,
                    class_name=key.class_name,
                    direction=key.direction,
                    count=self._intervals.get((k, key), 0),
                ))
        return rows
