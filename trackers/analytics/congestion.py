"""Congestion flag for one lane: a condition (occupancy, dwell or queue above a threshold) that
must hold for a minimum time to raise the flag and be absent for a minimum time to clear it."""

from __future__ import annotations

from lanewatch.trackers.analytics.lanes import CongestionSettings


class CongestionMonitor:
    """Debounced congestion state of one lane."""

    def __init__(self, settings: CongestionSettings):
        self.settings = settings
        self.congested = False
        self._since: float | None = None  # when the condition last started to disagree

    def condition(self, occupancy: int, max_dwell_s: float, queue: int = 0) -> bool:
        """Whether this instant looks congested."""
        s = self.settings
        by_occupancy = s.min_occupancy is not None and occupancy >= s.min_occupancy
        by_dwell = s.min_dwell_s is not None and max_dwell_s >= s.min_dwell_s
        by_queue = s.min_queue is not None and queue >= s.min_queue
        return by_occupancy or by_dwell or by_queue

    def update(self, occupancy: int, max_dwell_s: float, time_s: float, queue: int = 0) -> bool:
        """Feed one observation; returns True when the flag changed."""
        now = self.condition(occupancy, max_dwell_s, queue)
        if now == self.congested:
            self._since = None
            return False
        if self._since is None:
            self._since = time_s
        hold = self.settings.min_duration_s if now else self._clear_after()
        if time_s - self._since >= hold:
            self.congested = now
            self._since = None
            return True
        return False

    def _clear_after(self) -> float:
        s = self.settings
        return s.min_duration_s if s.clear_after_s is None else s.clear_after_s
