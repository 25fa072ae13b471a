"""Every alert of a review in one list: congestion starting and clearing, wrong-way driving,
long stays (dwell). report.html lists them all and alerts.csv holds them, so an engineer sees
each one with its time, not only how many there were."""

from __future__ import annotations

from dataclasses import dataclass

from lanewatch.trackers.analytics.events import AnalyticsUpdate

ALERTS_FILE = "alerts.csv"
ALERTS_HEADER = ["time_s", "alert", "where", "track_id", "class", "detail"]


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes:
        time_s: video seconds.
        kind: congestion, congestion_cleared, wrong_way or dwell.
        where: the lane or zone.
        track_id, class_name: the object (None for congestion, which is the lane's state).
        detail: what was measured, in words (occupancy, distance, stay).
    """

    time_s: float
    kind: str
    where: str
    track_id: int | None
    class_name: str | None
    detail: str

    def row(self) -> list:
        """Its alerts.csv row (ALERTS_HEADER)."""
        return [f"{self.time_s:.3f}", self.kind, self.where,
                "" if self.track_id is None else self.track_id, self.class_name or "",
                self.detail]


def alerts_of(update: AnalyticsUpdate) -> list[Alert]:
    """The alerts of one frame's analytics, in a fixed order."""
    out = [Alert(e.time_s, "congestion" if e.congested else "congestion_cleared", e.lane, None,
                 None, f"{e.occupancy} in the lane") for e in update.congestion]
    out += [Alert(e.time_s, "wrong_way", e.lane, e.track_id, e.class_name,
                  f"{e.distance:g} {e.unit} against the lane's direction")
            for e in update.wrong_way]
    out += [Alert(e.time_s, "dwell", e.area, e.track_id, e.class_name,
                  f"stayed {e.dwell_s:g} s") for e in update.dwell]
    return out
