"""Dwell: how long vehicles stay in each lane and zone.

A visit starts when a confirmed track's anchor is first seen inside an area and ends when it
is seen outside (or the track is forgotten). Finished visits feed per-interval statistics
(vehicles, mean and longest stay) for the reports; a visit that goes on longer than the
area's `max_dwell_s` raises one alert while it lasts (a stopped vehicle, an incident).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Area:
    """A lane's or zone's polygon (pixels), with its dwell alert threshold."""

    name: str
    polygon: np.ndarray
    max_dwell_s: float | None = None


@dataclass(frozen=True)
class DwellRow:
    """Finished visits of one area in one interval."""

    interval_start_s: float
    interval_end_s: float
    area: str
    vehicles: int
    mean_s: float
    max_s: float


@dataclass(frozen=True)
class LongStay:
    """A visit that has just gone past its area's `max_dwell_s`."""

    track_id: int
    area: str
    dwell_s: float


class DwellTracker:
    """Visits of one stream's tracks to its areas, and their statistics per interval."""

    def __init__(self, areas: list[Area], interval_s: float, origin_s: float = 0.0,
                 retain_intervals: int | None = None):
        self.areas = {a.name: a for a in areas}
        self.interval_s = interval_s
        self.origin_s = origin_s
        self.retain_intervals = retain_intervals  # as CountBook: bounded memory when live
        self._entered: dict[tuple[int, str], float] = {}
        self._alerted: set[tuple[int, str]] = set()
        self._stats: dict[tuple[int, str], list[float]] = {}  # (interval, area) -> n, sum, max

    def update(self, area: str, ids: np.ndarray, inside: np.ndarray, time_s: float
               ) -> tuple[float, list[LongStay]]:
        """One area's confirmed tracks this frame and whether each is inside; returns the
        longest current stay and the visits that just went past the alert threshold."""
        limit = self.areas[area].max_dwell_s
        longest, alerts = 0.0, []
        for tid, is_in in zip(np.asarray(ids).tolist(), np.asarray(inside).tolist()):
            key = (tid, area)
            if not is_in:
                if key in self._entered:
                    self._finish(key, time_s)
                continue
            stay = time_s - self._entered.setdefault(key, time_s)
            longest = max(longest, stay)
            if limit is not None and stay > limit and key not in self._alerted:
                self._alerted.add(key)
                alerts.append(LongStay(tid, area, stay))
        return longest, alerts

    def forget(self, tid: int, time_s: float) -> None:
        """The track is gone: its open visits end at its last sighting."""
        for key in [k for k in self._entered if k[0] == tid]:
            self._finish(key, time_s)

    def _finish(self, key: tuple[int, str], time_s: float) -> None:
        entered = self._entered.pop(key)
        self._alerted.discard(key)
        stay = time_s - entered
        k = math.floor((time_s - self.origin_s) / self.interval_s)
        if self.retain_intervals is not None and (k, key[1]) not in self._stats:
            oldest = k - self.retain_intervals
            for old in [b for b in self._stats if b[0] < oldest]:
                del self._stats[old]
        stats = self._stats.setdefault((k, key[1]), [0, 0.0, 0.0])
        stats[0] += 1
        stats[1] += stay
        stats[2] = max(stats[2], stay)

    def table(self) -> list[DwellRow]:
        """Finished visits per interval and area (intervals with visits only)."""
        rows = []
        for (k, area), (n, total, longest) in sorted(self._stats.items()):
            start = self.origin_s + k * self.interval_s
            rows.append(DwellRow(start, start + self.interval_s, area, int(n),
                                 total / n, longest))
        return rows
